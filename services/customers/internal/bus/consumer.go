package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/events"
)

// consumeCommands applies the commands of the durable consumer.
func (b *Bus) consumeCommands(ctx context.Context, js jetstream.JetStream) error {
	cons, err := b.commandsConsumer(ctx, js)
	if err != nil || ctx.Err() != nil {
		return err
	}
	// Its own expiry, not events.PullExpiry: each pull renews the pin.
	it, err := events.Messages(cons, b.cfg.pullExpiry(), jetstream.PullMaxMessages(4*commandLanes), jetstream.PullPriorityGroup(commandsGroup))
	if err != nil {
		return fmt.Errorf("bus: consume commands: %w", err)
	}
	hand := newInHand()
	// Stopping, the instance drains: it pulls no more, and applies every
	// command already delivered to it, so none is left to come back after
	// AckWait behind newer ones that another instance took up meanwhile.
	// Then it hands the pin over rather than leaving it to expire.
	work, giveUp := context.WithCancel(context.WithoutCancel(ctx))
	defer giveUp()
	var drainStart atomic.Int64 // unix nanoseconds
	stop := context.AfterFunc(ctx, func() {
		drainStart.Store(time.Now().UnixNano())
		hand.drain()
		it.Drain()
		time.AfterFunc(b.cfg.DrainTimeout, giveUp)
	})
	defer stop()
	defer func() {
		// The pin is still ours while our last pull (at most one expiry
		// before the drain) is within PinnedTTL; past that another
		// instance may hold it, and unpinning would take it from one that
		// is working.
		draining := time.Since(time.Unix(0, drainStart.Load()))
		if ctx.Err() != nil && draining+b.cfg.pullExpiry() < b.cfg.PinnedTTL-time.Second {
			b.handOver(js)
		}
	}()
	// The keep-alive outlasts the lanes: it keeps what they drain in hand.
	keeping, stopKeeping := context.WithCancel(context.Background())
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		b.keepAlive(keeping, hand)
	}()
	defer func() { stopKeeping(); <-kept }()
	// Commands run on lanes, several at a time; all commands about one
	// customer take the same lane, in stream order, so they are applied in
	// the order they were published. A lane has room for every command the
	// consumer lets the instance hold, so the reader never waits for one:
	// however long a lane takes, the reader goes on pulling, which keeps
	// its pin (and its commands in hand, see inHand).
	lanes := make([]chan command, commandLanes)
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan command, maxCommandsInHand)
		wg.Go(func() {
			for c := range lanes[i] {
				// The commands waiting on the lane run in one transaction:
				// one BEGIN and COMMIT for all, in their order.
				batch := []command{c}
				for more := true; more && len(batch) < maxCommandBatch; {
					select {
					case next, ok := <-lanes[i]:
						if ok {
							batch = append(batch, next)
						}
						more = ok
					default:
						more = false
					}
				}
				b.handleCommands(work, js, batch)
				hand.release(batch)
			}
		})
	}
	defer func() {
		for _, l := range lanes {
			close(l)
		}
		wg.Wait()
	}()
	return b.readCommands(work, js, it, hand, lanes)
}

// redeliveryGap is how long the reader waits for more commands delivered
// again before it lets those it has go on (see readCommands).
const redeliveryGap = 200 * time.Millisecond

// readCommands puts each command the iterator delivers on its lane, until
// the iterator closes. JetStream delivers the commands a reader that died
// held before any newer one, but in the order they fell due, not in the
// order they were published: the commands delivered again wait until a
// first delivery comes, or none came for redeliveryGap, and go on in
// stream order.
func (b *Bus) readCommands(ctx context.Context, js jetstream.JetStream, it jetstream.MessagesContext, hand *inHand, lanes []chan command) error {
	var again []command
	release := func() {
		slices.SortFunc(again, func(x, y command) int { return cmp.Compare(x.seq, y.seq) })
		for _, c := range again {
			lanes[laneOf(c.key)] <- c
		}
		again = again[:0]
	}
	for {
		var wait []jetstream.NextOpt
		if len(again) > 0 {
			wait = append(wait, jetstream.NextMaxWait(redeliveryGap))
		}
		msg, err := it.Next(wait...)
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			release()
			return nil
		case errors.Is(err, nats.ErrTimeout):
			release()
			continue
		case err != nil: // the iterator goes on after its other errors
			b.log.Warn("bus: consume commands", zap.Error(err))
			continue
		}
		hand.away()
		c, delivered, err := commandOf(msg)
		switch {
		case err != nil:
			b.deadLetter(ctx, js, msg, deadLetterInvalid, err.Error())
		case delivered > 1:
			hand.hold(msg)
			again = append(again, c)
		default:
			hand.hold(msg)
			release()
			lanes[laneOf(c.key)] <- c
		}
		hand.back()
	}
}

// commandOf reads the command in a message of the stream, and how many
// times JetStream delivered it.
func commandOf(msg jetstream.Msg) (c command, delivered uint64, err error) {
	c, err = readCommand(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
	if err != nil {
		return c, 0, err
	}
	c.msg, c.key, delivered = msg, commandKey(c.event), 1
	if md, err := msg.Metadata(); err == nil {
		c.seq, delivered = md.Sequence.Stream, md.NumDelivered
	}
	return c, delivered, nil
}

// handOver unpins this instance, so that another takes up the commands at
// once instead of after PinnedTTL.
func (b *Bus) handOver(js jetstream.JetStream) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.CommandsStream)
	if err == nil {
		err = st.UnpinConsumer(ctx, events.CommandsConsumer, commandsGroup)
	}
	if err != nil {
		b.log.Warn("bus: could not hand the commands over; another instance takes them after COMMANDS_PINNED_TTL", zap.Error(err))
	}
}

