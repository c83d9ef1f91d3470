package natstest

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is embedded NATS servers with JetStream that form one cluster, so
// a test can replicate streams and lose a node.
type Cluster struct {
	t         testing.TB
	servers   []*server.Server // nil once shut down
	junctions *junctions       // the routes run through them (vanish.go)
}

// NewCluster starts a cluster of n servers (each on free ports, with its
// own store) and stops it when the test ends. It returns once JetStream has
// a meta leader that counts every server as a peer, so streams of n
// replicas can be created at once.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	opts := make([]*server.Options, n)
	for i := range opts {
		opts[i] = &server.Options{ServerName: fmt.Sprintf("node-%d", i+1), JetStream: true,
			Cluster: server.ClusterOpts{Name: "natstest"}}
	}
	return startCluster(t, opts)
}

// DeployCluster is NewCluster on a shipped cluster configuration file: one
// server per name, each with the file's accounts, users and JetStream
// settings, its server name from the environment variable NATS_SERVER_NAME
// (as the file reads it) and its listen addresses and routes replaced by
// free local ones. It sets the variables the file reads, so the test must
// not be parallel.
func DeployCluster(t testing.TB, path string, names ...string) *Cluster {
	t.Helper()
	setDeployPasswords(t)
	opts := make([]*server.Options, len(names))
	for i, name := range names {
		t.Setenv("NATS_SERVER_NAME", name)
		o, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatal(err)
		}
		opts[i] = o
	}
	return startCluster(t, opts)
}

// startCluster starts a server on each of opts, routed to each other, and
// waits for JetStream. Before its first meta leader, JetStream counts the
// vote of a node with an empty log only when every node votes for the same
// one; nodes that ask for votes at the same moment (as they do when their
// routes come up together) vote for themselves and elect no leader until
// the election timeout (4 to 9 s) has passed. So a start that has no
// leader within a few seconds is thrown away and tried again, on fresh
// ports and stores.
func startCluster(t testing.TB, opts []*server.Options) *Cluster {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c := &Cluster{t: t}
		for _, o := range opts {
			o.StoreDir = t.TempDir() // before the cleanup below, which must run first
		}
		t.Cleanup(c.shutdownAll)
		c.start(opts)
		if c.wait("JetStream meta leader with every node as a peer", 2*time.Second, func() bool {
			for _, srv := range c.servers {
				if srv.JetStreamIsLeader() && len(srv.JetStreamClusterPeers()) == len(c.servers) {
					return true
				}
			}
			return false
		}) {
			return c
		}
		c.shutdownAll()
		if attempt == 5 {
			t.Fatalf("natstest: cluster: no JetStream meta leader in %d starts", attempt)
		}
	}
}

// start starts a server on each of opts, routed to each other through
// their junctions.
func (c *Cluster) start(opts []*server.Options) {
	c.t.Helper()
	c.junctions = newJunctions(c.t, len(opts))
	for i, o := range opts {
		var routes []*url.URL
		for k := range opts {
			if k != i {
				routes = append(routes, &url.URL{Scheme: "nats", Host: c.junctions.addr(k)})
			}
		}
		o.Host, o.Port, o.HTTPPort = "127.0.0.1", -1, 0
		o.Cluster.Host, o.Cluster.Port, o.Routes = "127.0.0.1", -1, routes
		o.Cluster.Advertise = c.junctions.addr(i)
		o.NoLog, o.NoSigs = true, true
		srv, err := server.NewServer(o)
		if err != nil {
			c.t.Fatalf("natstest: cluster node %s: %v", o.ServerName, err)
		}
		srv.Start()
		c.servers = append(c.servers, srv)
		if !srv.ReadyForConnections(10 * time.Second) {
			c.t.Fatalf("natstest: cluster node %s not ready", srv.Name())
		}
		// The routes the others dialled wait in the junction's backlog.
		go c.junctions.run(i, srv.ClusterAddr().String())
	}
}

func (c *Cluster) shutdownAll() {
	for i := range c.servers {
		c.Shutdown(i)
	}
	if c.junctions != nil {
		c.junctions.close()
	}
}

