package customers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/db/outbox"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/httpapi"
	"github.com/customerbus/customerbus/services/customers/internal/store"
)

// CommandsConfig tunes the consumer of bus commands.
type CommandsConfig struct {
	// AckWait is how long JetStream waits for an answer before it delivers
	// a command again.
	AckWait time.Duration `env:"COMMANDS_ACK_WAIT" envDefault:"30s"`
	// RetryDelay is the wait before a command that failed on our side (the
	// database was down, say) is tried again, in place.
	RetryDelay time.Duration `env:"COMMANDS_RETRY_DELAY" envDefault:"2s"`
	// PinnedTTL is how long the instance that reads commands may go without
	// pulling before another instance takes over (one that stops hands over
	// at once; one that hangs does not). The commands a crashed or hung
	// reader held come back after AckWait, perhaps behind newer ones, and
	// inOrder refuses those that would undo a newer command.
	PinnedTTL time.Duration `env:"COMMANDS_PINNED_TTL" envDefault:"60s"`
	// DrainTimeout bounds how long a stopping instance applies the commands
	// it holds before it gives up on them (they come back after AckWait).
	DrainTimeout time.Duration `env:"COMMANDS_DRAIN_TIMEOUT" envDefault:"15s"`
	// Retention is how long a processed command's id (and an order key's
	// last sequence) is remembered: a command published again later than
	// that is applied again. Like Idempotency-Key's 24 h, but for machines
	// that may replay a stream: 30 days.
	Retention time.Duration `env:"COMMANDS_RETENTION" envDefault:"720h"`
	// DeadLetterMaxAge is how long CUSTOMERBUS_COMMANDS_DLQ keeps a command.
	DeadLetterMaxAge time.Duration `env:"DEADLETTER_MAX_AGE" envDefault:"720h"`
}

func (c CommandsConfig) withDefaults() CommandsConfig {
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 2 * time.Second
	}
	if c.PinnedTTL < c.AckWait+2*time.Second {
		c.PinnedTTL = 2*c.AckWait + 2*time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 15 * time.Second
	}
	if c.Retention < time.Hour {
		c.Retention = 720 * time.Hour
	}
	if c.DeadLetterMaxAge <= 0 {
		c.DeadLetterMaxAge = events.DefaultDeadLetterMaxAge
	}
	return c
}

// pullExpiry is how long each pull of the reading instance waits. The pin
// is renewed with every pull, so it must be well under PinnedTTL, and the
// longer the pin outlasts AckWait plus one expiry, the likelier a hung
// reader's commands are due again before another reader starts: half the
// room between the two, between 1 s and 30 s.
func (c CommandsConfig) pullExpiry() time.Duration {
	return min(max((c.PinnedTTL-c.AckWait)/2, time.Second), 30*time.Second)
}

// commandsGroup is the consumer's priority group: one instance at a time is
// pinned to it and reads the commands, so that one customer's commands keep
// their order (inOrder guards what a crashed reader held); all instances
// apply the batches it sends (see applySubject).
const commandsGroup = "commands"

// CommandsConsumer is the durable consumer every instance shares.
const CommandsConsumer = "customers"

// Dead-letter headers: why a command could not be run at all.
const (
	DeadLetterReasonHeader  = "Customerbus-Deadletter-Reason"
	DeadLetterSubjectHeader = "Customerbus-Deadletter-Subject"
	// DeadLetterTruncatedHeader says why a dead letter has no data.
	DeadLetterTruncatedHeader = "Customerbus-Deadletter-Truncated"
)