// commandsConsumer creates the command streams and the durable consumer,
// retrying while NATS is not there.
func (b *Bus) commandsConsumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	return events.DurableConsumer(ctx, js, events.CommandsStream, jetstream.ConsumerConfig{
		Durable:       events.CommandsConsumer,
		Description:   "applies integrators' commands",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.AckWait,
		MaxAckPending: maxCommandsInHand,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// One instance at a time (see commandsGroup).
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{commandsGroup},
		PinnedTTL:      b.cfg.PinnedTTL,
	}, func(ctx context.Context) error {
		return events.EnsureCommandStreams(ctx, js, events.StreamOptions{
			DeadLetterMaxAge: b.cfg.DeadLetterMaxAge, Replicas: b.cfg.StreamReplicas,
		})
	}, func(err error, backoff time.Duration) {
		b.log.Warn("bus: command stream not ready, retrying", zap.Error(err), zap.Duration("backoff", backoff))
	})
}

// commandLanes is how many commands an instance runs at a time.
const commandLanes = 16

// maxCommandsInHand bounds the commands delivered and not yet answered
// (the consumer's MaxAckPending): room for a full batch on every lane and
// the next one waiting behind it. JetStream's default is 1,000.
const maxCommandsInHand = 2 * commandLanes * maxCommandBatch

func laneOf(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % commandLanes)
}

// handleCommands has a lane's batch of commands applied (by any instance,
// see applySubject) and answers them. A failure is retried in place, so
// that no later command about the same customer overtakes it; the
// keep-alive holds the batch meanwhile.
func (b *Bus) handleCommands(ctx context.Context, js jetstream.JetStream, batch []command) {
	for {
		deadLetter, err := b.applyShared(ctx, js.Conn(), batch)
		if err == nil {
			for i, c := range batch {
				if deadLetter[i] != "" {
					b.deadLetter(ctx, js, c.msg, c.event.Type(), deadLetter[i])
				} else {
					_ = c.msg.Ack()
				}
			}
			return
		}
		if ctx.Err() != nil {
			giveBack(batch)
			return
		}
		b.log.Warn("bus: commands failed; retrying", zap.Int("commands", len(batch)), zap.String("first", batch[0].event.ID()), zap.Error(err))
		select {
		case <-ctx.Done():
			giveBack(batch)
			return
		case <-time.After(b.cfg.RetryDelay):
		}
	}
}

// giveBack makes commands given up on while draining due again at once, so
// that the next reader gets them before the newer ones it reads.
func giveBack(batch []command) {
	for _, c := range batch {
		_ = c.msg.Nak()
	}
}

// maxCommandBatch bounds the commands of a lane run in one transaction.
const maxCommandBatch = 32

// Why a command was dead-lettered, as customerbus_commands_deadlettered_total
// counts it; deadLetterInvalid is also the last token of such a message's
// subject, where a refused command has its type.
const (
	deadLetterInvalid = "invalid" // not a command
	deadLetterRefused = "refused"
)

// deadLetter copies the message to the dead-letter stream with the reason,
// and terminates it: it never comes back. kind is deadLetterInvalid or the
// command's type.
func (b *Bus) deadLetter(ctx context.Context, js jetstream.JetStream, msg jetstream.Msg, kind, reason string) {
	counted := deadLetterRefused
	if kind == deadLetterInvalid {
		counted = deadLetterInvalid
	}
	if !validSubjectTokens(kind) {
		kind = deadLetterInvalid // a type that cannot be part of a subject
	}
	dl := nats.NewMsg(events.CommandsDeadLetterPrefix + kind)
	dl.Data = msg.Data()
	for k, v := range msg.Headers() {
		dl.Header[k] = v
	}
	dl.Header.Del(nats.MsgIdHdr) // the original's id would be dropped as a duplicate
	dl.Header.Set(DeadLetterReasonHeader, reason)
	dl.Header.Set(DeadLetterSubjectHeader, msg.Subject())
	_, err := js.PublishMsg(ctx, dl)
	if errors.Is(err, nats.ErrMaxPayload) {
		// The original was near the size limit: our headers pushed it over.
		dl.Data = nil
		dl.Header.Set(DeadLetterTruncatedHeader, "the data is not kept: with these headers it was over NATS's maximum payload")
		_, err = js.PublishMsg(ctx, dl)
	}
	if err != nil {
		b.log.Warn("bus: dead-letter failed; will retry", zap.Error(err))
		_ = msg.NakWithDelay(b.cfg.RetryDelay)
		return
	}
	b.log.Warn("bus: command dead-lettered", zap.String("subject", msg.Subject()), zap.String("reason", reason))
	b.deadLettered.WithLabelValues(counted).Inc()
	_ = msg.Term()
	// Moved, not copied: the dead-letter stream is then the only place that
	// holds the command, and an erasure of the customer it names reads it
	// whole (a command that is not even a CloudEvent names nobody the
	// command stream could be searched by).
	if meta, err := msg.Metadata(); err == nil {
		if err := deleteCommand(ctx, js, meta.Sequence.Stream); err != nil {
			b.log.Warn("bus: a dead-lettered command stays in its stream too", zap.Uint64("stream_seq", meta.Sequence.Stream), zap.Error(err))
		}
	}
}

// deleteCommand erases a command's message from the command stream.
func deleteCommand(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	s, err := js.Stream(ctx, events.CommandsStream)
	if err != nil {
		return err
	}
	if err := s.SecureDeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	return nil
}

// validSubjectTokens reports whether s can end a subject: short,
// dot-separated tokens, none empty, no wildcards or white space.
func validSubjectTokens(s string) bool {
	if len(s) > 128 {
		return false // a long subject would strain NATS's control line
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return false
		}
	}
	return true
}