// wait reports whether ok came true within timeout.
func (c *Cluster) wait(what string, timeout time.Duration, ok func() bool) bool {
	for deadline := time.Now().Add(timeout); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.t.Logf("natstest: cluster: no %s within %s", what, timeout)
			return false
		}
	}
	return true
}

// Settle calls fn, a call to JetStream's API that makes or grows a stream
// or consumer, until it succeeds: each call may take 15 s, all of them a
// minute. Such a call is answered once the new Raft group has a leader.
// Its preferred leader campaigns at once, but when that vote misses on a
// loaded machine the group waits out an election timeout (4 to 9 s), which
// can pass the client's default API timeout of 5 s: in CI it once did.
func (c *Cluster) Settle(what string, fn func(ctx context.Context) error) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := fn(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("natstest: %s: %v", what, err)
		}
		c.t.Logf("natstest: %s: %v; trying again", what, err)
		time.Sleep(100 * time.Millisecond)
	}
}

// URLs are the client URLs of the running servers, comma-separated as
// nats.Connect and NATS_URL take them; first is listed first.
func (c *Cluster) URLs(first int) string {
	urls := []string{c.servers[first].ClientURL()}
	for i, srv := range c.servers {
		if srv != nil && i != first {
			urls = append(urls, srv.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// Connect opens a client connection to the running servers, which
// reconnects to another at once when its server goes, and is closed when
// the test ends. It connects to the server first first (opts may add a
// user), and keeps that order when reconnecting.
func (c *Cluster) Connect(first int, opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond),
		nats.DontRandomize()}, opts...)
	nc, err := nats.Connect(c.URLs(first), opts...)
	if err != nil {
		c.t.Fatalf("natstest: connect: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// JetStream is Connect's connection as a JetStream client.
func (c *Cluster) JetStream(first int, opts ...nats.Option) jetstream.JetStream {
	c.t.Helper()
	js, err := jetstream.New(c.Connect(first, opts...))
	if err != nil {
		c.t.Fatalf("natstest: jetstream: %v", err)
	}
	return js
}

// Server is server i, nil once shut down.
func (c *Cluster) Server(i int) *server.Server { return c.servers[i] }

// GlobalAccount is the account of a NewCluster's clients.
const GlobalAccount = server.DEFAULT_GLOBAL_ACCOUNT

// StreamLeader is the index of the server that leads the stream of the
// account, waiting for it to have one.
func (c *Cluster) StreamLeader(account, stream string) int {
	c.t.Helper()
	return c.leader("leader of stream "+stream, func(srv *server.Server) bool {
		return srv.JetStreamIsStreamLeader(account, stream)
	})
}

// ConsumerLeader is the index of the server that leads the consumer of the
// account's stream, waiting for it to have one. A pull request waits there,
// whichever server the client is connected to.
func (c *Cluster) ConsumerLeader(account, stream, consumer string) int {
	c.t.Helper()
	return c.leader("leader of consumer "+consumer+" on "+stream, func(srv *server.Server) bool {
		return srv.JetStreamIsConsumerLeader(account, stream, consumer)
	})
}

// leader is the index of the running server that is, waiting up to 20 s
// for one; the test fails without.
func (c *Cluster) leader(what string, is func(*server.Server) bool) int {
	c.t.Helper()
	leader := -1
	ok := c.wait(what, 20*time.Second, func() bool {
		for i, srv := range c.servers {
			if srv != nil && is(srv) {
				leader = i
				return true
			}
		}
		return false
	})
	if !ok {
		c.t.FailNow()
	}
	return leader
}

// Shutdown stops server i, as stopping the node would: it hands its
// leaderships over first, as a server stopped by SIGTERM does. Vanish
// loses it without that.
func (c *Cluster) Shutdown(i int) {
	if srv := c.servers[i]; srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		c.servers[i] = nil
	}
}

// Vanish loses server i as losing its host would: its routes go silent
// before it stops, so the others hear none of the goodbyes of a Shutdown,
// nor see a connection close, and learn of the loss by its silence. Its
// clients' connections do close, so they reconnect to another at once.
func (c *Cluster) Vanish(i int) {
	if srv := c.servers[i]; srv != nil {
		c.junctions.silence(i, srv.ID())
		c.Shutdown(i)
	}
}