// RunCommands applies the commands integrators publish on the bus, and
// serves them as NATS requests (see serveRPC), until ctx ends. Each command
// runs through the same use cases as HTTP, in one transaction with the
// record of its id: a command delivered or published again is recognised
// and changes nothing twice. A refused command gets a command.rejected
// event with the problem HTTP would have answered; a message that cannot
// be a command at all goes to the dead-letter stream too.
func (s *Service) RunCommands(ctx context.Context, js jetstream.JetStream) error {
	g, ctx := errgroup.WithContext(ctx)
	// This instance keeps applying batches until its own reading is done:
	// a stopping reader drains its lanes through the queue group.
	applyCtx, stopApplying := context.WithCancel(context.WithoutCancel(ctx))
	g.Go(func() error { return s.serveRPC(ctx, js.Conn()) })
	g.Go(func() error { return s.serveApply(applyCtx, js.Conn()) })
	g.Go(func() error {
		defer stopApplying()
		return s.consumeCommands(ctx, js)
	})
	return g.Wait()
}

// consumeCommands applies the commands of the durable consumer.
func (s *Service) consumeCommands(ctx context.Context, js jetstream.JetStream) error {
	cons, err := s.commandsConsumer(ctx, js)
	if err != nil || ctx.Err() != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4*commandLanes), jetstream.PullPriorityGroup(commandsGroup),
		jetstream.PullExpiry(s.cfg.Commands.pullExpiry()))
	if err != nil {
		return fmt.Errorf("customers: consume commands: %w", err)
	}
	// Stopping, the instance drains: it pulls no more, and applies every
	// command already delivered to it, so none is left to come back after
	// AckWait behind newer ones that another instance took up meanwhile.
	// Then it hands the pin over rather than leaving it to expire.
	work, giveUp := context.WithCancel(context.WithoutCancel(ctx))
	defer giveUp()
	var drainStart atomic.Int64 // unix nanoseconds
	stop := context.AfterFunc(ctx, func() {
		drainStart.Store(time.Now().UnixNano())
		it.Drain()
		time.AfterFunc(s.cfg.Commands.DrainTimeout, giveUp)
	})
	defer stop()
	defer func() {
		// The pin is still ours while our last pull (at most one expiry
		// before the drain) is within PinnedTTL; past that another
		// instance may hold it, and unpinning would take it from one that
		// is working.
		draining := time.Since(time.Unix(0, drainStart.Load()))
		if ctx.Err() != nil && draining+s.cfg.Commands.pullExpiry() < s.cfg.Commands.PinnedTTL-time.Second {
			s.handOver(js)
		}
	}()
	// Commands run on lanes, several at a time; all commands about one
	// customer take the same lane, in stream order, so they are applied in
	// the order they were published.
	lanes := make([]chan command, commandLanes)
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan command, maxCommandBatch)
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
				s.handleCommands(work, js, batch)
			}
		})
	}
	defer func() {
		for _, l := range lanes {
			close(l)
		}
		wg.Wait()
	}()
	return events.EachMessage(it, func(msg jetstream.Msg) {
		c, err := readCommand(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		if err != nil {
			s.deadLetter(work, js, msg, "invalid", err.Error())
			return
		}
		c.msg = msg
		if md, err := msg.Metadata(); err == nil {
			c.seq = md.Sequence.Stream
		}
		c.key = commandKey(c.event)
		lanes[laneOf(c.key)] <- c
	}, func(err error) { s.log.Warn("customers: consume commands", zap.Error(err)) })
}

// handOver unpins this instance, so that another takes up the commands at
// once instead of after PinnedTTL.
func (s *Service) handOver(js jetstream.JetStream) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.CommandsStream)
	if err == nil {
		err = st.UnpinConsumer(ctx, CommandsConsumer, commandsGroup)
	}
	if err != nil {
		s.log.Warn("customers: could not hand the commands over; another instance takes them after COMMANDS_PINNED_TTL", zap.Error(err))
	}
}

// commandsConsumer creates the command streams and the durable consumer,
// retrying while NATS is not there.
func (s *Service) commandsConsumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	return events.DurableConsumer(ctx, js, events.CommandsStream, jetstream.ConsumerConfig{
		Durable:       CommandsConsumer,
		Description:   "applies integrators' commands",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.Commands.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// One instance at a time (see commandsGroup).
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{commandsGroup},
		PinnedTTL:      s.cfg.Commands.PinnedTTL,
	}, func(ctx context.Context) error {
		return events.EnsureCommandStreams(ctx, js, events.StreamOptions{DeadLetterMaxAge: s.cfg.Commands.DeadLetterMaxAge})
	}, func(err error, backoff time.Duration) {
		s.log.Warn("customers: command stream not ready, retrying", zap.Error(err), zap.Duration("backoff", backoff))
	})
}

