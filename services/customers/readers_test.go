package customers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	cenats "github.com/cloudevents/sdk-go/protocol/nats/v2"
	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/customerbus/customerbus/events"
)

// everyReader reads what the relay publishes the three ways consumers do: an
// app's core NATS subscription decoded with sdk-go's NATS binding
// (protocol/nats/v2), a JetStream consumer decoded with sdk-go's JetStream
// binding (protocol/nats_jetstream/v2), and the raw bytes the `nats` CLI
// shows. It subscribes before the events are made: a core subscription sees
// only what is published after it.
type everyReader struct {
	s    *system
	core chan *nats.Msg
	// seen is every event the core subscription got, by id: a stream read
	// later holds no more than it (an erasure leaves less).
	seen map[string]*cloudevents.Event
}

func (s *system) readEveryWay() *everyReader {
	s.t.Helper()
	r := &everyReader{s: s, core: make(chan *nats.Msg, 10000), seen: map[string]*cloudevents.Event{}}
	nc := s.nats.Connect()
	for _, subject := range []string{events.EventsSubjectPrefix + ">", events.NotificationsSubjectPrefix + ">"} {
		if _, err := nc.ChanSubscribe(subject, r.core); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// read waits until the relay is idle, then reads both streams whole, checks
// that each message reads the same all three ways, and returns the events in
// stream order (public events, then notifications).
func (r *everyReader) read() []cloudevents.Event {
	t := r.s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.s.waitRelayed()
	var all []cloudevents.Event
	for _, name := range []string{events.EventsStream, events.NotificationsStream} {
		all = append(all, r.readStream(ctx, name)...)
	}

	// Every one of them reached the core subscription, and sdk-go's core
	// NATS binding reads it as the JetStream binding did.
	core := r.seen
	missing := func() bool {
		for _, e := range all {
			if core[e.ID()] == nil {
				return true
			}
		}
		return false
	}
	for missing() {
		select {
		case m := <-r.core:
			e, err := binding.ToEvent(ctx, cenats.NewMessage(m))
			if err != nil {
				t.Fatalf("protocol/nats cannot read the message on %s: %v\n%s", m.Subject, err, m.Data)
			}
			core[e.ID()] = e
		case <-ctx.Done():
			t.Fatalf("the core subscription got %d of %d events", len(core), len(all))
		}
	}
	for _, e := range all {
		c := core[e.ID()]
		if c == nil {
			t.Errorf("%s %s: not seen by the core subscription", e.Type(), e.ID())
			continue
		}
		if c.Type() != e.Type() || c.Subject() != e.Subject() || events.Sequence(*c) != events.Sequence(e) ||
			!bytes.Equal(c.Data(), e.Data()) || c.DataSchema() != e.DataSchema() || ext(*c, events.ExtTraceParent) != ext(e, events.ExtTraceParent) {
			t.Errorf("%s %s: protocol/nats read %v, protocol/nats_jetstream %v", e.Type(), e.ID(), c, e)
		}
	}
	return all
}

// readStream reads a stream from its start with sdk-go's JetStream binding,
// and checks each message's raw bytes.
func (r *everyReader) readStream(ctx context.Context, name string) []cloudevents.Event {
	t := r.s.t
	t.Helper()
	stream, err := r.s.js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []cloudevents.Event
	for pending := info.State.Msgs; pending > 0; {
		batch, err := cons.Fetch(int(min(pending, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if meta, err := m.Metadata(); err == nil {
				pending = meta.NumPending
			}
			msg := &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
			checkRaw(t, msg)
			e, err := binding.ToEvent(ctx, cejs.NewMessage(msg))
			if err != nil {
				t.Fatalf("protocol/nats_jetstream cannot read the message on %s: %v", m.Subject(), err)
			}
			out = append(out, *e)
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if got == 0 {
			t.Fatalf("stream %s: %d messages pending, none delivered in 5 s", name, pending)
		}
	}
	return out
}

// checkRaw reads a message as `nats sub` prints it, without a CloudEvents
// decoder: a JSON document whose id and type are plain to see.
func checkRaw(t *testing.T, m *nats.Msg) {
	t.Helper()
	var raw struct {
		SpecVersion string          `json:"specversion"`
		ID          string          `json:"id"`
		Type        string          `json:"type"`
		Data        json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(m.Data, &raw); err != nil || raw.SpecVersion != "1.0" || raw.ID == "" || raw.Type == "" || len(raw.Data) == 0 {
		t.Errorf("message on %s is not a CloudEvent in JSON (%v): %.300s", m.Subject, err, m.Data)
		return
	}
	if ct := m.Header.Get("content-type"); ct != cloudevents.ApplicationCloudEventsJSON {
		t.Errorf("%s %s: content-type %q, want %s", raw.Type, raw.ID, ct, cloudevents.ApplicationCloudEventsJSON)
	}
	if m.Subject != events.Subject(raw.Type) || m.Header.Get(nats.MsgIdHdr) != raw.ID {
		t.Errorf("%s %s: on subject %s with Nats-Msg-Id %q", raw.Type, raw.ID, m.Subject, m.Header.Get(nats.MsgIdHdr))
	}
}

// httpSchemaLoader fetches schemas by URL, as a consumer's validator does.
type httpSchemaLoader struct{ client *http.Client }

func (l httpSchemaLoader) Load(url string) (any, error) {
	resp, err := l.client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return jsonschema.UnmarshalJSON(resp.Body)
}

// validateAgainstDataschema fetches the schema each event's dataschema names
// (and the schemas it refers to) from the service, and validates the
// event's data against it.
func validateAgainstDataschema(t *testing.T, evs []cloudevents.Event) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.UseLoader(jsonschema.SchemeURLLoader{"http": httpSchemaLoader{http.DefaultClient}, "https": httpSchemaLoader{http.DefaultClient}})
	schemas := map[string]*jsonschema.Schema{}
	for _, e := range evs {
		sch, ok := schemas[e.DataSchema()]
		if !ok {
			var err error
			if sch, err = c.Compile(e.DataSchema()); err != nil {
				t.Errorf("%s: dataschema %s: %v", e.Type(), e.DataSchema(), err)
				continue
			}
			schemas[e.DataSchema()] = sch
		}
		data, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Data()))
		if err != nil {
			t.Errorf("%s %s: data is not JSON: %v", e.Type(), e.ID(), err)
			continue
		}
		if err := sch.Validate(data); err != nil {
			t.Errorf("%s %s: data does not match %s: %v", e.Type(), e.ID(), e.DataSchema(), err)
		}
	}
}

func TestEventSchemasAreServedWithoutATokenAndCacheable(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	url := s.api.URL + "/schemas/events/customer.updated.json"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want, _ := events.Schema(events.CustomerUpdated)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) || resp.Header.Get("Content-Type") != "application/schema+json" ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") || resp.Header.Get("ETag") == "" {
		t.Fatalf("GET %s: %d %v %.100s", url, resp.StatusCode, resp.Header, body)
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	again, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with the ETag: %d, want 304", again.StatusCode)
	}
	for _, path := range []string{"nope.json", "customer.updated", "..%2fschemas.go.json"} {
		r := s.public(http.MethodGet, "/schemas/events/"+path, nil)
		r.expectProblem(t, http.StatusNotFound, "", "no_route")
	}
}
