package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/db/outbox"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/tracing"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

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
func (b *Bus) applyCommand(ctx context.Context, c command) (Outcome, error) {
	outs, err := b.applyCommands(ctx, []command{c})
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
func (b *Bus) applyCommands(ctx context.Context, cmds []command) ([]applied, error) {
	outs := make([]applied, len(cmds))
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		for i, c := range cmds {
			var err error
			if outs[i], err = b.applyInTx(ctx, tx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, o := range outs {
			b.applied.WithLabelValues(o.outcome()).Inc()
		}
	}
	return outs, err
}

// commandOutcome is the attribute of a command's span that says what became
// of it: applied, rejected or repeated.
const commandOutcome = attribute.Key("customerbus.command.outcome")

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
func (b *Bus) applyInTx(ctx context.Context, tx pgx.Tx, c command) (out applied, err error) {
	ctx, span := tracing.Handling(ctx, "customers command", c.event)
	defer func() {
		span.SetAttributes(commandOutcome.String(out.outcome()))
		tracing.End(span, err)
	}()
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
			result, runErr = runCommand(ctx, b.useCases(sp), o, e)
		}
	}
	var p problem.Details
	if runErr != nil {
		p = problem.For(runErr)
		if problem.Retryable(runErr) {
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
			tracing.Logger(ctx, b.log).Error("bus: the database refused a command's data; rejected", zap.String("command_id", e.ID()), zap.Error(runErr))
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
	var seq *int64
	if c.seq > 0 { // a request is on no stream
		n := int64(c.seq)
		seq = &n
	}
	n, err := rec.RecordProcessedCommand(ctx, gen.RecordProcessedCommandParams{
		CommandID: e.ID(), Command: e.Type(), Outcome: outcome, Reply: out.Reply, ProcessedAt: time.Now(),
		CustomerID: customerOf(e, out.Reply), StreamSeq: seq,
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

// writeRejection puts command.rejected in the outbox.
func writeRejection(ctx context.Context, q *gen.Queries, e cloudevents.Event, o customer.Origin, p problem.Details) error {
	ev, err := rejection(e, o, p)
	if err != nil {
		return err
	}
	return outbox.Write(ctx, q, []cloudevents.Event{ev})
}

// rejection is the command.rejected of command e, refused with p.
func rejection(e cloudevents.Event, o customer.Origin, p problem.Details) (cloudevents.Event, error) {
	errs := make([]events.FieldError, len(p.Errors))
	for i, f := range p.Errors {
		errs[i] = events.FieldError{Field: f.Field, Code: f.Code, Message: f.Message}
	}
	key := stringExt(e, events.ExtPartitionKey)
	if key == "" {
		key = e.ID()
	}
	return events.New(events.Meta{
		Type: events.CommandRejected, Source: events.SourceCustomers, Subject: e.ID(), PartitionKey: key,
		Sequence: 1, Time: time.Now().UTC(), TraceParent: o.TraceParent, Actor: o.Actor, CausationID: e.ID(),
	}, events.CommandRejectedData{
		CommandID: e.ID(), Command: e.Type(),
		Error: events.CommandError{Type: p.Type, Title: p.Title, Status: p.Status, Errors: errs, MergedInto: p.MergedInto},
	})
}
