package customers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/schematest"
)

// streamEvents waits until the events stream holds want messages, reads them
// all in stream order, and fails if more than want arrive within a grace period.
func (s *system) streamEvents(want int) ([]cloudevents.Event, []*nats.Msg) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stream jetstream.Stream
	for {
		var err error
		stream, err = s.js.Stream(ctx, events.EventsStream)
		if err == nil {
			info, err := stream.Info(ctx)
			if err == nil && info.State.Msgs >= uint64(want) {
				break
			}
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("stream did not reach %d events", want)
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Give a duplicate the chance to show up before counting.
	time.Sleep(300 * time.Millisecond)
	info, err := stream.Info(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	if info.State.Msgs != uint64(want) {
		s.t.Fatalf("stream holds %d events, want exactly %d", info.State.Msgs, want)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		s.t.Fatal(err)
	}
	var evs []cloudevents.Event
	var msgs []*nats.Msg
	for len(evs) < want {
		batch, err := cons.Fetch(want-len(evs), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			s.t.Fatal(err)
		}
		for m := range batch.Messages() {
			nm := &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
			e, err := events.FromMsg(nm)
			if err != nil {
				s.t.Fatalf("message on %s is not a CloudEvent: %v", m.Subject(), err)
			}
			schematest.Validate(s.t, e)
			evs = append(evs, e)
			msgs = append(msgs, nm)
		}
		if err := batch.Error(); err != nil {
			s.t.Fatal(err)
		}
	}
	return evs, msgs
}

func ext(e cloudevents.Event, name string) string {
	v, _ := e.Extensions()[name].(string)
	return v
}

func TestCreateEmitsOneCustomerCreatedWithContractAttributes(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var c customerJSON
	req := map[string]any{"email": "ann@example.com", "first_name": "Ann", "private_metadata": map[string]string{"secret": "s3"}}
	resp := s.send(http.MethodPost, "/v1/customers", req, &c, map[string]string{"Authorization": "Bearer " + s.token, "traceparent": trace})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}

	evs, msgs := s.streamEvents(1)
	e, msg := evs[0], msgs[0]
	checks := []struct{ name, got, want string }{
		{"specversion", e.SpecVersion(), "1.0"},
		{"type", e.Type(), events.CustomerCreated},
		{"source", e.Source(), "/customerbus/customers"},
		{"subject", e.Subject(), c.ID},
		{"datacontenttype", e.DataContentType(), "application/json"},
		{"dataschema", e.DataSchema(), s.api.URL + "/schemas/events/customer.created.json"},
		{"sequence", ext(e, "sequence"), "1"},
		{"partitionkey", ext(e, "partitionkey"), c.ID},
		{"traceparent", ext(e, "traceparent"), trace},
		{"authtype", ext(e, "authtype"), events.AuthServiceAccount},
		{"nats subject", msg.Subject, "customerbus.events.customer.created"},
		{"Nats-Msg-Id", msg.Header.Get(nats.MsgIdHdr), e.ID()},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
	if ext(e, "authid") == "" {
		t.Error("authid is empty")
	}
	if got := e.Time(); !got.Equal(c.CreatedAt) {
		t.Errorf("time = %v, want the commit time %v", got, c.CreatedAt)
	}
	var data map[string]any
	if err := json.Unmarshal(e.Data(), &data); err != nil {
		t.Fatal(err)
	}
	if _, leaked := data["private_metadata"]; leaked {
		t.Error("customer.created data carries private_metadata")
	}
	if data["id"] != c.ID || data["email"] != "ann@example.com" || data["first_name"] != "Ann" {
		t.Errorf("data = %v, want the created customer", data)
	}
}

func TestUpdateAndDeleteEmitEventsWithConsecutiveSequences(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, retainOnDelete) // the deletion keeps the earlier events
	c := s.createCustomer(map[string]any{"email": "bo@example.com"})
	var updated customerJSON
	if r := s.do(http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"first_name": "Bo", "note": "vip", "email": "bo@example.com"}, &updated); r.StatusCode != http.StatusOK {
		t.Fatalf("patch: status %d", r.StatusCode)
	}
	if r := s.do(http.MethodDelete, "/v1/customers/"+c.ID, nil, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: status %d", r.StatusCode)
	}

	evs, _ := s.streamEvents(3)
	wantTypes := []string{events.CustomerCreated, events.CustomerUpdated, events.CustomerDeleted}
	for i, e := range evs {
		if e.Type() != wantTypes[i] || ext(e, "sequence") != []string{"1", "2", "3"}[i] || e.Subject() != c.ID {
			t.Errorf("event %d = %s seq %s subject %s, want %s seq %d about %s", i, e.Type(), ext(e, "sequence"), e.Subject(), wantTypes[i], i+1, c.ID)
		}
	}
	var upd events.CustomerUpdatedData
	if err := json.Unmarshal(evs[1].Data(), &upd); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(upd.Changed, []string{"first_name", "note"}) {
		t.Errorf("changed = %v, want [first_name note] (email was sent but did not change)", upd.Changed)
	}
	if upd.Version != 2 || upd.FirstName != "Bo" || updated.Version != 2 {
		t.Errorf("updated data version %d first_name %q, API version %d", upd.Version, upd.FirstName, updated.Version)
	}
	var del events.CustomerDeletedData
	if err := json.Unmarshal(evs[2].Data(), &del); err != nil {
		t.Fatal(err)
	}
	if del.ID.String() != c.ID || del.Email != "bo@example.com" || del.DeletedAt.IsZero() {
		t.Errorf("deleted data = %+v", del)
	}
}

