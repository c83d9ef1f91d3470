package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/ops/opstest"
)

// The monitoring files: the alert rules and the dashboard of deploy/, and
// the page that documents every metric.
const (
	alertRulesFile = "../../deploy/prometheus/alerts.yaml"
	dashboardFile  = "../../deploy/grafana/customerbus.json"
	monitoringPage = "../../docs/monitoring.md"
)

// Each service run alone serves /healthz, /readyz (naming what it waits
// for) and /metrics on OPS_ADDR, the command service on HTTP_ADDR; and
// every metric the alert rules and the dashboard read is one that a
// service serves, and every one they serve is documented.
func TestEachServiceAloneServesItsOpsEndpointsAndTheMetricsTheMonitoringFilesRead(t *testing.T) {
	t.Parallel()
	_, dbURL := dbtest.New(t)
	ns := natstest.New(t)
	env := []string{"DATABASE_URL=" + dbURL, "NATS_URL=" + ns.URL()}
	// The relay first: it makes the streams the others wait for.
	want := map[string][]string{
		"relay":       {"database", "nats", "stream CUSTOMERBUS_EVENTS", "stream CUSTOMERBUS_NOTIFICATIONS"},
		"customers":   {"database", "nats", "stream CUSTOMERBUS_COMMANDS", "stream CUSTOMERBUS_COMMANDS_DLQ", "stream CUSTOMERBUS_EVENTS", "consumer customers", "consumer duplicates"},
		"notifier":    {"database", "nats", "stream CUSTOMERBUS_NOTIFICATIONS", "stream CUSTOMERBUS_NOTIFICATIONS_DLQ", "consumer notifier"},
		"orderlinker": {"database", "nats", "stream CUSTOMERBUS_EVENTS", "consumer orderlinker"},
		"webhooks":    {"database", "nats", "stream CUSTOMERBUS_EVENTS", "consumer webhooks"},
	}
	children := map[string]*child{}
	for _, svc := range []string{"relay", "customers", "notifier", "orderlinker", "webhooks"} {
		c := startChild(t, svc, env, svc) // returns once its /readyz answers 200
		children[svc] = c
		expectReadyChecks(t, svc, c.url, want[svc])
		if resp, err := http.Get(c.url + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("%s /healthz: %v %v, want 200", svc, resp, err)
		}
	}
	traffic(t, children["customers"], children["notifier"])

	served := map[string]bool{}
	for svc, c := range children {
		m := opstest.Scrape(t, c.url+"/metrics")
		for _, name := range m.Names() {
			served[name] = true
		}
		// What every service measures of what it waits for.
		for _, name := range []string{"customerbus_db_pool_max_connections", "customerbus_nats_connected", "customerbus_stream_messages"} {
			if _, ok := m.Value(name); !ok {
				t.Errorf("%s does not serve %s", svc, name)
			}
		}
	}
	for svc, durable := range map[string]string{"customers": "customers", "notifier": "notifier", "orderlinker": "orderlinker", "webhooks": "webhooks"} {
		if _, ok := opstest.Scrape(t, children[svc].url+"/metrics").Value("customerbus_consumer_pending_messages", "consumer", durable); !ok {
			t.Errorf("%s does not serve the lag of its consumer %s", svc, durable)
		}
	}
	expectMonitoringFilesRead(t, served)
}

// `customerbus run` serves the ops endpoints of every service on the API's
// address: /readyz checks what each waits for, /metrics has them all.
func TestRunServesTheOpsEndpointsOfEveryServiceOnTheAPIAddress(t *testing.T) {
	t.Parallel()
	_, dbURL := dbtest.New(t)
	ns := natstest.New(t)
	c := startChild(t, "run", []string{"DATABASE_URL=" + dbURL, "NATS_URL=" + ns.URL()}, "run")
	expectReadyChecks(t, "run", c.url, []string{"database", "nats",
		"stream CUSTOMERBUS_COMMANDS", "stream CUSTOMERBUS_COMMANDS_DLQ", "stream CUSTOMERBUS_EVENTS",
		"stream CUSTOMERBUS_NOTIFICATIONS", "stream CUSTOMERBUS_NOTIFICATIONS_DLQ",
		"consumer customers", "consumer duplicates", "consumer notifier", "consumer orderlinker", "consumer webhooks"})
	traffic(t, c, c)
	served := map[string]bool{}
	for _, name := range opstest.Scrape(t, c.url+"/metrics").Names() {
		served[name] = true
	}
	expectMonitoringFilesRead(t, served)
}

