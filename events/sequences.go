package events

import (
	"context"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Sequences tells a consumer that reads every event of some resources, in
// the order of their stream, when a resource's sequence jumps: an event
// comes whose sequence is above the one after the highest seen of its
// subject, so the events between are missing. They may have been lost by
// the stream (the relay's reconciler publishes them again, later), erased
// with their customer, deleted by hand, or never published. An event at or
// below the highest seen is no gap: a redelivery, or one published again
// late.
//
// Only a consumer that gets every event of a subject can tell: not one
// filtered to some event types, nor one of several instances that share a
// durable consumer, which each get a part of a resource's events.
//
// It remembers between max/2 and max subjects, the most recently seen: the
// first event of a subject it does not remember sets its mark, so a gap of
// a subject forgotten goes unnoticed and nothing is taken for a gap that
// is not one. It is not safe for concurrent use.
type Sequences struct {
	max       int
	cur, prev map[string]int64 // two generations: prev is dropped when cur is full
}

// NewSequences returns a Sequences that remembers at most max subjects.
func NewSequences(max int) *Sequences {
	return &Sequences{max: max, cur: map[string]int64{}, prev: map[string]int64{}}
}

// See records an event of subject with sequence seq (sequences start at 1;
// one below is no sequence and is ignored), and reports whether it jumps
// past expected, the sequence after the highest seen before.
func (s *Sequences) See(subject string, seq int64) (expected int64, gap bool) {
	if seq < 1 {
		return 0, false
	}
	last, seen := s.cur[subject]
	if !seen {
		last, seen = s.prev[subject]
	}
	s.put(subject, max(last, seq))
	return last + 1, seen && seq > last+1
}

func (s *Sequences) put(subject string, seq int64) {
	s.cur[subject] = seq
	if len(s.cur) >= max(s.max/2, 1) {
		s.prev, s.cur = s.cur, map[string]int64{}
	}
}

// WatchSequences reads every event of the events stream on subjects as it
// is published, from when it starts, and calls gap for each that jumps past
// the next sequence of its resource (see Sequences; it remembers memory
// resources). A durable consumer cannot tell: several instances share it,
// each getting a part of the events, and it may be filtered to some types.
// So each instance watches on an ordered consumer of its own. It returns
// when ctx ends; log gets what keeps it from reading.
func WatchSequences(ctx context.Context, js jetstream.JetStream, subjects []string, memory int, log *zap.Logger,
	gap func(e cloudevents.Event, expected int64)) error {
	cons, err := OrderedConsumer(ctx, js, EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverNewPolicy,
	}, func(err error, backoff time.Duration) {
		log.Warn("sequence watch not ready, retrying", zap.Error(err), zap.Duration("backoff", backoff))
	})
	if err != nil || ctx.Err() != nil {
		return err
	}
	it, err := Messages(cons, PullExpiry)
	if err != nil {
		return fmt.Errorf("watch sequences: %w", err)
	}
	defer context.AfterFunc(ctx, it.Stop)()
	seqs := NewSequences(memory)
	return EachMessage(it, func(msg jetstream.Msg) {
		e, err := FromMsg(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		if err != nil {
			return // no sequence to read: the consumers that need the event say so
		}
		if expected, jumped := seqs.See(e.Subject(), Sequence(e)); jumped {
			gap(e, expected)
		}
	}, func(err error) { log.Warn("watch sequences", zap.Error(err)) })
}

// LogGap logs a gap WatchSequences found, the same way in every service.
func LogGap(log *zap.Logger, e cloudevents.Event, expected int64) {
	log.Warn("sequence gap: events of the resource did not come", zap.String("subject", e.Subject()),
		zap.Int64("expected", expected), zap.Int64("got", Sequence(e)), zap.String("ce_id", e.ID()), zap.String("ce_type", e.Type()))
}
