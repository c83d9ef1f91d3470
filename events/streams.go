package events

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamOptions tunes the streams a relay creates.
type StreamOptions struct {
	MaxAge   time.Duration // how long events are kept; 0 keeps them forever
	Replicas int           // 0 means 1
	// DeadLetterMaxAge is how long a dead-letter stream keeps what it got
	// (personal data, tokens); 0 keeps it forever.
	DeadLetterMaxAge time.Duration
}

// DefaultDeadLetterMaxAge is how long dead letters are kept unless
// DEADLETTER_MAX_AGE says otherwise: time to look into them and replay.
const DefaultDeadLetterMaxAge = 30 * 24 * time.Hour

// DuplicateWindow is how long JetStream remembers event ids to drop
// re-publications. It must outlast a relay's crash-and-restart.
const DuplicateWindow = 10 * time.Minute

// EnsureStreams creates the streams or updates them to this configuration.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, opts StreamOptions) error {
	replicas := opts.Replicas
	if replicas == 0 {
		replicas = 1
	}
	for _, cfg := range []jetstream.StreamConfig{{
		Name:        EventsStream,
		Description: "customerbus public events (CloudEvents 1.0)",
		Subjects:    []string{EventsSubjectPrefix + ">"},
	}, {
		Name:        NotificationsStream,
		Description: "customerbus notification events (CloudEvents 1.0); they carry one-time tokens",
		Subjects:    []string{NotificationsSubjectPrefix + ">"},
	}} {
		cfg.Storage = jetstream.FileStorage
		cfg.Retention = jetstream.LimitsPolicy
		cfg.MaxAge = opts.MaxAge
		cfg.Duplicates = DuplicateWindow
		cfg.Replicas = replicas
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("events: ensure stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}