// expectReadyChecks fails unless /readyz at url answers ready with exactly
// the checks named, each ok.
func expectReadyChecks(t *testing.T, svc, url string, names []string) {
	t.Helper()
	wantChecks := map[string]string{}
	for _, n := range names {
		wantChecks[n] = "ok"
	}
	// The command service is ready before it has made its streams and
	// consumers (it only reports them): they come soon after.
	r := opstest.Readyz(t, url)
	for deadline := time.Now().Add(10 * time.Second); !maps.Equal(r.Checks, wantChecks) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		r = opstest.Readyz(t, url)
	}
	if r.Code != http.StatusOK || r.Status != "ready" || !maps.Equal(r.Checks, wantChecks) {
		t.Errorf("%s /readyz: %d %s %v\nwant 200 ready %v", svc, r.Code, r.Status, r.Checks, wantChecks)
	}
}

// traffic makes the metrics that only exist once something happened: a
// registration on api (its request, its verification email, which mailer
// sends) and a refused login.
func traffic(t *testing.T, api, mailer *child) {
	t.Helper()
	const email = "monitoring@example.com" // the test's database has no other
	for _, req := range []struct {
		path   string
		body   map[string]any
		status int
	}{
		{"/v1/store/register", map[string]any{"email": email, "password": "correct horse battery", "redirect_url": "https://shop.example.com/confirm", "channel": "web"}, http.StatusCreated},
		{"/v1/store/token", map[string]any{"email": email, "password": "not the password"}, http.StatusUnauthorized},
	} {
		status, _, body, err := api.post("", req.path, "", req.body)
		if err != nil || status != req.status {
			t.Fatalf("POST %s: %d %s %v, want %d", req.path, status, body, err, req.status)
		}
	}
	eventually(t, "the verification email sent", func(context.Context) bool {
		v, _ := opstest.Scrape(t, mailer.url+"/metrics").Value("customerbus_notifier_sent_total")
		return v > 0
	})
}

// expectMonitoringFilesRead checks the alert rules as `promtool check
// rules` does, and fails for each metric the rules or the dashboard read
// that is not served, and for each served one the monitoring page lacks.
func expectMonitoringFilesRead(t *testing.T, served map[string]bool) {
	t.Helper()
	page, err := os.ReadFile(monitoringPage)
	if err != nil {
		t.Fatal(err)
	}
	for name := range served {
		if strings.HasPrefix(name, "customerbus_") && !strings.Contains(string(page), "| `"+name+"` |") {
			t.Errorf("%s does not document %s in a table", monitoringPage, name)
		}
	}
	rules := alertRules(t)
	recorded := map[string]bool{} // what the rules record may be read by others
	for _, r := range rules {
		if r.Record != "" {
			recorded[r.Record] = true
		}
	}
	for _, r := range rules {
		for _, name := range metricNames(t, r.Expr) {
			if !served[family(name, served)] && !recorded[name] {
				t.Errorf("%s: rule %s%s reads %s, which no service serves", alertRulesFile, r.Record, r.Alert, name)
			}
		}
	}
	for where, expr := range dashboardExprs(t) {
		for _, name := range metricNames(t, expr) {
			if !served[family(name, served)] {
				t.Errorf("%s: %s reads %s, which no service serves", dashboardFile, where, name)
			}
		}
	}
}

// alertRules parses the rules file as Prometheus does, failing on every
// error it finds, and returns its rules.
func alertRules(t *testing.T) []rulefmt.Rule {
	t.Helper()
	content, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", alertRulesFile, err)
	}
	if groups == nil {
		t.FailNow()
	}
	var rules []rulefmt.Rule
	for _, g := range groups.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", alertRulesFile)
	}
	return rules
}

// grafanaVariables are the dashboard's variables in its queries, with a
// value that makes them PromQL.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$instance", ".*")

// labelValues is a variable's query of the values of a label of a metric.
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)

// dashboardExprs is every PromQL query of the dashboard, by where it is:
// its panels' targets, and its variables' queries.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	content, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(content, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	exprs := map[string]string{}
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			exprs["panel "+p.Title+" "+target.RefID] = grafanaVariables.Replace(target.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("%s: variable %s: %q is not label_values(metric, label)", dashboardFile, v.Name, v.Definition)
			continue
		}
		exprs["variable "+v.Name] = m[1]
	}
	if len(exprs) < 10 {
		t.Fatalf("%s: %d queries found; is it the dashboard?", dashboardFile, len(exprs))
	}
	return exprs
}

// metricNames parses a PromQL expression and returns the metric names it
// selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%q: %v", expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// family is the metric family a series name belongs to: a histogram's
// _bucket, _sum and _count series are its family's.
func family(name string, served map[string]bool) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && served[base] {
			return base
		}
	}
	return name
}
