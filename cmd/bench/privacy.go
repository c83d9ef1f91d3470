package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db"
	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
)

// The privacy case's aims (issue 16): an erasure of a customer with 100
// events among a million customers' events on the stream in <= 1 s, a data
// export in <= 200 ms, history pages p95 <= 20 ms.
const (
	erasureAim    = time.Second
	dataExportAim = 200 * time.Millisecond
	historyAim    = 20 * time.Millisecond
)

const (
	// privacyEvents is how many events each prepared customer has: its
	// customer.created from the import and as many more through the API.
	privacyEvents = 100
	// privacyErasures customers are erased, one after the other; one more is
	// prepared the same way for the data export and the history walk. Their
	// 99 API events are made one after the other, after the import: they
	// sit together at the stream's end.
	privacyErasures = 5
	// spreadErasures more customers, created through the API before the
	// import, get their 99 events while the import is published, one per
	// 1% of it on the stream, as a customer's events spread over its life:
	// they sit in as many of the stream's blocks, which fill up.
	spreadErasures = 2
	// erasurePoll is how often the bench looks for the erasure's erased_at.
	erasurePoll = 5 * time.Millisecond
	// erasureWait is how long an erasure may take before the case fails.
	erasureWait = time.Minute
	// dataExportCalls data exports are timed, one at a time.
	dataExportCalls = 50
	// historyCustomers random customers' first history page is timed, after
	// historyWarmup others', unmeasured.
	historyCustomers = 1000
	historyWarmup    = 100
	// historyWalks times the prepared customer's history is paged through.
	historyWalks = 20
	// historyLimit is the page size of every history request.
	historyLimit = 20
)

// erasureResult is one customer's erasure.
type erasureResult struct {
	id     uuid.UUID
	spread bool // its events spread through the stream, not at its end
	// call is the anonymize request alone; erased is from sending it to the
	// bench seeing erased_at set; logged is erased_at - requested_at, as
	// the service and the relay wrote them (no polling in it).
	call, erased, logged time.Duration
	messages             int
}

