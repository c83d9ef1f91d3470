package natstest

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeployUsers are the users of deploy/nats/accounts.conf; Deploy gives each the
// password "<user>-secret".
var DeployUsers = []string{"relay", "app", "notifier", "orderlinker", "webhooks", "customers", "admin", "erp"}

// Deployed is a server running a shipped configuration file. It records
// the permission refusals the server sends each user it connected.
type Deployed struct {
	t        testing.TB
	srv      *server.Server
	mu       sync.Mutex
	refusals map[string][]string
}

// Deploy starts a server on the configuration file at path (on a free port,
// with its own store), so a test can prove the users' permissions. It sets
// the passwords the file reads from the environment, so the test must not be
// parallel.
func Deploy(t testing.TB, path string) *Deployed {
	t.Helper()
	setDeployPasswords(t)
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
	return &Deployed{t: t, srv: srv, refusals: map[string][]string{}}
}

// setDeployPasswords sets the passwords of DeployUsers where the shipped
// configuration files read them.
func setDeployPasswords(t testing.TB) {
	for _, u := range DeployUsers {
		t.Setenv(strings.ToUpper(u)+"_PASSWORD", u+"-secret")
	}
}

// ConnectAs connects as one of DeployUsers.
func (d *Deployed) ConnectAs(user string) *nats.Conn {
	d.t.Helper()
	nc, err := nats.Connect(d.srv.ClientURL(), nats.UserInfo(user, user+"-secret"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				d.mu.Lock()
				d.refusals[user] = append(d.refusals[user], err.Error())
				d.mu.Unlock()
			}
		}))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(nc.Close)
	return nc
}

// JetStreamAs is ConnectAs with a JetStream context.
func (d *Deployed) JetStreamAs(user string) jetstream.JetStream {
	d.t.Helper()
	js, err := jetstream.New(d.ConnectAs(user))
	if err != nil {
		d.t.Fatal(err)
	}
	return js
}

// Refusals are the permission refusals the server sent user so far. They
// arrive asynchronously: flush the connection and wait a little first.
func (d *Deployed) Refusals(user string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.refusals[user])
}
