package notifier

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/events"
)

const testRetention = 24 * time.Hour

// record writes a delivery record claimed claimedAgo and, unless sentAgo is
// negative, confirmed sentAgo (both by the database's clock).
func (b *bus) record(id uuid.UUID, claimedAgo, sentAgo time.Duration) {
	b.t.Helper()
	var sent *float64
	if sentAgo >= 0 {
		s := sentAgo.Seconds()
		sent = &s
	}
	if _, err := b.pool.Exec(context.Background(), `
		INSERT INTO notifier_deliveries (event_id, event_type, claim_id, claimed_at, sent_at)
		VALUES ($1, $2, $3, now() - make_interval(secs => $4), now() - make_interval(secs => $5))`,
		id, events.CustomerVerificationRequested, uuid.New(), claimedAgo.Seconds(), sent); err != nil {
		b.t.Fatal(err)
	}
}

// records lists the event ids with a delivery record.
func (b *bus) records() []uuid.UUID {
	b.t.Helper()
	rows, err := b.pool.Query(context.Background(), "SELECT event_id FROM notifier_deliveries")
	if err != nil {
		b.t.Fatal(err)
	}
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			b.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		b.t.Fatal(err)
	}
	return ids
}

func sameIDs(a, b []uuid.UUID) bool {
	cmp := func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) }
	return slices.Equal(slices.SortedFunc(slices.Values(a), cmp), slices.SortedFunc(slices.Values(b), cmp))
}

func TestSweepDeletesOnlyConfirmedRecordsOlderThanRetention(t *testing.T) {
	b := newBus(t, func(c *Config) { c.DeliveryRetention = testRetention })
	b.n.sweepBatch = 2 // five old records take three statements
	for range 5 {
		b.record(uuid.New(), testRetention+2*time.Hour, testRetention+time.Hour)
	}
	keep := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	b.record(keep[0], testRetention+2*time.Hour, testRetention-time.Hour) // sent within the retention
	b.record(keep[1], 2*testRetention, -1)                                // an old claim never confirmed: interrupted, kept to be taken over
	b.record(keep[2], time.Second, 0)                                     // just sent

	deleted, err := b.n.sweep(context.Background())
	if err != nil || deleted != 5 {
		t.Fatalf("sweep deleted %d (err %v), want 5", deleted, err)
	}
	if got := b.records(); !sameIDs(got, keep) {
		t.Errorf("records left %v, want %v", got, keep)
	}
	if got := b.counter("swept"); got != 5 {
		t.Errorf("swept counter %v, want 5", got)
	}
	if deleted, err := b.n.sweep(context.Background()); err != nil || deleted != 0 {
		t.Errorf("second sweep deleted %d (err %v), want 0", deleted, err)
	}
}

// The notifier sweeps when it starts. An event whose record is gone is
// older than the retention (its time is before its email was sent), so it is
// dead-lettered as stale rather than sent a second time; an old event whose
// record is still there is a duplicate as always.
func TestSweptEventIsNeverSentAgain(t *testing.T) {
	b := newBus(t, func(c *Config) { c.DeliveryRetention = testRetention })
	made := time.Now().Add(-testRetention - 2*time.Hour)
	swept := b.event(made, events.CustomerPasswordResetRequested, notification("ann@example.com", "en"))
	kept := b.event(made, events.CustomerPasswordResetRequested, notification("bob@example.com", "en"))
	b.record(uuid.MustParse(swept.Header.Get(nats.MsgIdHdr)), testRetention+2*time.Hour, testRetention+time.Hour)
	b.record(uuid.MustParse(kept.Header.Get(nats.MsgIdHdr)), time.Hour, time.Hour) // sent late, after an outage

	b.run()
	deadline := time.Now().Add(5 * time.Second)
	for len(b.records()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("records %v after 5s, want the old one swept at start", b.records())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Both come again, as after a consumer reset or a late re-publication.
	b.publishMsg(swept)
	b.publishMsg(kept)

	dl := b.deadLetters(1)
	if len(dl) != 1 || !bytes.Equal(dl[0].Data(), swept.Data) || dl[0].Headers().Get(HeaderReasonKind) != reasonStale {
		t.Fatalf("dead letters %v, want the swept event as %s", dl, reasonStale)
	}
	b.waitIdle()
	if got := b.counter("duplicates"); got != 1 {
		t.Errorf("duplicates counter %v, want 1 (the event whose record is kept)", got)
	}

	// A fresh event still goes out.
	b.publish(events.CustomerPasswordResetRequested, notification("cid@example.com", "en"))
	if m := b.smtp.WaitMails(1); len(m) != 1 || m[0].Rcpt != "cid@example.com" {
		t.Errorf("mails %v, want cid's only", m)
	}
	b.waitIdle()
}

func TestDeliveryRetentionHasAFloor(t *testing.T) {
	t.Parallel()
	_, err := New(nil, nil, zaptest.NewLogger(t), prometheus.NewRegistry(), Config{
		MailFrom: "shop@example.com", DeliveryRetention: time.Minute,
	})
	if err == nil || !strings.Contains(err.Error(), "NOTIFIER_DELIVERY_RETENTION") {
		t.Errorf("New error %v, want NOTIFIER_DELIVERY_RETENTION=1m refused", err)
	}
}
