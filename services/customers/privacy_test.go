package customers_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/customerbus/customerbus/events"
)

// person is personal data distinctive enough to be searched for byte by
// byte: none of it occurs anywhere by chance.
type person struct {
	email, first, last, phoneDigits, street string
}

func newPerson() person {
	return person{
		email: "zora.quill-" + randomSuffix() + "@example.com", first: "Zoraida", last: "Quillfeather",
		phoneDigits: "30 9876543", street: "Wunderlichweg 77",
	}
}

// needles are what must not be found after an erasure: the email, the
// names, the phone number (as given and as stored) and the street.
func (p person) needles() []string {
	return []string{p.email, p.first, p.last, "309876543", strings.Fields(p.street)[0]}
}

// live makes a customer of p and touches it through every path that keeps
// personal data: HTTP with an Idempotency-Key, a set-password email, an
// update, a note, an order and a guest order placed with its email, a bus
// command, a bus command so broken that it is dead-lettered, a failed login,
// a notification the notifier gave up on. It returns the customer, and its
// creation: the body and the Idempotency-Key it was sent with.
func (s *system) live(p person) (customerJSON, map[string]any, string) {
	s.t.Helper()
	t := s.t
	guest := orderBody(nil, time.Now().Add(-time.Hour))
	guest["email"] = p.email
	s.recordOrder(guest)

	var c customerJSON
	create, key := map[string]any{
		"email": p.email, "first_name": p.first, "last_name": p.last, "company_name": p.last + " GmbH",
		"phone": "+49 " + p.phoneDigits, "note": "prefers " + p.first + "'s calls", "external_reference": "crm-" + p.last,
		"metadata": map[string]string{"nickname": p.first}, "private_metadata": map[string]string{"crm": p.last},
		"addresses": []any{map[string]any{"first_name": p.first, "last_name": p.last, "street_address_1": p.street,
			"city": "Berlin", "postal_code": "10115", "country": "DE", "is_default_shipping": true}},
		"redirect_url": shopURL, "channel": "web",
	}, uuid.NewString()
	r := request(t, s, http.MethodPost, "/v1/customers", create, map[string]string{"Idempotency-Key": key})
	r.expectStatus(t, http.StatusCreated)
	r.decode(t, &c)
	request(t, s, http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"first_name": p.first + "-Ann"}, nil).expectStatus(t, http.StatusOK)
	request(t, s, http.MethodPost, "/v1/customers/"+c.ID+"/notes", map[string]any{"text": "called " + p.first}, nil).expectStatus(t, http.StatusCreated)
	own := orderBody(&c.ID, time.Now())
	own["email"] = p.email
	s.recordOrder(own)

	s.command("", events.CmdCustomerUpdate, map[string]any{"id": c.ID, "company_name": p.last + " AG"})
	broken := nats.NewMsg(events.CommandSubject(events.CmdCustomerUpdate))
	broken.Header.Set("ce-id", uuid.NewString())
	broken.Data = []byte(`{"id": "` + c.ID + `", "email": "` + p.email + `"`) // not JSON: not a CloudEvent
	if _, err := s.js.PublishMsg(context.Background(), broken); err != nil {
		t.Fatal(err)
	}
	s.waitCommands(2)

	s.public(http.MethodPost, "/v1/store/token", map[string]any{"email": p.email, "password": "not the password"}).
		expectStatus(t, http.StatusUnauthorized)

	// The notifier's dead-letter stream, as the notifier makes it, holding
	// a copy of the set-password notification.
	s.waitRelayed()
	ctx := context.Background()
	s.awaitWebhooks()
	if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: events.NotificationsDeadLetterStream, Subjects: []string{"customerbus.deadletter.notifications.>"},
	}); err != nil {
		t.Fatal(err)
	}
	nstream, err := s.js.Stream(ctx, events.NotificationsStream)
	if err != nil {
		t.Fatal(err)
	}
	note, err := nstream.GetLastMsgForSubject(ctx, events.NotificationsSubjectPrefix+events.CustomerPasswordSetupRequested)
	if err != nil {
		t.Fatal(err)
	}
	dl := nats.NewMsg("customerbus.deadletter.notifications." + events.CustomerPasswordSetupRequested)
	dl.Data, dl.Header = note.Data, note.Header
	dl.Header.Set("Customerbus-Deadletter-Reason", "550 no such user "+p.email)
	if _, err := s.js.PublishMsg(ctx, dl); err != nil {
		t.Fatal(err)
	}
	return c, create, key
}

