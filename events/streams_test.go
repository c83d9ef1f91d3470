package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
)

// Services start one after another with whatever STREAM_REPLICAS and
// retention settings they have, and operators edit the streams in between:
// a stream gets the replicas asked for, more when more are asked, never
// fewer; what an operator raised stays; what the services own follows them.
func TestEnsureStreamRaisesReplicasButNeverLowersThemOrWhatTheOperatorSet(t *testing.T) {
	t.Parallel()
	cluster := natstest.NewCluster(t, 3)
	js, err := jetstream.New(cluster.Connect(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	service := func(replicas int, maxAge time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{Name: "ORDERS", Description: "orders", Subjects: []string{"orders.>"},
			MaxAge: maxAge, Duplicates: events.DuplicateWindow, Replicas: replicas}
	}
	operator := func(edit func(*jetstream.StreamConfig)) func(*testing.T) {
		return func(t *testing.T) {
			st, err := js.Stream(ctx, "ORDERS")
			if err != nil {
				t.Fatal(err)
			}
			cfg := st.CachedInfo().Config
			edit(&cfg)
			if _, err := js.UpdateStream(ctx, cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, step := range []struct {
		name     string
		operator func(*testing.T) // before the service starts
		service  jetstream.StreamConfig
		check    func(t *testing.T, got jetstream.StreamConfig)
	}{{
		name:    "created with the default of 1 replica",
		service: service(0, time.Hour),
		check:   replicas(1),
	}, {
		name:    "raised to 3",
		service: service(3, time.Hour),
		check:   replicas(3),
	}, {
		name:    "a restart with 1 keeps 3",
		service: service(1, time.Hour),
		check:   replicas(3),
	}, {
		name: "an operator's limits stay, the services' settings follow them",
		operator: operator(func(c *jetstream.StreamConfig) {
			c.MaxBytes, c.MaxMsgSize, c.Compression = 1<<30, 1<<20, jetstream.S2Compression
			c.Duplicates, c.MaxAge = 30*time.Minute, 2*time.Hour
			c.Description, c.NoAck = "edited", true
		}),
		// A lowered retention (privacy) is taken even below the operator's
		// raised duplicate window, which JetStream then wants shorter.
		service: service(1, 20*time.Minute),
		check: func(t *testing.T, got jetstream.StreamConfig) {
			replicas(3)(t, got)
			if got.MaxBytes != 1<<30 || got.MaxMsgSize != 1<<20 || got.Compression != jetstream.S2Compression {
				t.Errorf("operator's limits lost: MaxBytes %d, MaxMsgSize %d, Compression %s", got.MaxBytes, got.MaxMsgSize, got.Compression)
			}
			if got.MaxAge != 20*time.Minute || got.Duplicates != 20*time.Minute {
				t.Errorf("MaxAge %s, Duplicates %s, want the setting's 20m for both", got.MaxAge, got.Duplicates)
			}
			if got.Description != "orders" || got.NoAck {
				t.Errorf("Description %q, NoAck %t: the services own them", got.Description, got.NoAck)
			}
		},
	}, {
		name:    "a longer retention keeps the operator's duplicate window",
		service: service(1, time.Hour),
		check: func(t *testing.T, got jetstream.StreamConfig) {
			if got.MaxAge != time.Hour || got.Duplicates != 20*time.Minute {
				t.Errorf("MaxAge %s, Duplicates %s, want 1h and 20m", got.MaxAge, got.Duplicates)
			}
		},
	}} {
		if !t.Run(step.name, func(t *testing.T) {
			if step.operator != nil {
				step.operator(t)
			}
			cluster.Settle(step.name, func(ctx context.Context) error {
				return events.EnsureStream(ctx, js, step.service)
			})
			st, err := js.Stream(ctx, "ORDERS")
			if err != nil {
				t.Fatal(err)
			}
			step.check(t, st.CachedInfo().Config)
		}) {
			return // the later steps build on this one
		}
	}
}

func replicas(want int) func(*testing.T, jetstream.StreamConfig) {
	return func(t *testing.T, got jetstream.StreamConfig) {
		t.Helper()
		if got.Replicas != want {
			t.Errorf("Replicas %d, want %d", got.Replicas, want)
		}
	}
}
