package customers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
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
	// PinnedTTL is how long the instance that consumes commands may go
	// without pulling before another instance takes over.
	PinnedTTL time.Duration `env:"COMMANDS_PINNED_TTL" envDefault:"30s"`
}

func (c CommandsConfig) withDefaults() CommandsConfig {
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 2 * time.Second
	}
	if c.PinnedTTL <= 0 {
		c.PinnedTTL = 30 * time.Second
	}
	return c
}

// commandsGroup is the consumer's priority group: one instance at a time is
// pinned to it and gets the commands, so no two instances can apply two
// commands about one customer out of order; the others stand by.
const commandsGroup = "commands"

// CommandsConsumer is the durable consumer every instance shares.
const CommandsConsumer = "customers"

// Dead-letter headers: why a command could not be run at all.
const (
	DeadLetterReasonHeader  = "Customerbus-Deadletter-Reason"
	DeadLetterSubjectHeader = "Customerbus-Deadletter-Subject"
)

// RunCommands applies the commands integrators publish on the bus, and
// serves them as NATS requests (see serveRPC), until ctx ends. Each command runs through the same use cases as HTTP, in one
// transaction with the record of its id: a command delivered or published
// again is recognised and changes nothing twice. A refused command gets a
// command.rejected event with the problem HTTP would have answered; a
// message that cannot be a command at all goes to the dead-letter stream.
func (s *Service) RunCommands(ctx context.Context, js jetstream.JetStream) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.serveRPC(ctx, js.Conn()) })
	g.Go(func() error { return s.consumeCommands(ctx, js) })
	return g.Wait()
}

// consumeCommands applies the commands of the durable consumer.
func (s *Service) consumeCommands(ctx context.Context, js jetstream.JetStream) error {
	cons, err := s.commandsConsumer(ctx, js)
	if err != nil || ctx.Err() != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4*commandLanes), jetstream.PullPriorityGroup(commandsGroup))
	if err != nil {
		return fmt.Errorf("customers: consume commands: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	// Commands run on lanes, several at a time; all commands about one
	// customer take the same lane, in stream order, so they are applied in
	// the order they were published.
	lanes := make([]chan command, commandLanes)
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan command, 4)
		wg.Go(func() {
			for c := range lanes[i] {
				s.handleCommand(ctx, js, c)
			}
		})
	}
	defer func() {
		for _, l := range lanes {
			close(l)
		}
		wg.Wait()
	}()
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil
		}
		if err != nil {
			s.log.Warn("customers: consume commands", zap.Error(err))
			continue
		}
		e, err := events.FromMsg(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		if err != nil {
			s.deadLetter(ctx, js, msg, "invalid", fmt.Sprintf("not a CloudEvent: %v", err))
			continue
		}
		key := commandKey(e)
		lanes[laneOf(key)] <- command{msg: msg, event: e}
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
		return events.EnsureCommandStreams(ctx, js, events.StreamOptions{})
	}, func(err error, backoff time.Duration) {
		s.log.Warn("customers: command stream not ready, retrying", zap.Error(err), zap.Duration("backoff", backoff))
	})
}

// commandLanes is how many commands an instance runs at a time.
const commandLanes = 16

// command is a message and the CloudEvent it holds.
type command struct {
	msg   jetstream.Msg
	event cloudevents.Event
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

func laneOf(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % commandLanes)
}

// handleCommand applies one command. A failure on our side is retried in
// place, so that no later command about the same customer overtakes it.
func (s *Service) handleCommand(ctx context.Context, js jetstream.JetStream, c command) {
	log := s.log.With(zap.String("command", c.event.Type()), zap.String("command_id", c.event.ID()))
	for {
		_, err := s.applyCommand(ctx, c.event)
		var poison *poisonError
		switch {
		case errors.As(err, &poison):
			s.deadLetter(ctx, js, c.msg, c.event.Type(), poison.reason)
			return
		case err == nil:
			_ = c.msg.Ack()
			return
		case ctx.Err() != nil:
			return // redelivered after AckWait, to whichever instance runs
		}
		log.Warn("customers: command failed; retrying", zap.Error(err))
		_ = c.msg.InProgress() // keep it ours while we retry
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Commands.RetryDelay):
		}
	}
}

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

// applyCommand runs the command once: in one transaction it applies it (or,
// refused, writes command.rejected) and records its id with the outcome. A
// command recorded before is rolled back and its first outcome returned.
// Errors are ours (retry), or a poisonError after the rejection is written.
func (s *Service) applyCommand(ctx context.Context, e cloudevents.Event) (Outcome, error) {
	var out Outcome
	var poison error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := gen.New(tx)
		o := customer.Origin{
			Actor:       events.Actor{Type: events.AuthServiceAccount, ID: e.Source()},
			ActorName:   e.Source(),
			TraceParent: stringExt(e, events.ExtTraceParent),
			CausationID: e.ID(),
		}
		// The command runs in a savepoint: a refusal that a statement raised
		// (a taken email) leaves this transaction usable for its record.
		var result any
		runErr := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
			svc := customer.NewService(store.New(sp), s.cfg.PhoneRegion, s.cfg.Accounts)
			var err error
			result, err = runCommand(ctx, svc, o, e)
			return err
		})
		var p httpapi.Problem
		if runErr != nil {
			if p = httpapi.ProblemFor(runErr); p.Status >= 500 {
				return runErr // ours: roll back, retry
			}
			var malformed *malformedError
			if errors.As(runErr, &malformed) {
				poison = &poisonError{reason: fmt.Sprintf("%s: %s", p.Errors[0].Code, p.Errors[0].Message)}
			}
			out.Rejected, result = true, p
		} else if result == nil {
			result = struct{}{}
		}
		var err error
		if out.Reply, err = json.Marshal(result); err != nil {
			return err
		}
		outcome := "applied"
		if out.Rejected {
			outcome = "rejected"
		}
		n, err := q.RecordProcessedCommand(ctx, gen.RecordProcessedCommandParams{
			CommandID: e.ID(), Command: e.Type(), Outcome: outcome, Reply: out.Reply, ProcessedAt: time.Now(),
		})
		switch {
		case err != nil:
			return err
		case n == 0:
			return errRepeated // undo this run: the first one stands
		case out.Rejected:
			return writeRejection(ctx, q, e, p)
		}
		return nil
	})
	if errors.Is(err, errRepeated) {
		row, err := gen.New(s.pool).GetProcessedCommand(ctx, e.ID())
		return Outcome{Rejected: row.Outcome == "rejected", Reply: row.Reply, Repeated: true}, err
	}
	if err == nil && poison != nil {
		return out, poison
	}
	return out, err
}