// commandLanes is how many commands an instance runs at a time.
const commandLanes = 16

// command is a command's CloudEvent, the message it came in (nil for a
// request), and what NATS tells of its sender.
type command struct {
	msg   jetstream.Msg
	event cloudevents.Event
	// sender is the integrator's NATS account, proven by the server (the
	// subject its account's import maps to, or the Nats-Request-Info header
	// of a request across accounts); "" for a client in the command
	// service's own account, whose CloudEvent source is taken at its word.
	sender string
	// subjectOK is false for a message whose subject does not name its
	// type: refused, as a command of unknown type is.
	subjectOK bool
	// unreadable is why a message that names an id is not a CloudEvent:
	// refused too, so that its sender hears of it.
	unreadable error
	// seq is the command's stream sequence and key its order key (see
	// commandKey), both set by the reading instance; none for a request.
	seq uint64
	key string
}

// readCommand reads a command from the message it came in. A message that
// is not a CloudEvent but has an id (a ce-id header, or the id of a
// structured-mode body) is a command all the same, refused as malformed, so
// that its sender gets a command.rejected; without an id it is an error:
// there is no one to answer.
func readCommand(msg *nats.Msg) (command, error) {
	e, err := readEvent(msg)
	var c command
	if err != nil {
		c.unreadable = fmt.Errorf("not a CloudEvent: %w", err)
		e = cloudevents.NewEvent()
		e.SetID(bounded(unreadableID(msg)))
		e.SetType(bounded(msg.Header.Get("ce-type")))
		e.SetSource(bounded(msg.Header.Get("ce-source")))
		if e.ID() == "" {
			return c, c.unreadable
		}
	}
	c.event = e
	c.sender, c.subjectOK = events.CommandSender(msg.Subject, e.Type())
	return c, nil
}

// maxAttributeLength bounds the attributes of a command that its effects
// repeat: the id is a key in processed_commands, the rest go into events.
const maxAttributeLength = 256

// readEvent reads a command's CloudEvent: valid, and with its attributes
// within maxAttributeLength.
func readEvent(msg *nats.Msg) (cloudevents.Event, error) {
	e, err := events.FromMsg(msg)
	if err != nil {
		return e, err
	}
	if err := e.Validate(); err != nil { // the binding reads a message that lacks a required attribute
		return e, err
	}
	for _, a := range [...]struct{ name, value string }{
		{"id", e.ID()}, {"type", e.Type()}, {"source", e.Source()},
		{events.ExtPartitionKey, stringExt(e, events.ExtPartitionKey)}, {events.ExtTraceParent, stringExt(e, events.ExtTraceParent)},
	} {
		if len(a.value) > maxAttributeLength {
			return e, fmt.Errorf("%s is longer than %d bytes", a.name, maxAttributeLength)
		}
	}
	return e, nil
}

// bounded is s when it is within maxAttributeLength, else "".
func bounded(s string) string {
	if len(s) > maxAttributeLength {
		return ""
	}
	return s
}

// unreadableID is the id a message that is not a CloudEvent may still name.
func unreadableID(msg *nats.Msg) string {
	if id := msg.Header.Get("ce-id"); id != "" {
		return id
	}
	if strings.HasPrefix(msg.Header.Get("Content-Type"), cloudevents.ApplicationCloudEventsJSON) {
		var body struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(msg.Data, &body)
		return body.ID
	}
	return ""
}

// origin is who and what caused the command's changes.
func (c command) origin() customer.Origin {
	id := c.sender
	if id == "" {
		id = c.event.Source()
	}
	if id == "" { // a message too broken to name its source
		id = "unknown"
	}
	return customer.Origin{
		Actor:     events.Actor{Type: events.AuthServiceAccount, ID: id},
		ActorName: id,
		// A command without a trace starts one, so its events carry one too.
		TraceParent: events.TraceParentFor(stringExt(c.event, events.ExtTraceParent), c.event.ID()),
		CausationID: c.event.ID(),
	}
}