// runPrivacy imports opt.privacyRows customers through the API until every
// customer.created is on the stream and in the event log, gives a few of
// them 99 more events each through the API, and times their erasure, a
// data export and history pages.
func runPrivacy(ctx context.Context, adminURL, name string, opt options) error {
	sys, dbURL, stop, err := freshSystem(ctx, adminURL, name, opt)
	if err != nil {
		return err
	}
	defer stop()
	// The bench's own SQL (polling, counts, plans) on connections of its
	// own, so it never waits for, or takes, one of the service's.
	bench, err := db.Connect(ctx, dbURL, 2)
	if err != nil {
		return err
	}
	defer bench.Close()

	n := opt.privacyRows
	if n < privacyErasures+2 {
		return fmt.Errorf("privacy: -privacy-rows must be at least %d", privacyErasures+2)
	}
	var spread []uuid.UUID
	for k := range spreadErasures {
		cl, err := sys.client.create(int64(k))
		if err != nil {
			return err
		}
		spread = append(spread, uuid.MustParse(cl.id))
	}
	if err := seedPrivacy(ctx, sys, bench, n, spread); err != nil {
		return err
	}

	// The prepared customers: spread over the import, each given 99 more
	// events through the API.
	var ids []uuid.UUID
	start := time.Now()
	for k := range privacyErasures + 1 {
		email := fmt.Sprintf("import.%d@bench.example", (k+1)*n/(privacyErasures+2))
		id, err := customerByEmail(ctx, sys.client, email)
		if err != nil {
			return err
		}
		for i := range privacyEvents - 1 {
			if err := giveEvent(ctx, sys.client, id, i); err != nil {
				return fmt.Errorf("customer %s: %w", id, err)
			}
		}
		ids = append(ids, id)
	}
	if err := awaitOutboxSent(ctx, bench); err != nil {
		return err
	}
	fmt.Printf("  %d imported customers given %d more events each, one after the other (PATCH /v1/customers/{id}, PATCH …/metadata, POST …/notes, POST …/addresses), and published in %s\n",
		len(ids), privacyEvents-1, time.Since(start).Round(time.Millisecond))
	for _, id := range append(slices.Clone(ids), spread...) {
		var logged, first, last int64
		err := bench.QueryRow(ctx, `SELECT count(*), coalesce(min(stream_seq), 0), coalesce(max(stream_seq), 0) FROM event_log
			WHERE partition_key = $1 AND stream_seq IS NOT NULL`, id.String()).Scan(&logged, &first, &last)
		if err != nil {
			return err
		}
		if logged != privacyEvents {
			fmt.Printf("WARNING!!! customer %s has %d events on the stream, want %d\n", id, logged, privacyEvents)
		}
		if slices.Contains(spread, id) {
			fmt.Printf("  customer %s, created through the API before the import, its 99 more events made while the import was published (one per 1%%): %d events on %s between sequences %d and %d\n",
				id, logged, events.EventsStream, first, last)
		}
	}
	fmt.Fprintln(os.Stderr, "privacy: customers prepared")

	erasures := make([]erasureResult, 0, privacyErasures)
	for _, id := range ids[:privacyErasures] {
		e, err := timeErasure(ctx, sys.client, bench, id)
		if err != nil {
			return err
		}
		erasures = append(erasures, e)
	}
	for _, id := range spread {
		e, err := timeErasure(ctx, sys.client, bench, id)
		if err != nil {
			return err
		}
		e.spread = true
		erasures = append(erasures, e)
	}
	fmt.Fprintln(os.Stderr, "privacy: erasures done")

	kept := ids[privacyErasures] // ~100 events, not erased
	exportLat, exportBytes, err := timeDataExports(ctx, sys.client, kept)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "privacy: data exports done")

	randomIDs, err := randomCustomers(ctx, bench, historyWarmup+historyCustomers, ids)
	if err != nil {
		return err
	}
	var historyLat []time.Duration
	type timed struct {
		id  uuid.UUID
		lat time.Duration
	}
	var historyObs []timed
	for i, id := range randomIDs {
		p, lat, err := history(ctx, sys.client, id, "")
		if err != nil {
			return err
		}
		if len(p.Entries) == 0 {
			return fmt.Errorf("history of customer %s: no entries, want its customer.created", id)
		}
		if i >= historyWarmup {
			historyLat = append(historyLat, lat)
			historyObs = append(historyObs, timed{id, lat})
		}
	}
	var pageLat []time.Duration
	for range historyWalks {
		cursor, entries := "", 0
		for {
			p, lat, err := history(ctx, sys.client, kept, cursor)
			if err != nil {
				return err
			}
			pageLat = append(pageLat, lat)
			entries += len(p.Entries)
			if p.NextCursor == nil {
				break
			}
			cursor = *p.NextCursor
		}
		if entries != privacyEvents {
			fmt.Printf("WARNING!!! the history of customer %s has %d entries, want %d\n", kept, entries, privacyEvents)
		}
	}
	pages := len(pageLat) / historyWalks
	fmt.Fprintln(os.Stderr, "privacy: history done")

	printPrivacyReport(erasures, exportLat, exportBytes, summarize(historyLat), pageLat, pages)

	if opt.explain {
		slices.SortFunc(historyObs, func(a, b timed) int { return cmp.Compare(a.lat, b.lat) })
		atP95 := historyObs[rank(0.95, len(historyObs))]
		if err := printPrivacyPlans(ctx, bench, atP95.id, kept, ids[0]); err != nil {
			return err
		}
	}
	return nil
}