// awaitWebhooks makes every public event so far wait for delivery to an
// endpoint, as the webhooks service stores them (once each, a delivery per
// endpoint), beside a ping of the endpoint, which is about no customer.
func (s *system) awaitWebhooks() {
	s.t.Helper()
	w := s.createWebhook(map[string]any{"url": "https://crm.example.com/hooks", "event_types": []string{"*"}})
	s.ping(w.ID)
	if _, err := s.pool.Exec(context.Background(), `
		WITH copied AS (
			INSERT INTO webhook_events (id, type, partition_key, seq, payload, created_at)
			SELECT event_id::text, substr(nats_subject, length('customerbus.events.') + 1), partition_key, id, event, now()
			FROM outbox WHERE nats_subject LIKE 'customerbus.events.%'
			RETURNING id, type, partition_key, seq
		)
		INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, partition_key, seq, next_attempt_at, created_at)
		SELECT gen_random_uuid(), $1, id, type, partition_key, seq, now() + interval '1 hour', now() FROM copied`, w.ID); err != nil {
		s.t.Fatalf("queue the events for the webhook: %v", err)
	}
}

// waitRelayed waits until the relay has published the whole outbox.
func (s *system) waitRelayed() {
	s.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); s.count(`SELECT count(*) FROM outbox WHERE sent_at IS NULL`) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			s.t.Fatal("the relay did not publish the outbox within 20 s")
		}
	}
}

// waitErased waits until the relay has erased the customer from the streams.
func (s *system) waitErased(id string) {
	s.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); s.count(`SELECT count(*) FROM erasures WHERE customer_id = $1 AND erased_at IS NOT NULL`, id) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			var last string
			_ = s.pool.QueryRow(context.Background(), `SELECT coalesce(max(last_error), 'no erasure') FROM erasures WHERE customer_id = $1`, id).Scan(&last)
			s.t.Fatalf("the customer's messages were not erased within 20 s: %s", last)
		}
	}
}

// traces lists where any of the needles is found, byte by byte: in every
// row of every table (as PostgreSQL sends it, bytea and jsonb included), in
// every message of every stream (body and headers), and in every file of
// the NATS server's store, where an erased message's bytes would linger if
// the erasure were not secure.
func (s *system) traces(needles []string) []string {
	s.t.Helper()
	ctx := context.Background()
	var found []string
	holds := func(b []byte) string {
		low := bytes.ToLower(b)
		for _, n := range needles {
			if bytes.Contains(low, bytes.ToLower([]byte(n))) {
				return n
			}
		}
		return ""
	}

	rows, err := s.pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)
	if err != nil {
		s.t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			s.t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if rows.Err() != nil {
		s.t.Fatal(rows.Err())
	}
	for _, table := range tables {
		rows, err := s.pool.Query(ctx, `SELECT * FROM `+table)
		if err != nil {
			s.t.Fatal(err)
		}
		for n := 1; rows.Next(); n++ {
			for i, v := range rows.RawValues() {
				if needle := holds(v); needle != "" {
					found = append(found, fmt.Sprintf("table %s, row %d, column %s: %q", table, n, rows.FieldDescriptions()[i].Name, needle))
				}
			}
		}
		if rows.Err() != nil {
			s.t.Fatal(rows.Err())
		}
	}

	for name := range s.js.StreamNames(ctx).Name() {
		stream, err := s.js.Stream(ctx, name)
		if err != nil {
			s.t.Fatal(err)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			s.t.Fatal(err)
		}
		for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := stream.GetMsg(ctx, seq)
			if err != nil {
				continue // deleted
			}
			where := fmt.Sprintf("stream %s, message %d (%s)", name, seq, m.Subject)
			if needle := holds(m.Data); needle != "" {
				found = append(found, where+": "+needle)
			}
			for k, vs := range m.Header {
				for _, v := range vs {
					if needle := holds([]byte(v)); needle != "" {
						found = append(found, where+", header "+k+": "+needle)
					}
				}
			}
		}
	}

	err = filepath.WalkDir(s.nats.StoreDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if needle := holds(b); needle != "" {
			found = append(found, "file "+strings.TrimPrefix(path, s.nats.StoreDir())+": "+needle)
		}
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return found
}