// commandKey is what orders a command: the partitionkey extension when the
// integrator sets one, else the customer (or group, or order) it is about,
// read from its data; commands without one (most creates) need no order.
func commandKey(e cloudevents.Event) string {
	if k := stringExt(e, events.ExtPartitionKey); k != "" {
		return k
	}
	var ids struct {
		ID         string `json:"id"`
		CustomerID string `json:"customer_id"`
		GroupID    string `json:"group_id"`
		Email      string `json:"email"`
	}
	_ = json.Unmarshal(e.Data(), &ids)
	for _, k := range []string{ids.CustomerID, ids.GroupID, ids.ID, ids.Email} {
		if k != "" {
			return k
		}
	}
	return e.ID()
}

// CodeOutOfOrder refuses a command published before one about the same
// customer that was applied already.
const CodeOutOfOrder = "out_of_order"

// inOrder refuses a bus command published before another about the same
// key that was applied already (creates and order recordings excepted). That happens only when a reader crashed
// holding it: JetStream delivers it again after AckWait, and not always
// before newer ones; applied now, it would undo them. Requests (no
// sequence) are applied as they come.
func inOrder(ctx context.Context, q *gen.Queries, c command) error {
	switch c.event.Type() {
	case events.CmdCustomerCreate, events.CmdOrderRecord:
		// Nothing newer can be undone by these: a late create meets the
		// email taken, a late recording the order recorded (the first wins).
		return nil
	}
	if c.seq == 0 {
		return nil
	}
	key := c.key
	if len(key) > 200 { // a long email, say: keep the key indexable
		sum := sha256.Sum256([]byte(key))
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	n, err := q.AdvanceCommandOrder(ctx, gen.AdvanceCommandOrderParams{OrderKey: key, LastSeq: int64(c.seq), UpdatedAt: time.Now()})
	if err != nil || n > 0 {
		return err
	}
	return &customer.ConflictError{FieldError: customer.FieldError{Code: CodeOutOfOrder,
		Message: "a command about the same customer published after this one was applied first; applying this one now would undo it. Publish it again (with a new id) if it is still wanted"}}
}

func laneOf(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % commandLanes)
}

// handleCommands has a lane's batch of commands applied (by any instance,
// see applySubject). A failure is retried in place, so that no later
// command about the same customer overtakes it.
func (s *Service) handleCommands(ctx context.Context, js jetstream.JetStream, batch []command) {
	for {
		deadLetter, err := s.applyShared(ctx, js.Conn(), batch)
		if err == nil {
			for i, c := range batch {
				if deadLetter[i] != "" {
					s.deadLetter(ctx, js, c.msg, c.event.Type(), deadLetter[i])
				} else {
					_ = c.msg.Ack()
				}
			}
			return
		}
		if ctx.Err() != nil {
			return // redelivered after AckWait, to whichever instance runs
		}
		s.log.Warn("customers: commands failed; retrying", zap.Int("commands", len(batch)), zap.String("first", batch[0].event.ID()), zap.Error(err))
		for _, c := range batch {
			_ = c.msg.InProgress() // keep them ours while we retry
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Commands.RetryDelay):
		}
	}
}

// maxCommandBatch bounds the commands of a lane run in one transaction.
const maxCommandBatch = 32

// poisonError marks a command no retry can run: it was rejected, and is
// copied to the dead-letter stream as well.
type poisonError struct{ reason string }

func (e *poisonError) Error() string { return e.reason }

// Outcome is what became of a command.
type Outcome struct {
	Rejected bool
	// Reply is the answer for a caller: the resource (or {}) as JSON, or the
	// problem when rejected.
	Reply []byte
	// Repeated is true when the command was processed before: Reply is the
	// answer of that time.
	Repeated bool
}