// seedPrivacy imports n customers through the API and waits until the
// outbox has no unsent event: every customer.created is on the stream and
// in the event log. Meanwhile it gives each of the spread customers 99
// events, spread through the stream. Then it vacuums, as the other cases
// do after seeding.
func seedPrivacy(ctx context.Context, sys *system, bench *pgxpool.Pool, n int, spread []uuid.UUID) error {
	hashes, err := importHashes()
	if err != nil {
		return err
	}
	// Cancelled on return: after a failed import, its stream never fills.
	spreadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	spreadDone := make(chan error, 1)
	go func() { spreadDone <- spreadEvents(spreadCtx, sys, spread, n) }()
	start := time.Now()
	uploaded, imported, err := postImport(ctx, sys, n, hashes)
	if err != nil {
		return err
	}
	if err := awaitOutboxSent(ctx, bench); err != nil {
		return err
	}
	published := time.Since(start)
	if err := <-spreadDone; err != nil {
		return err
	}
	if err := awaitOutboxSent(ctx, bench); err != nil {
		return err
	}
	vacuumStart := time.Now()
	if _, err := bench.Exec(ctx, "VACUUM ANALYZE customers, outbox, event_log"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	vacuumed := time.Since(vacuumStart)
	stream, err := sys.js.Stream(ctx, events.EventsStream)
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	var logged int64
	var logSize string
	if err := bench.QueryRow(ctx, `SELECT count(*), pg_size_pretty(pg_total_relation_size('event_log')) FROM event_log`).Scan(&logged, &logSize); err != nil {
		return err
	}
	fmt.Printf("privacy: %d customers through POST /v1/customers/import; their customer.created published (no unsent outbox row) in %s "+
		"(upload %s, import committed %s), then VACUUM ANALYZE %s\n",
		n, published.Round(time.Millisecond), uploaded.Round(time.Millisecond), imported.Round(time.Millisecond), vacuumed.Round(time.Millisecond))
	fmt.Printf("  %s: %d messages, %.0f MB; event_log: %d rows, %s\n", events.EventsStream, info.State.Msgs, float64(info.State.Bytes)/1e6, logged, logSize)
	if logged < int64(n) || info.State.Msgs < uint64(n) {
		fmt.Printf("WARNING!!! %d customers imported, but %d events on the stream and %d in the event log\n", n, info.State.Msgs, logged)
	}
	fmt.Fprintln(os.Stderr, "privacy: seeded")
	return nil
}

// awaitOutboxSent waits until the outbox holds no unsent event.
func awaitOutboxSent(ctx context.Context, pool *pgxpool.Pool) error {
	for {
		var unsent bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox WHERE sent_at IS NULL)`).Scan(&unsent); err != nil {
			return err
		}
		if !unsent {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// do sends one request with a JSON body (none when body is nil) and returns
// the response body and the time from send to response read; a status other
// than want is an error.
func (c *client) do(ctx context.Context, method, path string, body any, want int) ([]byte, time.Duration, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, r)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	lat := time.Since(start)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != want {
		return nil, 0, fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, raw)
	}
	return raw, lat, nil
}

// customerByEmail finds one customer with GET /v1/customers?email=….
func customerByEmail(ctx context.Context, c *client, email string) (uuid.UUID, error) {
	page, _, err := c.list(ctx, url.Values{"email": {email}})
	if err != nil {
		return uuid.Nil, err
	}
	if len(page.Customers) != 1 {
		return uuid.Nil, fmt.Errorf("email %s: %d customers, want 1", email, len(page.Customers))
	}
	var cu struct{ ID uuid.UUID }
	if err := json.Unmarshal(page.Customers[0], &cu); err != nil {
		return uuid.Nil, err
	}
	return cu.ID, nil
}

// spreadEvents gives each customer 99 events while the import's n
// customer.created are published: event i once the stream holds (i+1)% of
// them.
func spreadEvents(ctx context.Context, sys *system, ids []uuid.UUID, n int) error {
	stream, err := awaitStream(ctx, sys.js)
	if err != nil {
		return err
	}
	for i := range privacyEvents - 1 {
		for {
			info, err := stream.Info(ctx)
			if err != nil {
				return err
			}
			if info.State.Msgs >= uint64((i+1)*n/privacyEvents) {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		for _, id := range ids {
			if err := giveEvent(ctx, sys.client, id, i); err != nil {
				return fmt.Errorf("customer %s: %w", id, err)
			}
		}
	}
	return nil
}

// giveEvent makes the customer's change number i through the API, one
// event: of every 7, 5 a new first name, 1 a metadata key and 1 a note, and
// every 25th an address instead.
func giveEvent(ctx context.Context, c *client, id uuid.UUID, i int) error {
	base := "/v1/customers/" + id.String()
	num := strconv.Itoa(i)
	var err error
	switch {
	case i%25 == 24:
		_, _, err = c.do(ctx, http.MethodPost, base+"/addresses", map[string]string{
			"first_name": "Bench", "last_name": "User", "street_address_1": "Main St " + num,
			"city": "Berlin", "postal_code": "10115", "country": "DE",
		}, http.StatusCreated)
	case i%7 == 5:
		_, _, err = c.do(ctx, http.MethodPatch, base+"/metadata", map[string]any{"set": map[string]string{"bench": num}}, http.StatusOK)
	case i%7 == 6:
		_, _, err = c.do(ctx, http.MethodPost, base+"/notes", map[string]string{"text": "bench note " + num}, http.StatusCreated)
	default:
		_, _, err = c.do(ctx, http.MethodPatch, base, map[string]string{"first_name": "Bench" + num}, http.StatusOK)
	}
	return err
}

// timeErasure anonymizes the customer and polls its erasure every
// erasurePoll until erased_at is set.
func timeErasure(ctx context.Context, c *client, bench *pgxpool.Pool, id uuid.UUID) (erasureResult, error) {
	res := erasureResult{id: id}
	start := time.Now()
	_, call, err := c.do(ctx, http.MethodPost, "/v1/customers/"+id.String()+"/anonymize", nil, http.StatusOK)
	if err != nil {
		return res, err
	}
	res.call = call
	deadline := start.Add(erasureWait)
	for {
		var requested time.Time
		var erased *time.Time
		var lastError string
		err := bench.QueryRow(ctx, `SELECT requested_at, erased_at, messages_erased, last_error FROM erasures WHERE customer_id = $1`, id).
			Scan(&requested, &erased, &res.messages, &lastError)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return res, err
		}
		if err == nil && erased != nil {
			res.erased = time.Since(start)
			res.logged = erased.Sub(requested)
			return res, nil
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("customer %s: not erased after %s (last error %q)", id, erasureWait, lastError)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(erasurePoll):
		}
	}
}

// timeDataExports GETs the customer's data export dataExportCalls times,
// one at a time, and returns their latencies and the document's size.
func timeDataExports(ctx context.Context, c *client, id uuid.UUID) ([]time.Duration, int, error) {
	var lat []time.Duration
	size := 0
	for range dataExportCalls {
		raw, d, err := c.do(ctx, http.MethodGet, "/v1/customers/"+id.String()+"/data-export", nil, http.StatusOK)
		if err != nil {
			return nil, 0, err
		}
		var doc struct{ History []json.RawMessage }
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, 0, fmt.Errorf("data export: %w", err)
		}
		if len(doc.History) != privacyEvents {
			fmt.Printf("WARNING!!! the data export of customer %s holds %d history entries, want %d\n", id, len(doc.History), privacyEvents)
		}
		lat = append(lat, d)
		size = len(raw)
	}
	return lat, size, nil
}

// randomCustomers picks n random customers, none of the prepared ones.
func randomCustomers(ctx context.Context, bench *pgxpool.Pool, n int, not []uuid.UUID) ([]uuid.UUID, error) {
	rows, err := bench.Query(ctx, `SELECT id FROM customers WHERE id <> ALL($1) ORDER BY random() LIMIT $2`, not, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

type historyPage struct {
	Entries    []json.RawMessage `json:"entries"`
	NextCursor *string           `json:"next_cursor"`
}

// history GETs one page of the customer's history and times it.
func history(ctx context.Context, c *client, id uuid.UUID, cursor string) (historyPage, time.Duration, error) {
	qs := url.Values{"limit": {strconv.Itoa(historyLimit)}}
	if cursor != "" {
		qs.Set("cursor", cursor)
	}
	raw, lat, err := c.do(ctx, http.MethodGet, "/v1/customers/"+id.String()+"/history?"+qs.Encode(), nil, http.StatusOK)
	if err != nil {
		return historyPage{}, 0, err
	}
	var p historyPage
	if err := json.Unmarshal(raw, &p); err != nil {
		return historyPage{}, 0, fmt.Errorf("history: %w", err)
	}
	return p, lat, nil
}

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}

func printPrivacyReport(erasures []erasureResult, exportLat []time.Duration, exportBytes int, hist percentiles, pageLat []time.Duration, pages int) {
	fmt.Printf("\n  erasure of a customer with %d events: POST /v1/customers/{id}/anonymize until its erasures row has erased_at (polled every %s)\n",
		privacyEvents, erasurePoll)
	fmt.Println()
	fmt.Println("| customer | its events on the stream | anonymize call | until erased (seen) | requested_at → erased_at | messages erased |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	var atEnd, spread time.Duration // the slowest of each
	few := 0
	for _, e := range erasures {
		where := "99 together at the end"
		if e.spread {
			where = "spread through it"
			spread = max(spread, e.erased)
		} else {
			atEnd = max(atEnd, e.erased)
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %d |\n", e.id, where, ms(e.call), ms(e.erased), ms(e.logged), e.messages)
		if e.messages < privacyEvents {
			few++
		}
	}
	fmt.Println()
	if few > 0 {
		fmt.Printf("WARNING!!! %d of %d erasures erased fewer than %d messages\n", few, len(erasures), privacyEvents)
	}
	worst := max(atEnd, spread)
	fmt.Printf("  aim: erasure <= %s: %s (max %s; events together at the end: max %s, spread through the stream: max %s)\n",
		erasureAim, verdict(worst <= erasureAim), ms(worst), ms(atEnd), ms(spread))

	exp := summarize(exportLat)
	fmt.Printf("  data export (GET /v1/customers/{id}/data-export, %d events, %d bytes), %d calls one at a time: p50 %s, p95 %s, max %s\n",
		privacyEvents, exportBytes, len(exportLat), ms(exp.p50), ms(exp.p95), ms(slices.Max(exportLat)))
	fmt.Printf("  aim: data export <= %s: %s (p95 %s)\n", dataExportAim, verdict(exp.p95 <= dataExportAim), ms(exp.p95))

	pg := summarize(pageLat)
	fmt.Printf("  history (GET /v1/customers/{id}/history?limit=%d), first page of %d random customers (1 event each) one at a time, after %d unmeasured: p50 %s, p95 %s, p99 %s\n",
		historyLimit, historyCustomers, historyWarmup, ms(hist.p50), ms(hist.p95), ms(hist.p99))
	fmt.Printf("  history of the customer with %d events paged through via next_cursor %d times (%d pages each): per page p50 %s, p95 %s, max %s\n",
		privacyEvents, historyWalks, pages, ms(pg.p50), ms(pg.p95), ms(slices.Max(pageLat)))
	fmt.Printf("  aim: history p95 <= %s: %s (random customers p95 %s, paging p95 %s)\n",
		historyAim, verdict(hist.p95 <= historyAim && pg.p95 <= historyAim), ms(hist.p95), ms(pg.p95))
}

// printPrivacyPlans shows EXPLAIN (ANALYZE, BUFFERS) of the history's page
// query for the random customer behind the p95 and for the first page of
// the customer with many events, and of the relay's erasure queries for an
// erased customer (its messages are erased by now: the plan, not the rows,
// is what it shows).
func printPrivacyPlans(ctx context.Context, pool *pgxpool.Pool, p95, many, erased uuid.UUID) error {
	fmt.Println("\n## Plans")
	for _, h := range []struct {
		label string
		id    uuid.UUID
	}{{"the p95 random customer", p95}, {"the customer with 100 events, first page", many}} {
		plan, err := explain(ctx, pool, func(q *gen.Queries) {
			_, _ = q.CustomerHistory(ctx, gen.CustomerHistoryParams{CustomerID: h.id.String(), Before: math.MaxInt64, RowLimit: historyLimit + 1})
		})
		if err != nil {
			return fmt.Errorf("explain history: %w", err)
		}
		fmt.Printf("\n### CustomerHistory, %s (%s)\n```\n%s\n```\n", h.label, h.id, plan)
	}
	var keys []string
	var keepFrom int64
	err := pool.QueryRow(ctx, `SELECT e.partition_keys, k.outbox_id FROM erasures e JOIN event_log k ON k.event_id = e.keep_event_id WHERE e.customer_id = $1`, erased).
		Scan(&keys, &keepFrom)
	if err != nil {
		return fmt.Errorf("erasure of %s: %w", erased, err)
	}
	plan, err := explain(ctx, pool, func(q *gen.Queries) {
		_, _ = q.MessagesToErase(ctx, gen.MessagesToEraseParams{PartitionKeys: keys, KeepFrom: keepFrom})
	})
	if err != nil {
		return fmt.Errorf("explain messages to erase: %w", err)
	}
	fmt.Printf("\n### MessagesToErase, erased customer %s\n```\n%s\n```\n", erased, plan)
	// The relay's look for erasures to do, with this one pending again, in
	// a transaction rolled back: the relay never sees it.
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `UPDATE erasures SET erased_at = NULL WHERE customer_id = $1`, erased); err != nil {
		return err
	}
	plan, err = explain(ctx, tx, func(q *gen.Queries) { _, _ = q.PendingErasures(ctx, 10) })
	if err != nil {
		return fmt.Errorf("explain pending erasures: %w", err)
	}
	fmt.Printf("\n### PendingErasures, with the erasure of %s pending (in a transaction rolled back)\n```\n%s\n```\n", erased, plan)
	return nil
}
