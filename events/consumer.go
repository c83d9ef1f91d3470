package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DurableConsumer creates (or updates) a durable consumer on stream, after
// prepare (creating the streams the consumer needs; may be nil). While NATS
// or the stream is not there yet, as when a subscriber starts before the
// relay, it retries with backoff and reports each failure to retrying. It
// returns nil, nil when ctx ends first.
func DurableConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig,
	prepare func(context.Context) error, retrying func(err error, backoff time.Duration)) (jetstream.Consumer, error) {
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		var err error
		if prepare != nil {
			err = prepare(ctx)
		}
		if err == nil {
			cons, cerr := js.CreateOrUpdateConsumer(ctx, stream, cfg)
			if cerr == nil {
				return cons, nil
			}
			err = fmt.Errorf("consumer %s on %s: %w", cfg.Durable, stream, cerr)
		}
		retrying(err, backoff)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(backoff):
		}
	}
}

// EachMessage hands every message of it to handle, one after another, until
// the iterator closes: the caller stops (or drains) it to end. Errors the
// iterator goes on after (missed heartbeats and the like) go to onErr.
func EachMessage(it jetstream.MessagesContext, handle func(jetstream.Msg), onErr func(error)) error {
	for {
		msg, err := it.Next()
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return nil
		case err != nil:
			onErr(err)
		default:
			handle(msg)
		}
	}
}
