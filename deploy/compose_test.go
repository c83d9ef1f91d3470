package deploy

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
)

// The NATS nodes of compose.yaml, named as its services.
var composeNATS = []string{"nats-1", "nats-2", "nats-3"}

// loadCompose loads compose.yaml with compose-go, the loader of `docker
// compose config`: interpolated, validated against the compose
// specification's schema, normalized. Each variable it requires is set to
// "<name>-value".
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	var env []string
	for _, name := range append(accountPasswords(t), "POSTGRES_PASSWORD") {
		env = append(env, name+"="+name+"-value")
	}
	opts, err := cli.NewProjectOptions([]string{"compose.yaml"}, cli.WithEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker compose config would fail: %v", err)
	}
	return project
}

func TestComposeRunsEachServiceInItsContainerWithAHealthCheck(t *testing.T) {
	project := loadCompose(t)
	table := settingsTable(t)
	want := append([]string{"postgres", "mailpit", "migrate"}, composeNATS...)
	want = append(want, services...)
	slices.Sort(want)
	if got := project.ServiceNames(); !slices.Equal(sortedCopy(got), want) {
		t.Fatalf("services %v, want %v", sortedCopy(got), want)
	}

	// A one-shot container (the migration) is waited for to complete, not
	// to be healthy; every other has a health check.
	oneShot := map[string]bool{}
	for _, svc := range project.Services {
		for dep, cond := range svc.DependsOn {
			if cond.Condition == types.ServiceConditionCompletedSuccessfully {
				oneShot[dep] = true
			}
		}
	}
	if !oneShot["migrate"] {
		t.Error("no service waits for migrate to complete")
	}
	for name, svc := range project.Services {
		if oneShot[name] {
			continue
		}
		if svc.HealthCheck == nil || svc.HealthCheck.Disable || len(svc.HealthCheck.Test) < 2 {
			t.Errorf("%s has no health check", name)
		}
	}

	image := project.Services["migrate"].Image
	if cmd := project.Services["migrate"].Command; !slices.Equal(cmd, []string{"migrate"}) {
		t.Errorf("migrate runs %v", cmd)
	}
	if cond := project.Services["migrate"].DependsOn["postgres"].Condition; cond != types.ServiceConditionHealthy {
		t.Errorf("migrate waits for postgres to be %q, want healthy", cond)
	}
	for _, name := range services {
		svc := project.Services[name]
		if svc.Image != image || svc.Build == nil {
			t.Errorf("%s runs image %q (build %v), want the one built, %q", name, svc.Image, svc.Build != nil, image)
		}
		if !slices.Equal(svc.Command, []string{name}) {
			t.Errorf("%s runs %v, want [%s]", name, svc.Command, name)
		}
		env := composeEnv(svc)
		// The health check asks /readyz where the service serves it.
		listen := listenSetting(name)
		port := portOf(env[listen])
		if port != fmt.Sprint(containerPort[listen]) {
			t.Errorf("%s: %s=%q, want port %d", name, listen, env[listen], containerPort[listen])
		}
		if svc.HealthCheck == nil {
			continue // said above
		}
		if test := strings.Join(svc.HealthCheck.Test, " "); !strings.Contains(test, "/customerbus probe http://127.0.0.1:"+port+"/readyz") {
			t.Errorf("%s's health check %q does not probe /readyz on its %s (port %s)", name, test, listen, port)
		}
		for _, dep := range composeNATS {
			if cond := svc.DependsOn[dep].Condition; cond != types.ServiceConditionHealthy {
				t.Errorf("%s waits for %s to be %q, want healthy", name, dep, cond)
			}
		}
		if cond := svc.DependsOn["migrate"].Condition; cond != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s waits for migrate to be %q, want completed", name, cond)
		}
		if env["DATABASE_URL"] == "" {
			t.Errorf("%s has no DATABASE_URL", name)
		}
		checkNATSURL(t, name, name, env["NATS_URL"], composeNATS, "4222", func(user string) string {
			return strings.ToUpper(user) + "_PASSWORD-value"
		})
	}
	for _, name := range streamMakers(t, table) {
		if got := composeEnv(project.Services[name])["STREAM_REPLICAS"]; got != fmt.Sprint(len(composeNATS)) {
			t.Errorf("%s: STREAM_REPLICAS=%q, want %d, a replica on each node", name, got, len(composeNATS))
		}
	}
	if smtp := composeEnv(project.Services["notifier"])["SMTP_URL"]; !strings.Contains(smtp, "//mailpit:") {
		t.Errorf("the notifier sends to %q, not to mailpit", smtp)
	}
}

