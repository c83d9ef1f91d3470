package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	cenats "github.com/cloudevents/sdk-go/protocol/nats/v2"
	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// Extension attribute names of the contract.
const (
	ExtSequence     = "sequence"
	ExtPartitionKey = "partitionkey"
	ExtTraceParent  = "traceparent"
	ExtAuthType     = "authtype"
	ExtAuthID       = "authid"
	// ExtCausationID is the id of the event or command that caused an event.
	ExtCausationID = "causationid"
)

// ErrInvalidEvent is returned for a message that is not a valid CloudEvent.
var ErrInvalidEvent = errors.New("events: invalid cloudevent")

// Actor is who made a change (the authcontext extension).
type Actor struct {
	Type string // AuthServiceAccount, AuthUser or AuthAppUser
	ID   string
}

// Meta is everything about an event but its data.
type Meta struct {
	Type         string
	Source       string
	Subject      string // id of the resource the event is about
	PartitionKey string // the customer id, for per-customer ordering
	Sequence     int64  // the resource's version after the change
	Time         time.Time
	TraceParent  string
	Actor        Actor
	// CausationID is the id of the command that caused the event, if any.
	CausationID string
}

// New builds a CloudEvent with a fresh UUIDv7 id and JSON data. Its
// dataschema is set by the relay that publishes it, which knows the public
// address serving the schemas (SchemaURL).
func New(m Meta, data any) (cloudevents.Event, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return cloudevents.Event{}, fmt.Errorf("events: new id: %w", err)
	}
	e := cloudevents.NewEvent()
	e.SetID(id.String())
	e.SetType(m.Type)
	e.SetSource(m.Source)
	e.SetSubject(m.Subject)
	e.SetTime(m.Time.UTC())
	// The sequence extension is a String in the CloudEvents spec; it holds the
	// decimal version so every transport carries it the same way.
	e.SetExtension(ExtSequence, strconv.FormatInt(m.Sequence, 10))
	e.SetExtension(ExtPartitionKey, m.PartitionKey)
	if m.TraceParent != "" {
		e.SetExtension(ExtTraceParent, m.TraceParent)
	}
	if m.CausationID != "" {
		e.SetExtension(ExtCausationID, m.CausationID)
	}
	e.SetExtension(ExtAuthType, m.Actor.Type)
	e.SetExtension(ExtAuthID, m.Actor.ID)
	if err := e.SetData(cloudevents.ApplicationJSON, data); err != nil {
		return cloudevents.Event{}, fmt.Errorf("events: encode %s data: %w", m.Type, err)
	}
	if err := e.Validate(); err != nil {
		return cloudevents.Event{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return e, nil
}

// Sequence reads the sequence extension of an event (0 when absent or invalid).
func Sequence(e cloudevents.Event) int64 {
	v, _ := e.Extensions()[ExtSequence].(string)
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// Marshal encodes an event in the JSON structured format, as the outbox stores it.
// It calls the SDK's writer directly: json.Marshal would check and compact
// its output again, which costs more than writing it.
func Marshal(e cloudevents.Event) ([]byte, error) { return e.MarshalJSON() }

// Unmarshal decodes an event in the JSON structured format.
func Unmarshal(b []byte) (cloudevents.Event, error) {
	var e cloudevents.Event
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return e, nil
}

// ToMsg writes an event as a NATS message in the CloudEvents NATS binding's
// structured mode: the whole event as JSON in the body, with content-type
// application/cloudevents+json. It is the one mode every CloudEvents NATS
// reader understands: sdk-go's core NATS binding (protocol/nats/v2, whose
// writer this is) reads nothing else, its JetStream binding reads it too, and
// the `nats` CLI shows type, id and data as they are. The message goes on the
// event type's subject, with Nats-Msg-Id = the event id so JetStream drops
// re-publications.
func ToMsg(ctx context.Context, e cloudevents.Event) (*nats.Msg, error) {
	var body bytes.Buffer
	if err := cenats.WriteMsg(ctx, binding.ToMessage(&e), &body); err != nil {
		return nil, fmt.Errorf("events: write message: %w", err)
	}
	msg := nats.NewMsg(Subject(e.Type()))
	msg.Header.Set(contentTypeHeader, cloudevents.ApplicationCloudEventsJSON)
	msg.Header.Set(nats.MsgIdHdr, e.ID())
	msg.Data = body.Bytes()
	return msg, nil
}

// contentTypeHeader is the NATS binding's header for the structured mode's
// media type.
const contentTypeHeader = "content-type"

// FromMsg reads an event from a NATS message in structured or binary mode
// (commands from integrators may come in either).
func FromMsg(msg *nats.Msg) (cloudevents.Event, error) {
	e, err := binding.ToEvent(context.Background(), cejs.NewMessage(msg))
	if err != nil {
		return cloudevents.Event{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return *e, nil
}

// StoredToMsg is the message of an event as the outbox stores it (Marshal's
// JSON, which has no dataschema, and its id) on subject, with its dataschema
// set: the
// stored bytes go out as they are, the dataschema put in front, instead of
// being decoded and encoded again, which would cost the relay most of its
// CPU. A stored event that names a dataschema anywhere (in its data, say,
// or one written by an older version) goes the long way, through ToMsg.
func StoredToMsg(ctx context.Context, stored []byte, id, subject, dataschema string) (*nats.Msg, error) {
	body := bytes.TrimLeft(stored, " \t\r\n")
	if len(body) < 2 || body[0] != '{' || bytes.Contains(body, []byte(`"dataschema"`)) {
		e, err := Unmarshal(stored)
		if err != nil {
			return nil, err
		}
		e.SetDataSchema(dataschema)
		msg, err := ToMsg(ctx, e)
		if err != nil {
			return nil, err
		}
		msg.Subject = subject
		return msg, nil
	}
	url, _ := json.Marshal(dataschema) // a string always marshals
	out := make([]byte, 0, len(body)+len(url)+16)
	out = append(out, `{"dataschema":`...)
	out = append(out, url...)
	out = append(out, ',')
	out = append(out, body[1:]...)
	msg := nats.NewMsg(subject)
	msg.Header.Set(contentTypeHeader, cloudevents.ApplicationCloudEventsJSON)
	msg.Header.Set(nats.MsgIdHdr, id)
	msg.Data = out
	return msg, nil
}