// A change of private metadata alone, whichever way it comes, is stored: a
// fresh GET and the row show it, with updated_at moved (the row's last
// change). It takes no version and emits no public event, since no event
// may reveal it and a version without its event would leave a gap.
func TestPrivateMetadataOnlyChangeIsStoredWithoutVersionOrEvent(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	ways := []struct {
		name   string
		change func(t *testing.T, id string) customerJSON
	}{
		{"PATCH private-metadata", func(t *testing.T, id string) customerJSON {
			var got customerJSON
			r := request(t, s, http.MethodPatch, "/v1/customers/"+id+"/private-metadata", map[string]any{"set": map[string]string{"erp": "42"}}, nil)
			r.expectStatus(t, http.StatusOK)
			r.decode(t, &got)
			return got
		}},
		{"PATCH customer with only private_metadata", func(t *testing.T, id string) customerJSON {
			var got customerJSON
			r := request(t, s, http.MethodPatch, "/v1/customers/"+id, map[string]any{"private_metadata": map[string]string{"erp": "42"}}, nil)
			r.expectStatus(t, http.StatusOK)
			r.decode(t, &got)
			return got
		}},
		{"bus command customer.private_metadata.update", func(t *testing.T, id string) customerJSON {
			var got customerJSON
			st := s.forTest(t)
			st.commandReply(st.command("", events.CmdCustomerPrivateMetadataUpdate, map[string]any{"id": id, "set": map[string]string{"erp": "42"}}), &got)
			return got
		}},
		{"bulk update with only private_metadata", func(t *testing.T, id string) customerJSON {
			var res struct {
				Customers []customerJSON `json:"customers"`
				Changed   []string       `json:"changed"`
			}
			r := request(t, s, http.MethodPost, "/v1/customers/bulk-update", map[string]any{"ids": []string{id}, "update": map[string]any{"private_metadata": map[string]string{"erp": "42"}}}, nil)
			r.expectStatus(t, http.StatusOK)
			r.decode(t, &res)
			if len(res.Customers) != 1 || !slices.Equal(res.Changed, []string{id}) {
				t.Fatalf("bulk update answered %+v, want the one customer, changed", res)
			}
			return res.Customers[0]
		}},
	}
	for i, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			c := s.forTest(t).createCustomer(map[string]any{"email": fmt.Sprintf("private%d@example.com", i)})
			got := w.change(t, c.ID)
			if !maps.Equal(got.PrivateMetadata, map[string]string{"erp": "42"}) || got.Version != c.Version || !got.UpdatedAt.After(c.UpdatedAt) {
				t.Errorf("answered private_metadata %v version %d updated_at %v; want erp=42, version %d, updated_at after %v",
					got.PrivateMetadata, got.Version, got.UpdatedAt, c.Version, c.UpdatedAt)
			}
			s.forTest(t).expectStored(got)
		})
	}
	// One customer.created per way, and nothing else: no public event and
	// no rejection for any of the private changes.
	evs, _ := s.streamEvents(len(ways))
	for _, e := range evs {
		if e.Type() != events.CustomerCreated {
			t.Errorf("a private change published %s about %s: %s", e.Type(), e.Subject(), e.Data())
		}
	}
}