// applyCommand runs one command (see applyCommands).
func (s *Service) applyCommand(ctx context.Context, c command) (Outcome, error) {
	outs, err := s.applyCommands(ctx, []command{c})
	if err != nil {
		return Outcome{}, err
	}
	return outs[0].Outcome, outs[0].poison
}

// applied is one command's outcome in a batch, and whether it is poison
// (rejected, and to be dead-lettered too).
type applied struct {
	Outcome
	poison error
}

// applyCommands runs commands in one transaction, each once: each applies
// (or, refused, writes command.rejected) and records its id with the
// outcome, in a savepoint of its own, so one refusal does not touch the
// others. A command recorded before is undone and its first outcome
// returned. An error is ours: nothing of the batch is kept; retry it.
func (s *Service) applyCommands(ctx context.Context, cmds []command) ([]applied, error) {
	outs := make([]applied, len(cmds))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for i, c := range cmds {
			var err error
			if outs[i], err = s.applyInTx(ctx, tx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, o := range outs {
			s.commandsApplied.WithLabelValues(o.outcome()).Inc()
		}
	}
	return outs, err
}

func (o Outcome) outcome() string {
	switch {
	case o.Repeated:
		return "repeated"
	case o.Rejected:
		return "rejected"
	}
	return "applied"
}

// applyInTx runs one command in a savepoint of tx.
func (s *Service) applyInTx(ctx context.Context, tx pgx.Tx, c command) (applied, error) {
	var out applied
	e, o, q := c.event, c.origin(), gen.New(tx)
	sp, err := tx.Begin(ctx) // SAVEPOINT
	if err != nil {
		return out, err
	}
	defer sp.Rollback(ctx) //nolint:errcheck // after Commit it does nothing
	var result any
	var runErr error
	switch {
	case c.unreadable != nil:
		runErr = &malformedError{customer.FieldErr("", customer.CodeMalformed, "%v", c.unreadable)}
	case !c.subjectOK:
		runErr = &malformedError{customer.FieldErr("subject", customer.CodeInvalid,
			"the subject does not name the command %q; publish it on %s", e.Type(), events.CommandSubject(e.Type()))}
	default:
		if runErr = inOrder(ctx, gen.New(sp), c); runErr == nil {
			result, runErr = runCommand(ctx, customer.NewService(store.New(sp), s.cfg.PhoneRegion, s.cfg.Accounts), o, e)
		}
	}
	var p httpapi.Problem
	if runErr != nil {
		p = httpapi.ProblemFor(runErr)
		if p.Status >= 500 && !permanent(runErr) {
			return out, runErr // retried
		}
		// Undo whatever the refused command did (a statement that raised the
		// refusal, a taken email, left the savepoint aborted).
		if err := sp.Rollback(ctx); err != nil {
			return out, err
		}
		var malformed *malformedError
		switch {
		case p.Status >= 500:
			s.log.Error("customers: the database refused a command's data; rejected", zap.String("command_id", e.ID()), zap.Error(runErr))
			out.poison = &poisonError{reason: fmt.Sprintf("%s: the database refused it: %v", p.Errors[0].Code, runErr)}
		case errors.As(runErr, &malformed):
			out.poison = &poisonError{reason: fmt.Sprintf("%s: %s", p.Errors[0].Code, p.Errors[0].Message)}
		}
		out.Rejected, result = true, p
	} else if result == nil {
		result = struct{}{}
	}
	if out.Reply, err = json.Marshal(result); err != nil {
		return out, err
	}
	outcome, rec := "applied", gen.New(sp)
	if out.Rejected {
		outcome, rec = "rejected", q
	}
	n, err := rec.RecordProcessedCommand(ctx, gen.RecordProcessedCommandParams{
		CommandID: e.ID(), Command: e.Type(), Outcome: outcome, Reply: out.Reply, ProcessedAt: time.Now(),
	})
	if err != nil {
		return out, err
	}
	if n == 0 { // processed before: undo this run, the first one stands
		if !out.Rejected { // a rejection rolled its savepoint back already
			if err := sp.Rollback(ctx); err != nil {
				return out, err
			}
		}
		row, err := q.GetProcessedCommand(ctx, e.ID())
		return applied{Outcome: Outcome{Rejected: row.Outcome == "rejected", Reply: row.Reply, Repeated: true}}, err
	}
	if out.Rejected {
		return out, writeRejection(ctx, q, e, o, p)
	}
	return out, sp.Commit(ctx) // RELEASE
}

// permanent reports whether a failure on our side would fail again however
// often the command were retried: the database refused the data itself (a
// data exception, an integrity rule no check caught, a size limit), so
// retrying in place would hold up the lane forever. Anything else (a lost
// connection, a deadlock, code ahead of its migrations) may pass later.
func permanent(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || len(pg.Code) < 2 {
		return false
	}
	switch pg.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}

// writeRejection puts command.rejected in the outbox.
func writeRejection(ctx context.Context, q *gen.Queries, e cloudevents.Event, o customer.Origin, p httpapi.Problem) error {
	errs := make([]events.FieldError, len(p.Errors))
	for i, f := range p.Errors {
		errs[i] = events.FieldError{Field: f.Field, Code: f.Code, Message: f.Message}
	}
	key := stringExt(e, events.ExtPartitionKey)
	if key == "" {
		key = e.ID()
	}
	ev, err := events.New(events.Meta{
		Type: events.CommandRejected, Source: events.SourceCustomers, Subject: e.ID(), PartitionKey: key,
		Sequence: 1, Time: time.Now().UTC(), TraceParent: o.TraceParent, Actor: o.Actor, CausationID: e.ID(),
	}, events.CommandRejectedData{
		CommandID: e.ID(), Command: e.Type(),
		Error: events.CommandError{Type: p.Type, Title: p.Title, Status: p.Status, Errors: errs},
	})
	if err != nil {
		return err
	}
	return outbox.Write(ctx, q, []cloudevents.Event{ev})
}

// deadLetter copies the message to the dead-letter stream with the reason,
// and terminates it: it never comes back.
func (s *Service) deadLetter(ctx context.Context, js jetstream.JetStream, msg jetstream.Msg, kind, reason string) {
	if !validSubjectTokens(kind) {
		kind = "invalid" // a type that cannot be part of a subject
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
		s.log.Warn("customers: dead-letter failed; will retry", zap.Error(err))
		_ = msg.NakWithDelay(s.cfg.Commands.RetryDelay)
		return
	}
	s.log.Warn("customers: command dead-lettered", zap.String("subject", msg.Subject()), zap.String("reason", reason))
	_ = msg.Term()
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

func stringExt(e cloudevents.Event, name string) string {
	v, _ := e.Extensions()[name].(string)
	return v
}

// malformedError marks data that cannot be read as the command's (not JSON,
// wrong types, unknown fields, an unknown command): poison, unlike a
// refusal of well-formed data.
type malformedError struct{ error }

func (e *malformedError) Unwrap() error { return e.error }

// decode reads a command's data strictly, as HTTP reads a body.
func decode[T any](e cloudevents.Event) (T, error) {
	var in T
	if err := httpapi.DecodeBody(e.Data(), 1<<20, &in); err != nil {
		return in, &malformedError{err}
	}
	return in, nil
}

// id reads a UUID field of a command's data.
func id(field, v string) (uuid.UUID, error) {
	u, err := uuid.Parse(v)
	if err != nil {
		return uuid.Nil, customer.FieldErr(field, customer.CodeInvalid, "%s must be a UUID", field)
	}
	return u, nil
}

// targeted is the data of a command about a resource that its HTTP route
// names in the path: the body, plus the resource's id under one field.
type targeted interface{ target() (field, value string) }

type customerTarget struct {
	ID string `json:"id"`
}

func (t customerTarget) target() (string, string) { return "id", t.ID }

type groupTarget struct {
	GroupID string `json:"group_id"`
}

func (t groupTarget) target() (string, string) { return "group_id", t.GroupID }

type addressTarget struct {
	CustomerID string `json:"customer_id"`
	AddressID  string `json:"address_id"`
}

func (t addressTarget) target() (string, string) { return "customer_id", t.CustomerID }

// decodeTargeted reads a command's data and the id of the resource it names.
func decodeTargeted[T targeted](e cloudevents.Event) (T, uuid.UUID, error) {
	in, err := decode[T](e)
	if err != nil {
		return in, uuid.Nil, err
	}
	u, err := id(in.target())
	return in, u, err
}

// runCommand runs one command through the customer use cases.
func runCommand(ctx context.Context, svc *customer.Service, o customer.Origin, e cloudevents.Event) (any, error) {
	switch e.Type() {
	case events.CmdCustomerCreate:
		in, err := decode[customer.CreateInput](e)
		if err != nil {
			return nil, err
		}
		return customerResult(svc.Create(ctx, o, in))
	case events.CmdCustomerUpdate:
		in, cid, err := decodeTargeted[struct {
			customerTarget
			customer.UpdateInput
		}](e)
		if err != nil {
			return nil, err
		}
		return customerResult(svc.Update(ctx, o, cid, in.UpdateInput))
	case events.CmdCustomerDelete:
		_, cid, err := decodeTargeted[customerTarget](e)
		if err != nil {
			return nil, err
		}
		return nil, svc.Delete(ctx, o, cid)
	case events.CmdCustomerMetadataUpdate, events.CmdCustomerPrivateMetadataUpdate:
		in, cid, err := decodeTargeted[struct {
			customerTarget
			customer.MetadataInput
		}](e)
		if err != nil {
			return nil, err
		}
		return customerResult(svc.UpdateMetadata(ctx, o, cid, e.Type() == events.CmdCustomerPrivateMetadataUpdate, in.MetadataInput))
	case events.CmdCustomerAddressCreate, events.CmdCustomerAddressUpdate, events.CmdCustomerAddressDelete:
		return runAddressCommand(ctx, svc, o, e)
	case events.CmdGroupCustomersAdd, events.CmdGroupCustomersRemove:
		in, gid, err := decodeTargeted[struct {
			groupTarget
			CustomerIDs []string `json:"customer_ids"`
		}](e)
		if err != nil {
			return nil, err
		}
		members := customer.MembersInput{Add: in.CustomerIDs}
		if e.Type() == events.CmdGroupCustomersRemove {
			members = customer.MembersInput{Remove: in.CustomerIDs}
		}
		ch, err := svc.ChangeMembers(ctx, o, gid, members)
		if err != nil {
			return nil, err
		}
		return httpapi.MembersView(ch), nil
	case events.CmdOrderRecord:
		in, err := decode[customer.OrderInput](e)
		if err != nil {
			return nil, err
		}
		ord, _, err := svc.RecordOrder(ctx, o, in)
		if err != nil {
			return nil, err
		}
		return ord.Public(), nil
	}
	return nil, &malformedError{customer.FieldErr("type", "unknown_command", "%q is not a command; see events.Commands", e.Type())}
}

func runAddressCommand(ctx context.Context, svc *customer.Service, o customer.Origin, e cloudevents.Event) (any, error) {
	in, cid, err := decodeTargeted[struct {
		addressTarget
		customer.AddressInput
	}](e)
	if err != nil {
		return nil, err
	}
	if e.Type() == events.CmdCustomerAddressCreate {
		c, a, err := svc.CreateAddress(ctx, o, cid, in.AddressInput)
		if err != nil {
			return nil, err
		}
		return a.Public(c), nil
	}
	aid, err := id("address_id", in.AddressID)
	if err != nil {
		return nil, err
	}
	if e.Type() == events.CmdCustomerAddressDelete {
		return nil, svc.DeleteAddress(ctx, o, cid, aid)
	}
	c, a, err := svc.UpdateAddress(ctx, o, cid, aid, in.AddressInput)
	if err != nil {
		return nil, err
	}
	return a.Public(c), nil
}

// customerResult is the staff view of a customer, as HTTP answers it.
func customerResult(c customer.Customer, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return httpapi.StaffView(c), nil
}
