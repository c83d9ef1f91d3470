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
	return retry(ctx, func() (jetstream.Consumer, error) {
		if prepare != nil {
			if err := prepare(ctx); err != nil {
				return nil, err
			}
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
		if err != nil {
			return nil, fmt.Errorf("consumer %s on %s: %w", cfg.Durable, stream, err)
		}
		return cons, nil
	}, retrying)
}

// OrderedConsumer is DurableConsumer for an ordered consumer: one of this
// process alone, which gets every message it asks for in stream order and
// makes itself again where it missed one or lost its server.
func OrderedConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig,
	retrying func(err error, backoff time.Duration)) (jetstream.Consumer, error) {
	return retry(ctx, func() (jetstream.Consumer, error) {
		cons, err := js.OrderedConsumer(ctx, stream, cfg)
		if err != nil {
			return nil, fmt.Errorf("ordered consumer on %s: %w", stream, err)
		}
		return cons, nil
	}, retrying)
}

// retry calls try until it succeeds, with backoff, reporting each failure
// to retrying; it returns nil, nil when ctx ends first.
func retry(ctx context.Context, try func() (jetstream.Consumer, error),
	retrying func(err error, backoff time.Duration)) (jetstream.Consumer, error) {
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		cons, err := try()
		if err == nil {
			return cons, nil
		}
		retrying(err, backoff)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(backoff):
		}
	}
}

// PullExpiry is how long each pull request of Messages waits on the server
// unless the caller picks another; nats.go's default is 30 s.
const PullExpiry = 5 * time.Second

// pullHeartbeat is how often the server says a pull request is still
// waiting; a request that missed two is taken for lost and made again.
const pullHeartbeat = time.Second

// Messages opens the iterator every consumer reads cons through: its pull
// requests expire after expiry (at least 1 s) and their heartbeats come
// every second (every expiry/2 below 2 s), so that a lost pull is noticed
// within two seconds and made again. A pull request waits on the
// consumer's leader. One waiting when the leader's node goes is answered
// by the next leader (JetStream replicates them), but one made while there
// is none (the node vanished, and the others take 4 to 9 s to elect
// another) is lost without a word: nats.go notices only by the missing
// heartbeats, with its defaults (expiry 30 s, heartbeat 15 s) 30 s later.
// opts add to these (the batch, a priority group).
func Messages(cons jetstream.Consumer, expiry time.Duration, opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	return cons.Messages(append([]jetstream.PullMessagesOpt{
		jetstream.PullExpiry(expiry), jetstream.PullHeartbeat(min(pullHeartbeat, expiry/2)),
	}, opts...)...)
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

// EachBatch is EachMessage for handlers that work in batches: messages are
// read one by one, and those waiting when handle is free go to it together,
// up to max. It returns once the iterator closed and handle has had every
// message read.
func EachBatch(it jetstream.MessagesContext, max int, handle func([]jetstream.Msg), onErr func(error)) error {
	msgs := make(chan jetstream.Msg, max)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range msgs {
			batch := []jetstream.Msg{msg}
			for more := true; more && len(batch) < max; {
				select {
				case next, ok := <-msgs:
					if ok {
						batch = append(batch, next)
					}
					more = ok
				default:
					more = false
				}
			}
			handle(batch)
		}
	}()
	err := EachMessage(it, func(msg jetstream.Msg) { msgs <- msg }, onErr)
	close(msgs)
	<-done
	return err
}