func TestRejectedCommandLeavesNoRowAndNoEvent(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.createCustomer(map[string]any{"email": "dup@example.com"})
	var p problemJSON
	resp := s.do(http.MethodPost, "/v1/customers", map[string]any{"email": "DUP@example.com", "first_name": "Other"}, &p)
	if resp.StatusCode != http.StatusConflict || len(p.Errors) != 1 || p.Errors[0].Code != "unique" || p.Errors[0].Field != "email" {
		t.Fatalf("duplicate email: status %d problem %+v, want 409 unique on email", resp.StatusCode, p)
	}
	if n := s.count("SELECT count(*) FROM customers"); n != 1 {
		t.Errorf("customers rows = %d, want 1", n)
	}
	if n := s.count("SELECT count(*) FROM outbox"); n != 1 {
		t.Errorf("outbox rows = %d, want 1", n)
	}
	evs, _ := s.streamEvents(1)
	if evs[0].Type() != events.CustomerCreated {
		t.Errorf("the only event is %s", evs[0].Type())
	}
}

func TestCommandsAcceptedWhileNATSIsDownArePublishedInOrderWhenItIsBack(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.nats.Stop()

	// The API keeps accepting commands: they only need PostgreSQL.
	var ids []string
	for i := range 3 {
		c := s.createCustomer(map[string]any{"email": "down" + string(rune('a'+i)) + "@example.com"})
		for _, name := range []string{"A", "B"} {
			if r := s.do(http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"first_name": name}, nil); r.StatusCode != http.StatusOK {
				t.Fatalf("patch while NATS is down: status %d", r.StatusCode)
			}
		}
		ids = append(ids, c.ID)
	}
	time.Sleep(500 * time.Millisecond) // the relay tries and fails meanwhile
	if n := s.count("SELECT count(*) FROM outbox WHERE sent_at IS NULL"); n != 9 {
		t.Fatalf("unsent outbox rows while NATS is down = %d, want 9", n)
	}

	s.nats.Start()
	evs, _ := s.streamEvents(9)
	next := map[string]int{}
	for _, e := range evs {
		next[e.Subject()]++
		if got, want := ext(e, "sequence"), string(rune('0'+next[e.Subject()])); got != want {
			t.Errorf("customer %s: event %s has sequence %s, want %s (out of order)", e.Subject(), e.Type(), got, want)
		}
	}
	for _, id := range ids {
		if next[id] != 3 {
			t.Errorf("customer %s: %d events, want 3", id, next[id])
		}
	}
}

