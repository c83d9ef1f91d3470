package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamOptions tunes the streams a service creates.
type StreamOptions struct {
	MaxAge   time.Duration // how long events are kept; 0 keeps them forever
	Replicas int           // at least this many (STREAM_REPLICAS); 0 means 1
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

// EnsureStreams creates the events and notifications streams, or updates
// them as EnsureStream does.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, opts StreamOptions) error {
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
		cfg.Replicas = opts.Replicas
		if err := EnsureStream(ctx, js, cfg); err != nil {
			return err
		}
	}
	return nil
}

// EnsureStream creates the stream as want says (Replicas 0 is 1), or
// updates the existing one without undoing what an operator raised, so
// that no service started with a lower STREAM_REPLICAS (or the default)
// lowers a stream. Of a stream's configuration the services own only what
// they depend on, and take it from want:
//   - what the stream is: its description, subjects, storage and retention;
//   - MaxAge, which follows its setting (EVENTS_MAX_AGE, DEADLETTER_MAX_AGE)
//     up and down, because it bounds how long personal data is kept;
//   - NoAck off: the relay waits for acks.
//
// (DenyDelete would stop erasures, and JetStream never lets it be turned
// off again: no operator may set it.)
//
// Replicas and the duplicate window are want's at least: a stream with more
// keeps them. Everything else (MaxBytes, MaxMsgs, Discard, Placement,
// Compression, …) stays as the operator set it.
func EnsureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	want.Replicas = max(want.Replicas, 1)
	_, err := js.CreateStream(ctx, want)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		var st jetstream.Stream
		if st, err = js.Stream(ctx, want.Name); err == nil {
			_, err = js.UpdateStream(ctx, keepRaised(st.CachedInfo().Config, want))
		}
	}
	if err != nil {
		return fmt.Errorf("events: ensure stream %s: %w", want.Name, err)
	}
	return nil
}

// keepRaised is the stream's current configuration with what the services
// own taken from want (see EnsureStream).
func keepRaised(cur, want jetstream.StreamConfig) jetstream.StreamConfig {
	cfg := cur
	cfg.Description, cfg.Subjects = want.Description, want.Subjects
	cfg.Storage, cfg.Retention = want.Storage, want.Retention
	cfg.MaxAge = want.MaxAge
	cfg.NoAck = false
	cfg.Replicas = max(cur.Replicas, want.Replicas)
	cfg.Duplicates = max(cur.Duplicates, want.Duplicates)
	if cfg.MaxAge > 0 { // JetStream refuses a window longer than MaxAge
		cfg.Duplicates = min(cfg.Duplicates, max(cfg.MaxAge, want.Duplicates))
	}
	return cfg
}
