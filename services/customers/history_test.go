package customers_test

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/customerbus/customerbus/events"
)

// liveLaneLock is the advisory lock of the relay's live lane.
const liveLaneLock = 0x637573746f6d6572

// historyEntryJSON is an entry of GET /v1/customers/{id}/history.
type historyEntryJSON struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Type       string    `json:"type"`
	ResourceID string    `json:"resource_id"`
	Sequence   int64     `json:"sequence"`
	OccurredAt time.Time `json:"occurred_at"`
	Actor      struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"actor"`
	Changed     []string   `json:"changed"`
	EmailSentAt *time.Time `json:"email_sent_at"`
}

// history reads the customer's whole history, page by page (limit per
// page), and returns it with the raw bodies.
func (s *system) history(id string, limit int) ([]historyEntryJSON, string) {
	s.t.Helper()
	var all []historyEntryJSON
	var raw strings.Builder
	cursor := ""
	for range 100 {
		path := "/v1/customers/" + id + "/history?limit=" + strconv.Itoa(limit)
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var page struct {
			Entries    []historyEntryJSON `json:"entries"`
			NextCursor *string            `json:"next_cursor"`
		}
		r := request(s.t, s, http.MethodGet, path, nil, nil)
		r.expectStatus(s.t, http.StatusOK)
		r.decode(s.t, &page)
		raw.Write(r.body)
		all = append(all, page.Entries...)
		if page.NextCursor == nil {
			return all, raw.String()
		}
		cursor = *page.NextCursor
	}
	s.t.Fatal("history: more than 100 pages")
	return nil, ""
}

// The history lists every change and every email, newest first, with who
// made it and the fields an update changed, as soon as the change commits
// and the same once the relay has published it; never a value.
func TestHistoryListsEveryChangeAndEmailNewestFirst(t *testing.T) {
	t.Parallel()
	m := newMailSystem(t)
	// The relay's live lane waits while the test holds its lock: the first
	// read finds every entry in the outbox, the second in the event log.
	ctx := context.Background()
	held, err := m.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	if _, err := held.Exec(ctx, `SELECT pg_advisory_lock($1)`, liveLaneLock); err != nil {
		t.Fatal(err)
	}
	email := "hist-" + randomSuffix() + "@example.com"
	c := m.createCustomer(map[string]any{"email": email, "redirect_url": shopURL, "channel": "web",
		"private_metadata": map[string]string{"erp": "secret-value-1"}})
	base := "/v1/customers/" + c.ID
	request(t, m.system, http.MethodPatch, base, map[string]any{"first_name": "Hedda"}, nil).expectStatus(t, http.StatusOK)
	request(t, m.system, http.MethodPatch, base+"/private-metadata", map[string]any{"set": map[string]string{"erp": "secret-value-2"}}, nil).expectStatus(t, http.StatusOK)
	request(t, m.system, http.MethodPatch, base+"/metadata", map[string]any{"set": map[string]string{"tier": "gold"}}, nil).expectStatus(t, http.StatusOK)
	request(t, m.system, http.MethodPost, base+"/notes", map[string]any{"text": "called"}, nil).expectStatus(t, http.StatusCreated)
	ord := m.recordOrder(orderBody(&c.ID, time.Now()))

	// At once, before the relay has published anything, and again after:
	// the same.
	early, _ := m.history(c.ID, 100)
	if n := m.count(`SELECT count(*) FROM event_log`); n != 0 {
		t.Fatalf("the relay published %d events while its lane was held", n)
	}
	if _, err := held.Exec(ctx, `SELECT pg_advisory_unlock($1)`, liveLaneLock); err != nil {
		t.Fatal(err)
	}
	m.waitRelayed()
	m.smtp.WaitMails(1)
	var entries []historyEntryJSON
	var raw string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if entries, raw = m.history(c.ID, 100); len(entries) > 0 && entries[len(entries)-2].EmailSentAt != nil || time.Now().After(deadline) {
			break
		}
	}
	type want struct {
		kind, typ, resource string
		seq                 int64
		changed             []string
	}
	wants := []want{
		{"change", events.OrderRecorded, ord.ID, 1, nil},
		{"change", events.CustomerNoteAdded, c.ID, 4, nil},
		{"change", events.CustomerMetadataUpdated, c.ID, 3, nil},
		{"change", events.CustomerUpdated, c.ID, 2, []string{"first_name"}},
		{"email", events.CustomerPasswordSetupRequested, c.ID, 1, nil},
		{"change", events.CustomerCreated, c.ID, 1, nil},
	}
	if len(entries) != len(wants) {
		t.Fatalf("history has %d entries, want %d: %+v", len(entries), len(wants), entries)
	}
	for i, w := range wants {
		e := entries[i]
		if e.Kind != w.kind || e.Type != w.typ || e.ResourceID != w.resource || e.Sequence != w.seq ||
			!slices.Equal(e.Changed, append([]string{}, w.changed...)) || e.Actor.Type != events.AuthServiceAccount || e.Actor.ID == "" {
			t.Errorf("entry %d = %+v, want %+v by a service account", i, e, w)
		}
		if i > 0 && e.OccurredAt.After(entries[i-1].OccurredAt) {
			t.Errorf("entry %d (%s) is newer than entry %d", i, e.Type, i-1)
		}
	}
	if entries[4].EmailSentAt == nil {
		t.Error("the set-password email's entry has no email_sent_at after the email was sent")
	}
	for i := range early {
		early[i].EmailSentAt = entries[i].EmailSentAt // sent in between
	}
	if !reflect.DeepEqual(early, entries) {
		t.Errorf("before the relay published, the history read\n%+v\nafter\n%+v", early, entries)
	}
	if strings.Contains(raw, "secret-value") || strings.Contains(raw, email) || strings.Contains(raw, "Hedda") {
		t.Errorf("the history shows a value: %s", raw)
	}
	// Pages of 2 make the same list.
	if paged, _ := m.history(c.ID, 2); !reflect.DeepEqual(paged, entries) {
		t.Errorf("in pages of 2 the history reads\n%+v\nwant\n%+v", paged, entries)
	}

	// An erasure keeps the history and adds to it; a deletion ends it.
	request(t, m.system, http.MethodPost, base+"/anonymize", nil, nil).expectStatus(t, http.StatusOK)
	m.waitErased(c.ID)
	after, _ := m.history(c.ID, 100)
	if len(after) != len(entries)+1 || after[0].Type != events.CustomerAnonymized || !reflect.DeepEqual(after[1:], entries) {
		t.Errorf("after the erasure the history reads %+v", after)
	}
	request(t, m.system, http.MethodGet, base+"/history?cursor=nonsense", nil, nil).expectProblem(t, http.StatusBadRequest, "cursor", "invalid")
	request(t, m.system, http.MethodDelete, base, nil, nil).expectStatus(t, http.StatusNoContent)
	request(t, m.system, http.MethodGet, base+"/history", nil, nil).expectProblem(t, http.StatusNotFound, "id", "not_found")
}