func TestMetadataEndpointsSetAndRemoveKeysAndKeepPrivateOutOfEvents(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.createCustomer(map[string]any{"email": "meta@example.com", "metadata": map[string]string{"old": "1", "keep": "k"}})

	var got customerJSON
	r := s.do(http.MethodPatch, "/v1/customers/"+c.ID+"/metadata", map[string]any{"set": map[string]string{"tier": "gold"}, "remove": []string{"old"}}, &got)
	if r.StatusCode != http.StatusOK || got.Metadata["tier"] != "gold" || got.Metadata["keep"] != "k" || len(got.Metadata) != 2 || got.Version != 2 {
		t.Fatalf("public metadata patch: status %d, %+v", r.StatusCode, got)
	}
	s.expectStored(got)
	r = s.do(http.MethodPatch, "/v1/customers/"+c.ID+"/private-metadata", map[string]any{"set": map[string]string{"erp_id": "E-9"}}, &got)
	if r.StatusCode != http.StatusOK || got.PrivateMetadata["erp_id"] != "E-9" || got.Version != 2 {
		t.Fatalf("private metadata patch: status %d, %+v", r.StatusCode, got)
	}
	s.expectStored(got)
	// Setting what is already there changes nothing and emits nothing.
	s.do(http.MethodPatch, "/v1/customers/"+c.ID+"/metadata", map[string]any{"set": map[string]string{"tier": "gold"}}, &got)
	if got.Version != 2 {
		t.Errorf("a no-op metadata patch bumped the version to %d", got.Version)
	}

	evs, _ := s.streamEvents(2) // created + metadata_updated; nothing for the private change
	e := evs[1]
	if e.Type() != events.CustomerMetadataUpdated || ext(e, "sequence") != "2" || e.Subject() != c.ID {
		t.Fatalf("second event %s seq %s subject %s", e.Type(), ext(e, "sequence"), e.Subject())
	}
	var data events.CustomerMetadataUpdatedData
	if err := json.Unmarshal(e.Data(), &data); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(data.ChangedKeys, []string{"old", "tier"}) || data.Metadata["tier"] != "gold" || len(data.Metadata) != 2 {
		t.Errorf("metadata_updated data = %+v", data)
	}
	for _, e := range evs {
		if strings.Contains(string(e.Data()), "E-9") || strings.Contains(string(e.Data()), "erp_id") {
			t.Errorf("%s carries private metadata: %s", e.Type(), e.Data())
		}
	}

	tooMany := map[string]string{}
	for i := range 101 {
		tooMany[fmt.Sprint("k", i)] = "v"
	}
	bad := []struct {
		name, path string
		body       any
		status     int
		field      string
		code       string
	}{
		{"nothing to do", "/metadata", map[string]any{}, 400, "set", "required"},
		{"a key both set and removed", "/metadata", map[string]any{"set": map[string]string{"a": "1"}, "remove": []string{"a"}}, 400, "remove", "invalid"},
		{"over the key limit", "/private-metadata", map[string]any{"set": tooMany}, 400, "private_metadata", "max_items"},
		{"unknown field", "/metadata", map[string]any{"replace": map[string]string{}}, 400, "replace", "unknown_field"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			var p problemJSON
			r := s.do(http.MethodPatch, "/v1/customers/"+c.ID+tt.path, tt.body, &p)
			if r.StatusCode != tt.status || len(p.Errors) == 0 || p.Errors[0].Field != tt.field || p.Errors[0].Code != tt.code {
				t.Errorf("status %d problem %+v, want %d %s %s", r.StatusCode, p, tt.status, tt.field, tt.code)
			}
		})
	}
	var p problemJSON
	if r := s.do(http.MethodPatch, "/v1/customers/01970000-0000-7000-8000-000000000000/metadata", map[string]any{"set": map[string]string{"a": "b"}}, &p); r.StatusCode != 404 {
		t.Errorf("unknown customer: status %d", r.StatusCode)
	}
}

func TestNotesAreListedNewestFirstAndEmitNoteAdded(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.createCustomer(map[string]any{"email": "notes@example.com"})
	type noteJSON struct {
		ID        string `json:"id"`
		Text      string `json:"text"`
		Author    struct{ Type, ID, Name string }
		CreatedAt time.Time `json:"created_at"`
	}
	var answered []noteJSON
	for i := range 5 {
		var n noteJSON
		if r := s.do(http.MethodPost, "/v1/customers/"+c.ID+"/notes", map[string]any{"text": fmt.Sprint("note ", i)}, &n); r.StatusCode != http.StatusCreated {
			t.Fatalf("add note: status %d", r.StatusCode)
		}
		if n.Author.Name != "test" || n.Author.Type != events.AuthServiceAccount || n.Author.ID == "" {
			t.Errorf("author = %+v, want the token's name and id", n.Author)
		}
		answered = append([]noteJSON{n}, answered...) // newest first, as listed
	}
	var texts []string
	var listed []noteJSON
	cursor := ""
	for range 5 {
		var page struct {
			Notes      []noteJSON
			NextCursor *string `json:"next_cursor"`
		}
		q := "?limit=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		s.do(http.MethodGet, "/v1/customers/"+c.ID+"/notes"+q, nil, &page)
		for _, n := range page.Notes {
			texts = append(texts, n.Text)
		}
		listed = append(listed, page.Notes...)
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if want := []string{"note 4", "note 3", "note 2", "note 1", "note 0"}; !slices.Equal(texts, want) {
		t.Errorf("notes = %v, want newest first %v", texts, want)
	}
	if !reflect.DeepEqual(listed, answered) {
		t.Errorf("notes listed\n%+v\nthe adds answered\n%+v", listed, answered)
	}

	evs, _ := s.streamEvents(6)
	last := evs[5]
	if last.Type() != events.CustomerNoteAdded || ext(last, "sequence") != "6" || last.Subject() != c.ID {
		t.Errorf("last event %s seq %s, want customer.note_added seq 6", last.Type(), ext(last, "sequence"))
	}
	var got customerJSON
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if got.Version != 6 {
		t.Errorf("customer version %d after 5 notes, want 6", got.Version)
	}

	bad := []struct {
		name, method, path string
		body               any
		status             int
		field, code        string
	}{
		{"empty text", "POST", "/v1/customers/" + c.ID + "/notes", map[string]any{"text": "  "}, 400, "text", "required"},
		{"text too long", "POST", "/v1/customers/" + c.ID + "/notes", map[string]any{"text": strings.Repeat("x", 10_001)}, 400, "text", "max_length"},
		{"note on unknown customer", "POST", "/v1/customers/01970000-0000-7000-8000-000000000000/notes", map[string]any{"text": "x"}, 404, "id", "not_found"},
		{"notes of unknown customer", "GET", "/v1/customers/01970000-0000-7000-8000-000000000000/notes", nil, 404, "id", "not_found"},
		{"bad cursor", "GET", "/v1/customers/" + c.ID + "/notes?cursor=abc", nil, 400, "cursor", "invalid"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			var p problemJSON
			r := s.do(tt.method, tt.path, tt.body, &p)
			if r.StatusCode != tt.status || len(p.Errors) == 0 || p.Errors[0].Field != tt.field || p.Errors[0].Code != tt.code {
				t.Errorf("status %d problem %+v, want %d %s %s", r.StatusCode, p, tt.status, tt.field, tt.code)
			}
		})
	}
	// A customer without notes lists none, not 404.
	other := s.createCustomer(map[string]any{"email": "quiet@example.com"})
	var empty struct{ Notes []any }
	if r := s.do(http.MethodGet, "/v1/customers/"+other.ID+"/notes", nil, &empty); r.StatusCode != 200 || len(empty.Notes) != 0 {
		t.Errorf("empty notes: status %d, %v", r.StatusCode, empty.Notes)
	}
}