// An anonymized customer leaves no trace of its email, names, phone or
// address in any table, in any message of any stream, or in the NATS
// server's files; the customer.anonymized event stays for the apps.
func TestAnonymizeLeavesNoTraceInAnyTableOrStream(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	p := newPerson()
	c, create, key := s.live(p)
	s.waitRelayed()
	before := s.traces(p.needles())
	for _, want := range []string{"table customers", "table orders", "table outbox", "table idempotency_keys", "table login_failures", "table webhook_events",
		"stream CUSTOMERBUS_EVENTS", "stream CUSTOMERBUS_NOTIFICATIONS", "stream CUSTOMERBUS_COMMANDS_DLQ", "stream CUSTOMERBUS_NOTIFICATIONS_DLQ", "file "} {
		if !strings.Contains(strings.Join(before, "\n"), want) {
			t.Fatalf("before the erasure, no trace in %q: the search cannot fail. Found:\n%s", want, strings.Join(before, "\n"))
		}
	}

	var anon customerJSON
	r := request(t, s, http.MethodPost, "/v1/customers/"+c.ID+"/anonymize", nil, nil)
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &anon)
	s.waitErased(c.ID)
	if left := s.traces(p.needles()); len(left) > 0 {
		t.Errorf("after the erasure, the customer's data is still in:\n%s", strings.Join(left, "\n"))
	}

	// The webhook's deliveries of its events went with them (its own and
	// its guest order's); the ping, about no customer, waits still.
	placeholder := "anonymized-" + c.ID + "@anonymized.invalid"
	if n := s.count(`SELECT count(*) FROM webhook_deliveries WHERE partition_key = $1
		OR partition_key IN (SELECT id::text FROM orders WHERE email = $2)`, c.ID, placeholder); n != 0 {
		t.Errorf("%d deliveries of the customer's events are left", n)
	}
	if n := s.count(`SELECT count(*) FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE e.type = $1`, events.WebhookPing); n != 1 {
		t.Errorf("%d pings wait for the webhook, want 1: the erasure took events of no customer", n)
	}

	// A fresh GET shows what the answer did: the customer, erased.
	var got customerJSON
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if !got.IsAnonymized || got.Email != placeholder || got.FirstName != "" || got.Phone != nil || got.IsActive ||
		len(got.Metadata) != 0 || len(got.PrivateMetadata) != 0 || got.DefaultShipping != nil || got.Version != anon.Version {
		t.Errorf("after the erasure GET reads %+v, the answer was %+v", got, anon)
	}
	// Its orders stay, without the email.
	if n := s.count(`SELECT count(*) FROM orders WHERE email = $1`, placeholder); n != 2 {
		t.Errorf("%d orders carry the placeholder, want 2 (its own and the guest order)", n)
	}

	// On the stream, customer.anonymized is the customer's one message.
	left := s.streamSubjects(events.EventsStream, c.ID)
	if len(left) != 1 || left[0].typ != events.CustomerAnonymized || left[0].seq != fmt.Sprint(anon.Version) {
		t.Errorf("the events stream holds %v about the customer, want customer.anonymized %d alone", left, anon.Version)
	}

	// Anonymized, it cannot be changed or logged into; erasing again
	// changes nothing; a replay of its creation answers 410.
	request(t, s, http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"first_name": "Back"}, nil).
		expectProblem(t, http.StatusConflict, "id", "anonymized")
	s.public(http.MethodPost, "/v1/store/token", map[string]any{"email": p.email, "password": "not the password"}).
		expectStatus(t, http.StatusUnauthorized)
	var again customerJSON
	r = request(t, s, http.MethodPost, "/v1/customers/"+c.ID+"/anonymize", nil, nil)
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &again)
	if again.Version != anon.Version {
		t.Errorf("anonymizing again moved the version from %d to %d", anon.Version, again.Version)
	}
	request(t, s, http.MethodPost, "/v1/customers", create, map[string]string{"Idempotency-Key": key}).
		expectProblem(t, http.StatusGone, "", "anonymized")
}

// subjectMessage is one message of a stream about a subject.
type subjectMessage struct{ typ, seq string }

