package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
)

// The reconciler. JetStream acknowledges a message once it has stored it,
// and may lose it still: Jepsen's analysis of NATS found acknowledged
// writes lost to crashes and corrupt files, and an operator may delete
// messages or a whole stream. The outbox keeps the sent events for
// OUTBOX_RETENTION and the event log says where each stream keeps them, so
// every ReconcileInterval the relay checks that the streams still hold
// every event it published within ReconcileWindow, and publishes again, in
// outbox order, those they lost. An event's message is lost when
//   - its sequence is below the stream's first (a purge), above its last
//     (a stream reset), or among its deleted or lost sequences; or the
//     stream is gone (it is made again, empty);
//   - it was published before its stream was created (made again since)
//     and the message at its sequence has another Nats-Msg-Id: a new
//     stream's sequences start again, so they are checked message by message.
//
// What goes on purpose stays gone: per stream the window ends at its
// MaxAge, and an erased event has no stream sequence in the log. The
// events of a customer whose erasure is under way are not checked (it may
// have deleted some already), and the erasure deletes holding the
// reconciler's lock, so a reconciler never sees half an erasure.
//
// An event published again keeps its CloudEvent id (consumers handle each
// id once) under the Nats-Msg-Id "<event id>:r<lost sequence>": with its
// own id JetStream would drop it, within events.DuplicateWindow, as a
// duplicate of the lost message; and a reconciler that dies before it logs
// the new sequence publishes it again under the same id, which JetStream
// drops. It comes after newer events of its customer; consumers order by
// the sequence extension.

// reconcileLockKey is the advisory lock of the reconciler ("reconcil"):
// one relay reconciles at a time, and an erasure deletes holding it.
const reconcileLockKey int64 = 0x7265636f6e63696c

// maxClockSkew is how far apart the clocks of PostgreSQL, NATS and the
// relay may be.
const maxClockSkew = time.Minute

// reconcileLoop reconciles every ReconcileInterval until ctx ends.
func (r *Relay) reconcileLoop(ctx context.Context) error {
	tick := time.NewTicker(r.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if _, err := r.reconcile(ctx); err != nil && ctx.Err() == nil {
			r.metrics.reconcileFailures.Inc()
			r.log.Warn("relay: reconcile failed, retrying", zap.Error(err), zap.Duration("in", r.cfg.ReconcileInterval))
		}
	}
}