// Every kind of change, made to a customer whose private metadata holds a
// marker: no event on customerbus.events.> carries the marker, in data or headers.
func TestPrivateMetadataNeverAppearsInAnyEvent(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, retainOnDelete) // every event stays to be read
	const secret = "S3CRET-private-value"
	c := s.createCustomer(map[string]any{"email": "private@example.com",
		"private_metadata": map[string]string{"erp": secret, secret: "as a key"},
		"addresses":        []any{validAddress()}})
	if c.PrivateMetadata["erp"] != secret {
		t.Fatalf("staff API lost private metadata: %v", c.PrivateMetadata)
	}
	base := "/v1/customers/" + c.ID
	var a addressJSON
	steps := []struct {
		method, path string
		body         any
		out          any
	}{
		{"PATCH", base, map[string]any{"first_name": "Pat", "private_metadata": map[string]string{"erp": secret + "-2"}}, nil},
		{"PATCH", base + "/private-metadata", map[string]any{"set": map[string]string{"other": secret}}, nil},
		{"POST", base + "/addresses", validAddress(), &a},
		{"POST", base + "/notes", map[string]any{"text": "called"}, nil},
		{"POST", "/v1/customers/bulk-update", map[string]any{"ids": []string{c.ID}, "update": map[string]any{"is_active": false}}, nil},
	}
	for _, st := range steps {
		if r := s.do(st.method, st.path, st.body, st.out); r.StatusCode >= 300 {
			t.Fatalf("%s %s: status %d", st.method, st.path, r.StatusCode)
		}
	}
	s.do(http.MethodPatch, base+"/addresses/"+a.ID, map[string]any{"city": "Köln"}, nil)
	s.do(http.MethodDelete, base+"/addresses/"+a.ID, nil, nil)
	g := s.createGroup("Private test")
	s.do(http.MethodPost, "/v1/customer-groups/"+g.ID+"/customers", map[string]any{"add": []string{c.ID}}, nil)
	s.do(http.MethodDelete, base, nil, nil)

	// created, updated, address created/updated/deleted, note, bulk update,
	// group created, customers_added, deleted: the private changes emit nothing.
	evs, msgs := s.streamEvents(10)
	for i, e := range evs {
		if strings.Contains(string(e.Data()), "S3CRET") || strings.Contains(string(e.Data()), "private_metadata") {
			t.Errorf("%s carries private metadata: %s", e.Type(), e.Data())
		}
		for k, v := range msgs[i].Header {
			if strings.Contains(strings.Join(v, " "), "S3CRET") {
				t.Errorf("%s header %s carries private metadata", e.Type(), k)
			}
		}
	}
}
