package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
)

// FuzzFromMsg: any message read from a stream (the headers are "Name:
// value" lines) is an event or ErrInvalidEvent, never a panic; and a valid
// event of JSON data, written again as ToMsg writes it, reads back the
// same.
func FuzzFromMsg(f *testing.F) {
	e, err := New(Meta{
		Type: CustomerCreated, Source: SourceCustomers, Subject: "0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b",
		PartitionKey: "0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b", Sequence: 1, Time: time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC),
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Actor: Actor{Type: AuthUser, ID: "staff-1"},
	}, map[string]any{"id": "0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b", "email": "ann@example.com"})
	if err != nil {
		f.Fatal(err)
	}
	msg, err := ToMsg(context.Background(), e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(headerLines(msg.Header), msg.Data)
	f.Add("ce-specversion: 1.0\nce-id: 1\nce-type: customer.create\nce-source: /erp\ncontent-type: application/json", []byte(`{"email":"ann@example.com"}`))
	f.Add("ce-specversion: 0.3\nce-id: 1\nce-type: t\nce-source: /s\nce-time: yesterday", []byte("x"))
	f.Add("content-type: application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","type":"t","source":"%zz","data_base64":"!!"}`))
	f.Add("content-type: application/cloudevents-batch+json", []byte(`[{}]`))
	f.Add("", []byte("hello"))
	f.Fuzz(func(t *testing.T, headers string, data []byte) {
		msg := &nats.Msg{Subject: "customerbus.events.x", Header: nats.Header{}, Data: data}
		for line := range strings.SplitSeq(headers, "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok {
				msg.Header.Add(name, strings.TrimPrefix(value, " "))
			}
		}
		e, err := FromMsg(msg)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("FromMsg: %v is not ErrInvalidEvent", err)
			}
			return
		}
		if e.Validate() != nil || e.DataContentType() != cloudevents.ApplicationJSON {
			// Read, but the readers refuse it; or data of another media
			// type, which only integrators' commands carry, and they are
			// never written again. (sdk-go takes a media type in another
			// case, AppliCAtion/json, for one that is not JSON, and writes
			// its data as nothing.)
			return
		}
		out, err := ToMsg(context.Background(), e)
		if err != nil {
			return // an event no writer writes: its data is not what its content type says
		}
		again, err := FromMsg(out)
		if err != nil {
			t.Fatalf("%s, as ToMsg writes it (%q), is unreadable: %v", e, out.Data, err)
		}
		if !sameEvent(e, again) {
			t.Fatalf("read\n%s\nwritten and read again\n%s", e, again)
		}
	})
}

// headerLines is a header as FuzzFromMsg takes it.
func headerLines(h nats.Header) string {
	var lines []string
	for name, values := range h {
		for _, v := range values {
			lines = append(lines, name+": "+v)
		}
	}
	return strings.Join(lines, "\n")
}

func sameEvent(a, b cloudevents.Event) bool {
	return a.ID() == b.ID() && a.Type() == b.Type() && a.Source() == b.Source() && a.Subject() == b.Subject() &&
		a.Time().Equal(b.Time()) && a.DataContentType() == b.DataContentType() && a.DataSchema() == b.DataSchema() &&
		a.SpecVersion() == b.SpecVersion() && maps.Equal(a.Extensions(), b.Extensions()) && sameData(a.Data(), b.Data())
}

// sameData compares data bytes, or JSON data as JSON: the SDK writes JSON
// data anew ("&" as "\u0026", say).
func sameData(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}