// reconcile publishes again the events of the window their streams lost,
// and returns how many.
func (r *Relay) reconcile(ctx context.Context) (int, error) {
	tx, q, locked, err := r.beginTryLock(ctx, reconcileLockKey)
	if err != nil {
		return 0, fmt.Errorf("relay: reconcile: %w", err)
	}
	if !locked {
		return 0, nil // another relay is reconciling, or an erasure deleting
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	// The log before the streams: an event logged after its stream's state
	// was read would look lost.
	published, err := q.PublishedSince(ctx, time.Now().Add(-r.cfg.ReconcileWindow))
	if err != nil {
		return 0, fmt.Errorf("relay: reconcile: published events: %w", err)
	}
	held := &lease{q: q, key: reconcileLockKey, renewed: time.Now()}
	if r.pause != nil {
		r.pause("reconcile")
	}
	lost, err := r.findLost(ctx, published, held)
	if err != nil {
		r.verified = nil // read every message again, as at the start
	}
	if err != nil || len(lost) == 0 {
		return 0, err
	}
	n, err := r.republish(ctx, q, lost)
	if n > 0 {
		if cerr := tx.Commit(context.WithoutCancel(ctx)); cerr != nil {
			return 0, errors.Join(err, fmt.Errorf("relay: reconcile: commit: %w", cerr))
		}
	}
	return n, err
}

// findLost returns, in outbox order, the published events whose streams
// no longer hold them. Reading the streams may take long (a message per
// event of a stream made again), so it renews the reconciler's lease.
func (r *Relay) findLost(ctx context.Context, published []gen.PublishedSinceRow, held *lease) ([]gen.PublishedSinceRow, error) {
	streams := map[string]*streamCheck{}
	var lost []gen.PublishedSinceRow
	for _, p := range published {
		if err := held.renew(ctx); err != nil {
			return nil, fmt.Errorf("relay: reconcile: %w", err)
		}
		c, ok := streams[p.Stream]
		if !ok {
			var err error
			if c, err = r.checkStream(ctx, p.Stream); err != nil {
				return nil, fmt.Errorf("relay: reconcile: %w", err)
			}
			streams[p.Stream] = c
		}
		gone, err := c.lost(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("relay: reconcile: %w", err)
		}
		if gone {
			lost = append(lost, p)
		}
	}
	r.verified = verifiedIn(streams)
	return lost, nil
}

// streamCheck is a stream's state as a reconciliation pass read it.
type streamCheck struct {
	name        string
	stream      jetstream.Stream
	first, last uint64
	gone        map[uint64]struct{} // deleted or lost between first and last
	// expiresBefore: an event published earlier may have expired (MaxAge).
	expiresBefore time.Time
	// verifyBefore: an event published earlier may have been in an earlier
	// stream of the name, its sequence now another message's.
	verifyBefore time.Time
	// created is when the stream was made. verified holds the sequences an
	// earlier pass read an event's own message at in this same stream, with
	// the event's id, and stillVerified those this pass found so, to carry
	// on to the next.
	created                 time.Time
	verified, stillVerified map[uint64]uuid.UUID
}

// verifiedStream is what a pass found of a stream for the next: when it
// was made and the sequences whose message was read and found to be the
// event's. JetStream never stores another message at a sequence of the
// same stream, and a deletion shows in the stream's state, so while the
// stream is the one made then a later pass need not read them again:
// without this, every pass of the window would read, one request each,
// every message published in a stream's first minute (clocks may differ
// by that much), for as long as the window holds them.
type verifiedStream struct {
	created time.Time
	seqs    map[uint64]uuid.UUID
}

// verifiedIn is what the streams a pass checked carry on to the next.
func verifiedIn(checked map[string]*streamCheck) map[string]verifiedStream {
	v := make(map[string]verifiedStream, len(checked))
	for name, c := range checked {
		v[name] = verifiedStream{created: c.created, seqs: c.stillVerified}
	}
	return v
}

// checkStream reads a stream's state, with its deleted sequences. A stream
// that is gone is made again, empty.
func (r *Relay) checkStream(ctx context.Context, name string) (*streamCheck, error) {
	s, err := r.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if err = r.ensureStreamsOnce(ctx); err == nil {
			s, err = r.js.Stream(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := s.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	st := info.State
	c := &streamCheck{
		name: name, stream: s, first: st.FirstSeq, last: st.LastSeq,
		gone: make(map[uint64]struct{}, len(st.Deleted)), verifyBefore: info.Created.Add(r.clockSkew),
		created: info.Created, stillVerified: map[uint64]uuid.UUID{},
	}
	if v, ok := r.verified[name]; ok && v.created.Equal(info.Created) {
		c.verified = v.seqs
	}
	for _, seq := range st.Deleted {
		c.gone[seq] = struct{}{}
	}
	if st.Lost != nil {
		for _, seq := range st.Lost.Msgs {
			c.gone[seq] = struct{}{}
		}
	}
	if info.Config.MaxAge > 0 {
		c.expiresBefore = time.Now().Add(r.clockSkew - info.Config.MaxAge)
	}
	return c, nil
}

// lost tells whether the stream lost a published event. A message is
// stored after its outbox row is sent (sent_at is when the batch's
// transaction began), so an event sent after the stream was created is in
// this stream, and its sequence alone says whether it is still there.
func (c *streamCheck) lost(ctx context.Context, p gen.PublishedSinceRow) (bool, error) {
	if p.SentAt.Before(c.expiresBefore) {
		return false, nil // it may have expired, as it should
	}
	seq := uint64(p.StreamSeq)
	if _, gone := c.gone[seq]; gone || seq < c.first || seq > c.last {
		return true, nil
	}
	if !p.SentAt.Before(c.verifyBefore) {
		return false, nil
	}
	if id, ok := c.verified[seq]; ok && id == p.EventID {
		c.stillVerified[seq] = id
		return false, nil
	}
	m, err := c.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s message %d: %w", c.name, seq, err)
	}
	if !isMsgOf(m.Header.Get(nats.MsgIdHdr), p.EventID) {
		return true, nil
	}
	c.stillVerified[seq] = p.EventID
	return false, nil
}

// republishedMsgID is the Nats-Msg-Id of an event published again because
// its message at lostSeq was lost.
func republishedMsgID(eventID uuid.UUID, lostSeq int64) string {
	return fmt.Sprintf("%s:r%d", eventID, lostSeq)
}

// isMsgOf tells whether a Nats-Msg-Id is the event's: its first
// publication's or a re-publication's.
func isMsgOf(msgID string, eventID uuid.UUID) bool {
	id := eventID.String()
	return msgID == id || strings.HasPrefix(msgID, id+":r")
}

// republish publishes the lost events again from the outbox, in outbox
// order, a page at a time and, as the lanes do, with at most one event per
// customer awaiting its ack. It logs where the streams keep them now and
// returns how many it published, stopping at the first failure.
func (r *Relay) republish(ctx context.Context, q *gen.Queries, lost []gen.PublishedSinceRow) (int, error) {
	lostAt := make(map[int64]gen.PublishedSinceRow, len(lost))
	for _, l := range lost {
		lostAt[l.OutboxID] = l
	}
	msgID := func(row gen.Outbox) string { return republishedMsgID(row.EventID, lostAt[row.ID].StreamSeq) }
	done := 0
	for page := range slices.Chunk(lost, r.cfg.BatchSize) {
		if ctx.Err() != nil {
			break
		}
		ids := make([]int64, len(page))
		for i, l := range page {
			ids[i] = l.OutboxID
		}
		rows, err := q.OutboxEvents(ctx, ids) // a row purged meanwhile is not published
		if err != nil {
			return done, fmt.Errorf("relay: reconcile: outbox events: %w", err)
		}
		for len(rows) > 0 {
			batch := firstPerPartition(rows)
			acked, err := r.republishBatch(ctx, q, batch, msgID)
			published := make(map[int64]bool, len(acked))
			for i, a := range acked {
				published[a.ID] = true
				r.metrics.reconciled.WithLabelValues(a.Stream).Inc()
				r.log.Info("relay: published a lost event again", zap.Stringer("ce_id", batch[i].EventID),
					zap.String("type", events.TypeOf(batch[i].NatsSubject)), zap.String("stream", a.Stream),
					zap.Int64("lost_seq", lostAt[a.ID].StreamSeq), zap.Uint64("stream_seq", a.Seq))
			}
			done += len(acked)
			if err != nil {
				return done, err
			}
			rows = slices.DeleteFunc(rows, func(row gen.Outbox) bool { return published[row.ID] })
		}
	}
	return done, nil
}

// republishBatch publishes one batch again and logs the acknowledged
// events' new place. It returns their acks, a leading run of rows.
func (r *Relay) republishBatch(ctx context.Context, q *gen.Queries, rows []gen.Outbox, msgID func(gen.Outbox) string) ([]ack, error) {
	ctx, cancel := r.batchContext(ctx)
	defer cancel()
	acked, pubErr := r.publish(ctx, rows, msgID, time.Now().Add(r.cfg.PublishTimeout))
	if len(acked) == 0 {
		return nil, pubErr
	}
	var p gen.LogRepublishedEventsParams
	for _, a := range acked {
		p.OutboxIds = append(p.OutboxIds, a.ID)
		p.Streams = append(p.Streams, a.Stream)
		p.StreamSeqs = append(p.StreamSeqs, int64(a.Seq))
	}
	if err := q.LogRepublishedEvents(ctx, p); err != nil {
		return nil, errors.Join(pubErr, fmt.Errorf("relay: reconcile: log published events: %w", err))
	}
	if err := q.MarkOutboxSent(ctx, p.OutboxIds); err != nil {
		return nil, errors.Join(pubErr, fmt.Errorf("relay: reconcile: mark sent: %w", err))
	}
	return acked, pubErr
}
