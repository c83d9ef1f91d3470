package deploy

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// services are the commands that run as services of their own, each in its
// container (compose) or Deployment (Kubernetes).
var services = []string{"customers", "relay", "notifier", "orderlinker", "webhooks"}

// natsUser is the NATS user of deploy/nats/accounts.conf each service
// connects as.
var natsUser = map[string]string{
	"customers": "customers", "relay": "relay", "notifier": "notifier",
	"orderlinker": "orderlinker", "webhooks": "webhooks",
}

// listenSetting is where each service serves /healthz and /readyz: the
// command service with its API, the others on their ops listener.
func listenSetting(service string) string {
	if service == "customers" {
		return "HTTP_ADDR"
	}
	return "OPS_ADDR"
}

// containerPort is the port the manifests run each listener on inside a
// container.
var containerPort = map[string]int{"HTTP_ADDR": 8080, "OPS_ADDR": 9090}

// stopBounds are the settings that bound how long each service takes to stop
// on SIGTERM (those of them that run at once: the longest counts); the
// termination grace must outlast them.
var stopBounds = map[string][]string{
	"customers":   {"SHUTDOWN_TIMEOUT", "COMMANDS_DRAIN_TIMEOUT"},
	"relay":       {"SHUTDOWN_TIMEOUT", "RELAY_PUBLISH_TIMEOUT"},
	"notifier":    {"SHUTDOWN_TIMEOUT", "SMTP_TIMEOUT"},
	"orderlinker": {"SHUTDOWN_TIMEOUT"},
	"webhooks":    {"SHUTDOWN_TIMEOUT", "WEBHOOKS_TIMEOUT"},
}

// documented is one row of the settings table of docs/operations.md, which
// cmd/customerbus/settings_test.go keeps in step with the code.
type documented struct {
	def    string   // the default, without backticks
	readBy []string // the services that read it
}

var settingRow = regexp.MustCompile("^\\| `([A-Z0-9_]+)` \\| ([^|]+) \\| ([^|]+) \\|")

func settingsTable(t *testing.T) map[string]documented {
	t.Helper()
	f, err := os.Open("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]documented{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := settingRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var readBy []string
		for _, s := range strings.Split(m[3], ",") {
			readBy = append(readBy, strings.TrimSpace(s))
		}
		rows[m[1]] = documented{def: strings.Trim(strings.TrimSpace(m[2]), "`"), readBy: readBy}
	}
	if err := sc.Err(); err != nil || len(rows) == 0 {
		t.Fatalf("no settings table in docs/operations.md: %v", err)
	}
	return rows
}

// setting is a setting's value for a service: what env sets, else its
// documented default.
func setting(t *testing.T, table map[string]documented, env map[string]string, name string) string {
	t.Helper()
	if v, ok := env[name]; ok {
		return v
	}
	row, ok := table[name]
	if !ok {
		t.Fatalf("%s is not in the settings table of docs/operations.md", name)
	}
	return row.def
}

// stopBudget is the longest a service may take to stop, by its settings.
func stopBudget(t *testing.T, table map[string]documented, service string, env map[string]string) time.Duration {
	t.Helper()
	var longest time.Duration
	for _, name := range stopBounds[service] {
		d, err := time.ParseDuration(setting(t, table, env, name))
		if err != nil {
			t.Fatalf("%s of %s: %v", name, service, err)
		}
		longest = max(longest, d)
	}
	return longest
}

// streamMakers are the services that make streams, so that take STREAM_REPLICAS.
func streamMakers(t *testing.T, table map[string]documented) []string {
	row, ok := table["STREAM_REPLICAS"]
	if !ok || len(row.readBy) == 0 {
		t.Fatal("STREAM_REPLICAS is not in the settings table of docs/operations.md")
	}
	for _, s := range row.readBy {
		if !slices.Contains(services, s) {
			t.Fatalf("STREAM_REPLICAS is read by %q, which is no service", s)
		}
	}
	return row.readBy
}

// accountPasswords are the variables deploy/nats/accounts.conf reads the
// users' passwords from.
func accountPasswords(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("nats/accounts.conf")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`password:\s*\$([A-Z_]+)`).FindAllStringSubmatch(string(b), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatal("accounts.conf reads no password")
	}
	return names
}

// portOf is the port of a listen address such as ":9090".
func portOf(addr string) string {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return ""
	}
	return addr[i+1:]
}
