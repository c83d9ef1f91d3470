package natstest

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DeployUsers are the users of deploy/nats/nats.conf; Deploy gives each the
// password "<user>-secret".
var DeployUsers = []string{"relay", "app", "notifier", "orderlinker", "customers", "admin", "erp"}

// Deployed is a server running a shipped configuration file.
type Deployed struct {
	t   testing.TB
	srv *server.Server
}

// Deploy starts a server on the configuration file at path (on a free port,
// with its own store), so a test can prove the users' permissions. It sets
// the passwords the file reads from the environment, so the test must not be
// parallel.
func Deploy(t testing.TB, path string) *Deployed {
	t.Helper()
	for _, u := range DeployUsers {
		t.Setenv(strings.ToUpper(u)+"_PASSWORD", u+"-secret")
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.StoreDir, opts.NoLog, opts.NoSigs = t.TempDir(), true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: deployed server not ready")
	}
	return &Deployed{t: t, srv: srv}
}

// ConnectAs connects as one of DeployUsers; onErr gets the asynchronous
// errors, among them the server's permission refusals.
func (d *Deployed) ConnectAs(user string, onErr func(error)) *nats.Conn {
	d.t.Helper()
	nc, err := nats.Connect(d.srv.ClientURL(), nats.UserInfo(user, user+"-secret"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { onErr(err) }))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(nc.Close)
	return nc
}
