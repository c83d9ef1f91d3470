package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
)

// Erasure of the event log. When a customer is anonymized (or deleted with
// erasure), the command service scrubs the database and leaves an erasure
// to do; the relay, which writes the log, erases it from the log. Once the
// erasure's own first event (customer.anonymized) is published, and with it
// every earlier event of the customer, it removes every earlier message
// about the customer from every stream, with JetStream's secure erase (the
// message's bytes are overwritten, not only unlinked):
//   - the events and notifications it published, found through the event
//     log (each event's stream and sequence, from its publish ack), and
//     their outbox rows;
//   - the customer's bus commands in CUSTOMERBUS_COMMANDS, found through
//     processed_commands;
//   - the dead letters naming the customer (its id, its emails), found by
//     reading the dead-letter streams, which hold only what failed.
//
// The erasure's own events and later ones stay, so an app that reads the
// stream late still learns that it must erase its copy.

// deadLetterStreams are read whole for the customer's id and emails. The
// notifier and the command service create them; one that does not exist
// holds nothing.
var deadLetterStreams = []string{events.CommandsDeadLetterStream, events.NotificationsDeadLetterStream}

// eraseLoop does pending erasures until ctx ends, woken like the lanes.
func (r *Relay) eraseLoop(ctx context.Context, wake <-chan struct{}) error {
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	for {
		for {
			n, err := r.eraseBatch(ctx)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("relay: erasures failed, retrying", zap.Error(err))
			}
			if n == 0 || err != nil {
				break
			}
		}
		open, err := r.q.CountPendingErasures(ctx)
		r.erasuresOpen.Store(err != nil || open > 0)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		}
	}
}

// eraseBatch does the erasures that are ready; it returns how many it did.
func (r *Relay) eraseBatch(ctx context.Context) (int, error) {
	pending, err := r.q.PendingErasures(ctx, 10)
	if err != nil {
		return 0, fmt.Errorf("relay: pending erasures: %w", err)
	}
	done := 0
	for _, e := range pending {
		n, err := r.erase(ctx, e)
		if err != nil {
			if ctx.Err() != nil {
				return done, nil
			}
			r.metrics.erasureFailures.Inc()
			if ferr := r.q.FailErasure(context.WithoutCancel(ctx), gen.FailErasureParams{CustomerID: e.CustomerID, LastError: err.Error()}); ferr != nil {
				return done, errors.Join(err, ferr)
			}
			return done, err
		}
		done++
		r.metrics.erased.Add(float64(n))
		r.log.Info("relay: erased a customer's messages", zap.Stringer("customer_id", e.CustomerID), zap.Int("messages", n),
			zap.Duration("since_request", time.Since(e.RequestedAt)))
	}
	return done, nil
}

// erase removes the erasure's messages from every stream and marks it done.
// Each step can be run again: a message erased already is not found, and
// that is success.
func (r *Relay) erase(ctx context.Context, e gen.PendingErasuresRow) (int, error) {
	erased := 0
	streams := map[string]jetstream.Stream{}
	del := func(name string, seq int64) error {
		s, ok := streams[name]
		if !ok {
			var err error
			if s, err = r.js.Stream(ctx, name); errors.Is(err, jetstream.ErrStreamNotFound) {
				streams[name] = nil
				return nil
			} else if err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
			streams[name] = s
		}
		if s == nil {
			return nil
		}
		err := s.SecureDeleteMsg(ctx, uint64(seq))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil // erased before, or aged out
		}
		if err != nil {
			return fmt.Errorf("erase %s message %d: %w", name, seq, err)
		}
		erased++
		return nil
	}

	if err := r.eraseLogged(ctx, e, del); err != nil {
		return erased, err
	}

	cmds, err := r.q.CommandsToErase(ctx, &e.CustomerID)
	if err != nil {
		return erased, fmt.Errorf("commands to erase: %w", err)
	}
	cmdIDs := make([]string, 0, len(cmds))
	for _, c := range cmds {
		if err := del(events.CommandsStream, *c.StreamSeq); err != nil {
			return erased, err
		}
		cmdIDs = append(cmdIDs, c.CommandID)
	}
	if err := r.q.MarkCommandsErased(ctx, cmdIDs); err != nil {
		return erased, fmt.Errorf("mark commands erased: %w", err)
	}

	needles := [][]byte{[]byte(e.CustomerID.String())}
	for _, em := range e.Emails {
		if em != "" {
			needles = append(needles, []byte(em))
		}
	}
	for _, name := range deadLetterStreams {
		seqs, err := r.findDeadLetters(ctx, name, needles)
		if err != nil {
			return erased, err
		}
		for _, seq := range seqs {
			if err := del(name, int64(seq)); err != nil {
				return erased, err
			}
		}
	}
	now := time.Now()
	err = r.q.FinishErasure(ctx, gen.FinishErasureParams{CustomerID: e.CustomerID, ErasedAt: &now, Messages: int32(erased)})
	if err != nil {
		return erased, fmt.Errorf("finish erasure: %w", err)
	}
	return erased, nil
}

// eraseLogged erases the erasure's messages the event log knows of, with
// del, holding the reconciler's lock: a reconciler never sees a message
// deleted and not yet marked erased (it would publish it again), nor
// publishes one again after the erasure read where it was.
func (r *Relay) eraseLogged(ctx context.Context, e gen.PendingErasuresRow, del func(stream string, seq int64) error) error {
	tx, q, err := r.beginLocking(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	if err := q.RelayLock(ctx, reconcileLockKey); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	msgs, err := q.MessagesToErase(ctx, gen.MessagesToEraseParams{PartitionKeys: e.PartitionKeys, KeepFrom: e.KeepFrom})
	if err != nil {
		return fmt.Errorf("messages to erase: %w", err)
	}
	// Each delete rewrites a block of its stream (up to 25 ms), and a
	// customer may have thousands of messages: the lease is renewed.
	held := &lease{q: q, key: reconcileLockKey, renewed: time.Now()}
	if r.pause != nil {
		r.pause("erase")
	}
	ids := make([]int64, 0, len(msgs))
	for _, m := range msgs {
		if err := held.renew(ctx); err != nil {
			return err
		}
		if err := del(m.Stream, *m.StreamSeq); err != nil {
			return err
		}
		ids = append(ids, m.OutboxID)
	}
	if err := q.MarkMessagesErased(ctx, ids); err != nil {
		return fmt.Errorf("mark messages erased: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("mark messages erased: commit: %w", err)
	}
	return nil
}

// findDeadLetters reads a dead-letter stream whole and returns the
// sequences of the messages whose body or headers hold one of needles
// (lower case: ids and emails are stored so), in any case.
// Dead-letter streams hold only what failed, for a limited time, so
// reading them is quick; nothing indexes them by customer.
func (r *Relay) findDeadLetters(ctx context.Context, name string, needles [][]byte) ([]uint64, error) {
	s, err := r.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	var found []uint64
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted: streams have gaps
		}
		if err != nil {
			return nil, fmt.Errorf("read %s message %d: %w", name, seq, err)
		}
		if holdsAny(m, needles) {
			found = append(found, seq)
		}
	}
	return found, nil
}

func holdsAny(m *jetstream.RawStreamMsg, needles [][]byte) bool {
	hay := [][]byte{bytes.ToLower(m.Data)}
	for _, vs := range m.Header {
		for _, v := range vs {
			hay = append(hay, bytes.ToLower([]byte(v)))
		}
	}
	for _, h := range hay {
		for _, n := range needles {
			if bytes.Contains(h, n) {
				return true
			}
		}
	}
	return false
}