// errRepeated rolls back a command that was processed before.
var errRepeated = errors.New("command processed before")

// writeRejection puts command.rejected in the outbox.
func writeRejection(ctx context.Context, q *gen.Queries, e cloudevents.Event, p httpapi.Problem) error {
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
		Sequence: 1, Time: time.Now().UTC(), TraceParent: stringExt(e, events.ExtTraceParent),
		Actor: events.Actor{Type: events.AuthServiceAccount, ID: e.Source()}, CausationID: e.ID(),
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
	dl := nats.NewMsg(events.CommandsDeadLetterPrefix + kind)
	dl.Data = msg.Data()
	for k, v := range msg.Headers() {
		dl.Header[k] = v
	}
	dl.Header.Del(nats.MsgIdHdr) // the original's id would be dropped as a duplicate
	dl.Header.Set(DeadLetterReasonHeader, reason)
	dl.Header.Set(DeadLetterSubjectHeader, msg.Subject())
	if _, err := js.PublishMsg(ctx, dl); err != nil {
		s.log.Warn("customers: dead-letter failed; will retry", zap.Error(err))
		_ = msg.NakWithDelay(s.cfg.Commands.RetryDelay)
		return
	}
	s.log.Warn("customers: command dead-lettered", zap.String("subject", msg.Subject()), zap.String("reason", reason))
	_ = msg.Term()
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
		return uuid.Nil, &customer.ValidationError{Errors: []customer.FieldError{{Field: field, Code: customer.CodeInvalid, Message: field + " must be a UUID"}}}
	}
	return u, nil
}

// runCommand runs one command through the customer use cases.
func runCommand(ctx context.Context, svc *customer.Service, o customer.Origin, e cloudevents.Event) (any, error) {
	switch e.Type() {
	case events.CmdCustomerCreate:
		in, err := decode[customer.CreateInput](e)
		if err != nil {
			return nil, err
		}
		c, err := svc.Create(ctx, o, in)
		return customerResult(c, err)
	case events.CmdCustomerUpdate:
		in, err := decode[struct {
			ID string `json:"id"`
			customer.UpdateInput
		}](e)
		if err != nil {
			return nil, err
		}
		cid, err := id("id", in.ID)
		if err != nil {
			return nil, err
		}
		c, err := svc.Update(ctx, o, cid, in.UpdateInput)
		return customerResult(c, err)
	case events.CmdCustomerDelete:
		in, err := decode[struct {
			ID string `json:"id"`
		}](e)
		if err != nil {
			return nil, err
		}
		cid, err := id("id", in.ID)
		if err != nil {
			return nil, err
		}
		return nil, svc.Delete(ctx, o, cid)
	case events.CmdCustomerMetadataUpdate, events.CmdCustomerPrivateMetadataUpdate:
		in, err := decode[struct {
			ID string `json:"id"`
			customer.MetadataInput
		}](e)
		if err != nil {
			return nil, err
		}
		cid, err := id("id", in.ID)
		if err != nil {
			return nil, err
		}
		c, err := svc.UpdateMetadata(ctx, o, cid, e.Type() == events.CmdCustomerPrivateMetadataUpdate, in.MetadataInput)
		return customerResult(c, err)
	case events.CmdCustomerAddressCreate, events.CmdCustomerAddressUpdate, events.CmdCustomerAddressDelete:
		return runAddressCommand(ctx, svc, o, e)
	case events.CmdGroupCustomersAdd, events.CmdGroupCustomersRemove:
		in, err := decode[struct {
			GroupID     string   `json:"group_id"`
			CustomerIDs []string `json:"customer_ids"`
		}](e)
		if err != nil {
			return nil, err
		}
		gid, err := id("group_id", in.GroupID)
		if err != nil {
			return nil, err
		}
		members := customer.MembersInput{Add: in.CustomerIDs}
		if e.Type() == events.CmdGroupCustomersRemove {
			members = customer.MembersInput{Remove: in.CustomerIDs}
		}
		return svc.ChangeMembers(ctx, o, gid, members)
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
	return nil, &malformedError{&customer.ValidationError{Errors: []customer.FieldError{{
		Field: "type", Code: "unknown_command", Message: fmt.Sprintf("%q is not a command; see events.Commands", e.Type()),
	}}}}
}

func runAddressCommand(ctx context.Context, svc *customer.Service, o customer.Origin, e cloudevents.Event) (any, error) {
	in, err := decode[struct {
		CustomerID string `json:"customer_id"`
		AddressID  string `json:"address_id"`
		customer.AddressInput
	}](e)
	if err != nil {
		return nil, err
	}
	cid, err := id("customer_id", in.CustomerID)
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
