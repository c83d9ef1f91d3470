package bus

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// FuzzReadCommand: whatever an integrator publishes, readCommand does not
// panic, and it sorts the message as the consumer needs: without an id it
// is an error (dead-lettered, no one to answer); with one it is a command,
// refused as malformed when it is not a readable CloudEvent, whose id,
// type, source and partition key the database can record and its
// command.rejected can carry. A command it cannot record would fail its
// lane's transaction, retried for ever.
//
// The headers are "Name: value" lines.
func FuzzReadCommand(f *testing.F) {
	// A command as sdk-go's JetStream binding writes it (binary mode).
	binary := func(typ, data string) {
		e := cloudevents.NewEvent()
		e.SetID("0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b")
		e.SetType(typ)
		e.SetSource("/erp")
		e.SetTime(time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC))
		e.SetExtension(events.ExtPartitionKey, "ann@example.com")
		if err := e.SetData(cloudevents.ApplicationJSON, []byte(data)); err != nil {
			f.Fatal(err)
		}
		var body bytes.Buffer
		h, err := cejs.WriteMsg(context.Background(), binding.ToMessage(&e), &body)
		if err != nil {
			f.Fatal(err)
		}
		var lines []string
		for k, vs := range h {
			for _, v := range vs {
				lines = append(lines, k+": "+v)
			}
		}
		f.Add(events.CommandSubject(typ), strings.Join(lines, "\n"), body.Bytes())
	}
	binary(events.CmdCustomerCreate, `{"email":"ann@example.com"}`)
	binary(events.CmdCustomerUpdate, `{"id":"0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b","first_name":"Ann"}`)
	binary("customer.explode", `{}`)
	structured := "content-type: " + cloudevents.ApplicationCloudEventsJSON
	f.Add(events.CommandSubject(events.CmdOrderRecord), structured,
		[]byte(`{"specversion":"1.0","id":"cmd-1","type":"order.record","source":"/shop","datacontenttype":"application/json","data":{"id":"0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b"}}`))
	f.Add(events.CommandsFromPrefix+"ACME."+events.CmdCustomerDelete, structured,
		[]byte(`{"specversion":"1.0","id":"cmd-2","type":"customer.delete","source":"/erp","partitionkey":"k","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":{"id":"x"}}`))
	f.Add(events.CommandSubject(events.CmdCustomerCreate), structured, []byte(`{"id":"only-an-id"}`))
	f.Add(events.CommandSubject(events.CmdCustomerCreate), "ce-id: 1\nce-type: customer.create", []byte("hello"))
	f.Add(events.CommandSubject(events.CmdCustomerCreate), "", []byte("hello"))
	f.Fuzz(func(t *testing.T, subject, headers string, data []byte) {
		msg := &nats.Msg{Subject: subject, Header: nats.Header{}, Data: data}
		for line := range strings.SplitSeq(headers, "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok {
				msg.Header.Add(name, strings.TrimPrefix(value, " "))
			}
		}
		c, err := readCommand(msg)
		if err != nil {
			if c.event.ID() != "" {
				t.Fatalf("an error (%v) for a command with id %q: its sender would not hear of it", err, c.event.ID())
			}
			return
		}
		e := c.event
		if e.ID() == "" {
			t.Fatal("a command without an id")
		}
		for name, v := range map[string]string{
			"id": e.ID(), "type": e.Type(), "source": e.Source(), events.ExtPartitionKey: stringExt(e, events.ExtPartitionKey),
		} {
			if !customer.Storable(v) || len(v) > maxAttributeLength {
				t.Fatalf("command %s %q cannot be recorded: not storable, or over %d bytes", name, v, maxAttributeLength)
			}
		}
		if c.unreadable == nil {
			if err := e.Validate(); err != nil {
				t.Fatalf("a readable command that is not a valid CloudEvent: %v", err)
			}
		}
		// What the consumer does with it before it runs: its order key,
		// its origin, and (if refused) its command.rejected.
		_ = commandKey(e)
		_ = customerOf(e, nil)
		o := c.origin()
		if o.Actor.ID == "" || !events.ValidTraceParent(o.TraceParent) {
			t.Fatalf("origin %+v has no actor or no valid traceparent", o)
		}
		p := problem.For(&malformedError{customer.FieldErr("", customer.CodeMalformed, "%v", c.unreadable)})
		if _, err := rejection(e, o, p); err != nil {
			t.Fatalf("the command's rejection cannot be made: %v", err)
		}
	})
}