// streamSubjects lists the stream's messages about subject, in order.
func (s *system) streamSubjects(stream, subject string) []subjectMessage {
	s.t.Helper()
	var out []subjectMessage
	for _, e := range s.readStreamEvents(stream) {
		if e.Subject() == subject {
			out = append(out, subjectMessage{e.Type(), ext(e, events.ExtSequence)})
		}
	}
	return out
}

// readStreamEvents reads a stream whole, as every consumer reads it.
func (s *system) readStreamEvents(stream string) []cloudevents.Event {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return (&everyReader{s: s}).readStream(ctx, stream)
}

// A deletion erases by default, the bulk one too: no trace is left, the
// orders stay without the email, and the stream keeps customer.anonymized
// and customer.deleted (with the placeholder) for the apps.
func TestDeletionErasesByDefault(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	one, two := newPerson(), newPerson()
	two.email = "quill.two-" + randomSuffix() + "@example.com"
	a, _, _ := s.live(one)
	b := s.createCustomer(map[string]any{"email": two.email, "first_name": two.first, "phone": "+49 " + two.phoneDigits})
	s.waitRelayed()
	if len(s.traces(append(one.needles(), two.email))) == 0 {
		t.Fatal("no trace before the deletion: the search cannot fail")
	}

	request(t, s, http.MethodDelete, "/v1/customers/"+a.ID, nil, nil).expectStatus(t, http.StatusNoContent)
	request(t, s, http.MethodPost, "/v1/customers/bulk-delete", map[string]any{"ids": []string{b.ID}}, nil).expectStatus(t, http.StatusOK)
	s.waitErased(a.ID)
	s.waitErased(b.ID)
	if left := s.traces(append(one.needles(), two.email)); len(left) > 0 {
		t.Errorf("after the deletions, the customers' data is still in:\n%s", strings.Join(left, "\n"))
	}
	request(t, s, http.MethodGet, "/v1/customers/"+a.ID, nil, nil).expectProblem(t, http.StatusNotFound, "id", "not_found")
	placeholder := "anonymized-" + a.ID + "@anonymized.invalid"
	if n := s.count(`SELECT count(*) FROM orders WHERE email = $1 AND customer_id IS NULL`, placeholder); n != 2 {
		t.Errorf("%d guest orders carry the placeholder after the deletion, want 2", n)
	}
	evs := s.readStreamEvents(events.EventsStream)
	for _, id := range []string{a.ID, b.ID} {
		var got []string
		for _, e := range evs {
			if e.Subject() == id {
				got = append(got, e.Type())
				if e.Type() == events.CustomerDeleted && !strings.Contains(string(e.Data()), "anonymized-"+id+"@anonymized.invalid") {
					t.Errorf("customer.deleted of %s does not carry the placeholder: %s", id, e.Data())
				}
			}
		}
		if want := []string{events.CustomerAnonymized, events.CustomerDeleted}; !slices.Equal(got, want) {
			t.Errorf("the stream holds %v about %s, want %v", got, id, want)
		}
	}
}

// An erasure cancels the customer's open order transfers, each with its
// order.transfer_cancelled, which stays on the stream: apps hear of it.
func TestAnonymizeCancelsOpenTransfers(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	owner, to := s.newShopper(), s.newShopper()
	ord := s.recordOrder(orderBody(&owner.ID, time.Now()))
	s.requestTransfer(ord.ID, to.ID).expectStatus(t, http.StatusCreated)

	request(t, s, http.MethodPost, "/v1/customers/"+to.ID+"/anonymize", nil, nil).expectStatus(t, http.StatusOK)
	if n := s.count(`SELECT count(*) FROM order_transfer_requests WHERE order_id = $1 AND status = 'cancelled'`, ord.ID); n != 1 {
		t.Fatalf("%d cancelled transfer requests of the order after the erasure of its recipient, want 1", n)
	}
	s.waitErased(to.ID)
	s.waitRelayed() // the erasure does not wait for the relay to publish the cancellation
	var cancelled int
	for _, e := range s.readStreamEvents(events.EventsStream) {
		if e.Type() == events.OrderTransferCancelled && strings.Contains(string(e.Data()), ord.ID) {
			cancelled++
		}
	}
	if cancelled != 1 {
		t.Errorf("%d order.transfer_cancelled of the order on the stream, want 1", cancelled)
	}
}