// The three NATS nodes run cluster.conf: JetStream on, routes to each
// other by their service names, each node named apart, every password of
// accounts.conf given.
func TestComposeNATSIsAClusterOfThreeWithJetStream(t *testing.T) {
	project := loadCompose(t)
	names := map[string]bool{}
	for _, node := range composeNATS {
		svc, ok := project.Services[node]
		if !ok {
			t.Fatalf("no service %s", node)
		}
		if !slices.Equal(svc.Command, []string{"-c", "/etc/nats/cluster.conf"}) {
			t.Errorf("%s runs %v, want -c /etc/nats/cluster.conf", node, svc.Command)
		}
		var mountsConf bool
		for _, v := range svc.Volumes {
			mountsConf = mountsConf || (v.Target == "/etc/nats" && v.Source == mustAbs(t, "nats"))
		}
		if !mountsConf {
			t.Errorf("%s does not mount deploy/nats at /etc/nats", node)
		}
		env := composeEnv(svc)
		names[env["NATS_SERVER_NAME"]] = true
		for _, pw := range accountPasswords(t) {
			if env[pw] == "" {
				t.Errorf("%s is not given %s, which accounts.conf reads", node, pw)
			}
		}
		if svc.HealthCheck == nil {
			t.Errorf("%s has no health check", node)
		} else if test := strings.Join(svc.HealthCheck.Test, " "); !strings.Contains(test, ":8222/healthz") {
			t.Errorf("%s's health check %q does not ask the monitoring port's /healthz", node, test)
		}
	}
	if len(names) != len(composeNATS) || names[""] {
		t.Errorf("server names %v: each node needs its own", names)
	}

	// cluster.conf as nats-server reads it, with the environment of a node.
	t.Setenv("NATS_SERVER_NAME", "customerbus-nats-1")
	for _, pw := range accountPasswords(t) {
		t.Setenv(pw, "x")
	}
	opts, err := server.ProcessConfigFile("nats/cluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !opts.JetStream || opts.StoreDir == "" {
		t.Error("cluster.conf does not enable JetStream with a store")
	}
	if opts.Cluster.Name == "" || opts.Cluster.Port == 0 {
		t.Error("cluster.conf has no cluster")
	}
	var routes []string
	for _, r := range opts.Routes {
		if r.Port() != fmt.Sprint(opts.Cluster.Port) {
			t.Errorf("route %s is not to the cluster port %d", r, opts.Cluster.Port)
		}
		routes = append(routes, r.Hostname())
	}
	if !slices.Equal(sortedCopy(routes), composeNATS) {
		t.Errorf("cluster.conf routes to %v, want the compose nodes %v", routes, composeNATS)
	}
	for _, node := range composeNATS {
		var stored bool
		for _, v := range project.Services[node].Volumes {
			stored = stored || (v.Type == types.VolumeTypeVolume && filepath.Clean(v.Target) == filepath.Dir(opts.StoreDir+"/"))
		}
		if !stored {
			t.Errorf("%s keeps JetStream's store (%s) on no volume", node, opts.StoreDir)
		}
	}
}

// checkNATSURL checks that a service's NATS_URL lists every node, each URL
// with the service's user and password.
func checkNATSURL(t *testing.T, where, service, natsURL string, hosts []string, port string, password func(user string) string) {
	t.Helper()
	var got []string
	for _, raw := range strings.Split(natsURL, ",") {
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("%s: NATS_URL %q: %v", where, raw, err)
			continue
		}
		pw, _ := u.User.Password()
		if u.User.Username() != natsUser[service] || pw != password(natsUser[service]) {
			t.Errorf("%s: NATS_URL %s is not as user %s with its password", where, u.Redacted(), natsUser[service])
		}
		if u.Port() != port {
			t.Errorf("%s: NATS_URL %s is not to port %s", where, u.Redacted(), port)
		}
		got = append(got, u.Hostname())
	}
	if !slices.Equal(sortedCopy(got), sortedCopy(hosts)) {
		t.Errorf("%s: NATS_URL lists %v, want every node: %v", where, got, hosts)
	}
}

func composeEnv(svc types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
