package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

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
		e.SetID(recordable(unreadableID(msg)))
		e.SetType(recordable(msg.Header.Get("ce-type")))
		e.SetSource(recordable(msg.Header.Get("ce-source")))
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
// within maxAttributeLength and storable. A command whose id, type, source
// or partition key the database could not record would fail the
// transaction of every command applied with it, again at each retry.
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
		if !customer.Storable(a.value) {
			return e, fmt.Errorf("%s must be valid UTF-8 without NUL characters", a.name)
		}
	}
	return e, nil
}

// recordable is s when it is within maxAttributeLength and storable, else "".
func recordable(s string) string {
	if len(s) > maxAttributeLength || !customer.Storable(s) {
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

// customerOf is the customer a command was about, so that the customer's
// erasure finds the command's message: the one its reply shows (created,
// changed, owning the address or order), else the one it names. A group
// command names customers by id only, so it is about none of them.
func customerOf(e cloudevents.Event, reply []byte) *uuid.UUID {
	if strings.HasPrefix(e.Type(), "customer_group.") {
		return nil
	}
	var shown struct {
		ID         string `json:"id"`
		CustomerID string `json:"customer_id"`
	}
	_ = json.Unmarshal(reply, &shown) // a problem shows neither
	candidates := []string{shown.CustomerID}
	if strings.HasPrefix(e.Type(), "customer.") {
		candidates = append(candidates, shown.ID)
	}
	for _, k := range append(candidates, commandKey(e)) {
		if id, err := uuid.Parse(k); err == nil {
			return &id
		}
	}
	return nil
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

func stringExt(e cloudevents.Event, name string) string {
	v, _ := e.Extensions()[name].(string)
	return v
}
