package relay

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/ops/opstest"
)

// While no relay runs, the outbox's backlog shows in a scrape, per lane:
// its unsent events, and the age of the oldest, growing. Once a relay ran,
// both are 0, and the publish metrics count what it published and how
// long the events waited.
func TestOutboxBacklogGrowsWhileTheRelayIsStoppedAndDropsAfter(t *testing.T) {
	pool, js := newBus(t)
	reg := prometheus.NewRegistry()
	r := New(pool, js, zaptest.NewLogger(t), reg, Config{PollInterval: 50 * time.Millisecond, PublishTimeout: time.Second})
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	scrape := func() opstest.Metrics { return opstest.Scrape(t, srv.URL) }
	backlog := func(m opstest.Metrics, lane string) (unsent, age float64) {
		t.Helper()
		unsent, ok1 := m.Value("customerbus_outbox_unsent_events", "lane", lane)
		age, ok2 := m.Value("customerbus_outbox_oldest_unsent_age_seconds", "lane", lane)
		if !ok1 || !ok2 {
			t.Fatalf("no outbox backlog of lane %s in the scrape", lane)
		}
		return unsent, age
	}

	a, b := uuid.New(), uuid.New()
	writeEvent(t, pool, a, 1, false)
	writeEvent(t, pool, b, 1, false)
	writeEvent(t, pool, b, 2, true)
	m := scrape()
	liveUnsent, liveAge := backlog(m, "live")
	bulkUnsent, _ := backlog(m, "bulk")
	if liveUnsent != 2 || bulkUnsent != 1 {
		t.Errorf("unsent: live %v, bulk %v; want 2, 1", liveUnsent, bulkUnsent)
	}
	const wait = 1100 * time.Millisecond
	time.Sleep(wait)
	if _, later := backlog(scrape(), "live"); later < liveAge+wait.Seconds() {
		t.Errorf("the oldest live event's age went from %.2f s to %.2f s in %s", liveAge, later, wait)
	}

	runUntilSent(t, pool, r)
	m = scrape()
	for _, lane := range []string{"live", "bulk"} {
		if unsent, age := backlog(m, lane); unsent != 0 || age != 0 {
			t.Errorf("all sent: lane %s has %v unsent, the oldest %.2f s old; want 0, 0", lane, unsent, age)
		}
	}
	if n, _ := m.Value("customerbus_relay_published_total"); n != 3 {
		t.Errorf("customerbus_relay_published_total %v, want 3", n)
	}
	if n, _ := m.Value("customerbus_relay_publish_duration_seconds"); n < 1 {
		t.Errorf("customerbus_relay_publish_duration_seconds observed %v batches, want at least 1", n)
	}
	delay := m["customerbus_relay_publish_delay_seconds"].GetMetric()[0].GetHistogram()
	if delay.GetSampleCount() != 3 || delay.GetSampleSum() < 3*wait.Seconds() {
		t.Errorf("customerbus_relay_publish_delay_seconds: %d events waited %.2f s in all; want 3, at least %.2f s",
			delay.GetSampleCount(), delay.GetSampleSum(), 3*wait.Seconds())
	}
}
