package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/services/notifier"
)

// streamMaker is a command whose service makes streams, connected as its
// user of deploy/nats; it is done with them once they carry its
// description, and once it made its consumer, when it has one.
type streamMaker struct {
	cmd, user string
	streams   []string
	consumer  [2]string // stream, durable name
}

var streamMakers = []streamMaker{
	{cmd: "relay", user: "relay", streams: []string{events.EventsStream, events.NotificationsStream}},
	{cmd: "customers", user: "customers", streams: []string{events.CommandsStream, events.CommandsDeadLetterStream},
		consumer: [2]string{events.CommandsStream, events.CommandsConsumer}},
	{cmd: "notifier", user: "notifier", streams: []string{notifier.DeadLetterStream},
		consumer: [2]string{events.NotificationsStream, notifier.ConsumerName}},
}

// Every service that makes streams, started as the binary starts it (from
// the environment, as its own user) on three nodes running the shipped
// cluster configuration: with STREAM_REPLICAS=3 it makes its streams with
// three replicas, a restart with the default of 1 lowers none of them, and
// a stream an operator made with three replicas and a size limit keeps both
// through every start.
func TestStreamReplicasSettingMakesReplicatedStreamsThatNoRestartLowers(t *testing.T) {
	cluster := natstest.DeployCluster(t, "../../deploy/nats/cluster.conf", "customerbus-nats-1", "customerbus-nats-2", "customerbus-nats-3")
	for i := range 3 {
		if !cluster.Server(i).JetStreamConfig().SyncAlways {
			t.Errorf("node %d: JetStream does not fsync every write (sync_interval: always)", i)
		}
	}
	_, dbURL := dbtest.New(t)
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("MAIL_DIR", t.TempDir())
	t.Setenv("LOG_LEVEL", "error")
	admin, err := jetstream.New(cluster.Connect(0, nats.UserInfo("admin", "admin-secret")))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cluster.Settle("the operator's stream", func(ctx context.Context) error {
		_, err := admin.CreateStream(ctx, jetstream.StreamConfig{
			Name: events.EventsStream, Subjects: []string{events.EventsSubjectPrefix + ">"}, Replicas: 3, MaxBytes: 1 << 30,
		})
		return err
	})

	for _, replicas := range []string{"3", ""} {
		t.Run("STREAM_REPLICAS="+replicas, func(t *testing.T) {
			t.Setenv("STREAM_REPLICAS", replicas)
			runStreamMakers(t, cluster, admin)
			for _, m := range streamMakers {
				for _, name := range m.streams {
					st, err := admin.Stream(ctx, name)
					if err != nil {
						t.Fatal(err)
					}
					info := st.CachedInfo()
					if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
						t.Errorf("%s: %d replicas configured, cluster %+v; want 3: a leader and 2 replicas", name, info.Config.Replicas, info.Cluster)
					}
					if name == events.EventsStream && info.Config.MaxBytes != 1<<30 {
						t.Errorf("%s: the operator's MaxBytes is %d now", name, info.Config.MaxBytes)
					}
				}
			}
		})
	}
}

// runStreamMakers runs each of streamMakers until it is done with its
// streams, then stops them all. To see that it is, the operator (admin)
// first marks the streams with a description of its own and deletes the
// consumers.
func runStreamMakers(t *testing.T, cluster *natstest.Cluster, admin jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	const marked = "edited by the operator"
	for _, m := range streamMakers {
		for _, name := range m.streams {
			st, err := admin.Stream(ctx, name)
			if err != nil {
				continue // not made yet
			}
			cfg := st.CachedInfo().Config
			cfg.Description = marked
			if _, err := admin.UpdateStream(ctx, cfg); err != nil {
				t.Fatalf("mark %s: %v", name, err)
			}
		}
		if m.consumer[0] != "" {
			err := admin.DeleteConsumer(ctx, m.consumer[0], m.consumer[1])
			if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				t.Fatalf("delete consumer %s: %v", m.consumer[1], err)
			}
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	t.Setenv("OPS_ADDR", "127.0.0.1:0") // each service's ops endpoints on a port of its own
	for _, m := range streamMakers {
		// The service reads NATS_URL as it starts; the next is started
		// once it is done.
		t.Setenv("NATS_URL", strings.ReplaceAll(cluster.URLs(0), "nats://", "nats://"+m.user+":"+m.user+"-secret@"))
		wg.Go(func() {
			if err := run(runCtx, []string{m.cmd}); err != nil {
				t.Errorf("%s: %v", m.cmd, err)
			}
		})
		for _, name := range m.streams {
			eventually(t, m.cmd+" made or updated "+name+", which has a leader", func(ctx context.Context) bool {
				st, err := admin.Stream(ctx, name)
				if err != nil {
					return false
				}
				info := st.CachedInfo()
				return info.Config.Description != marked && info.Cluster != nil && info.Cluster.Leader != ""
			})
		}
		if m.consumer[0] != "" {
			eventually(t, m.cmd+" made consumer "+m.consumer[1]+", which has a leader", func(ctx context.Context) bool {
				cons, err := admin.Consumer(ctx, m.consumer[0], m.consumer[1])
				return err == nil && cons.CachedInfo().Cluster != nil && cons.CachedInfo().Cluster.Leader != ""
			})
		}
	}
}

// eventually waits up to 15 s for ok. A stream or consumer being made
// answers no request until it has a leader, so each try gets a second.
func eventually(t *testing.T, what string, ok func(ctx context.Context) bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		done := ok(ctx)
		cancel()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15 s", what)
		}
	}
}
