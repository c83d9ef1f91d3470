package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// exportRounds is how many times each export (and the COPY) runs, interleaved:
// the machine is shared and noisy, one run alone says little.
const exportRounds = 2

// memorySampleEvery is how often the export case samples RSS and the heap.
const memorySampleEvery = 20 * time.Millisecond

// exportCopySQL is the floor of an export: the export's default columns, in
// its default order (newest first), straight out of PostgreSQL.
const exportCopySQL = `COPY (SELECT id, email, first_name, last_name, company_name, phone, note, is_active,
	language_code, external_reference, is_verified, created_at, metadata
	FROM customers ORDER BY created_at DESC, id DESC) TO STDOUT`

// exportFormat is one kind of export the case measures.
type exportFormat struct {
	name, query    string
	csv, addresses bool
}

var (
	ndjsonExport    = exportFormat{name: "ndjson", query: "format=ndjson"}
	csvExport       = exportFormat{name: "csv", query: "format=csv", csv: true}
	addressesExport = exportFormat{name: "ndjson, include=addresses", query: "format=ndjson&include=addresses", addresses: true}
)

// runExport seeds a database of its own with opt.exportRows customers, then
// reads GET /v1/customers/export to the end as NDJSON and as CSV, beside a
// plain COPY of the same rows, with the memory each run takes.
func runExport(ctx context.Context, adminURL, name string, opt options) error {
	// Checked once here, so the sampler need not handle a missing /proc.
	if _, err := readRSS(); err != nil {
		return fmt.Errorf("export: the RSS comes from /proc/self/status: %w", err)
	}
	sys, dbURL, stop, err := freshSystem(ctx, adminURL, name, opt)
	if err != nil {
		return err
	}
	defer stop()

	n := opt.exportRows
	start := time.Now()
	if err := seedExport(ctx, sys.pool, n); err != nil {
		return err
	}
	// Hint bits set and statistics taken now, so the first measured run
	// does not pay for them and the pages are planned as on a live table.
	if _, err := sys.pool.Exec(ctx, "VACUUM ANALYZE customers, customer_addresses"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	var withAddress, withMetadata, addresses int
	err = sys.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM customers WHERE default_shipping_address_id IS NOT NULL),
		(SELECT count(*) FROM customers WHERE metadata <> '{}'),
		(SELECT count(*) FROM customer_addresses)`).Scan(&withAddress, &withMetadata, &addresses)
	if err != nil {
		return err
	}
	fmt.Printf("export: %d customers (%d with an address, %d addresses in all; %d with metadata) seeded by COPY and vacuumed in %s\n",
		n, withAddress, addresses, withMetadata, time.Since(start).Round(time.Second))
	fmt.Printf("GET /v1/customers/export read to the end, beside a plain COPY TO STDOUT of the same columns in the same order; each run %d times, interleaved\n", exportRounds)
	fmt.Printf("RSS: the bench process's (service and client) peak during the run minus just before; heap: its peak of live Go heap objects; both sampled every %s\n", memorySampleEvery)

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var copies []exportRun
	runs := map[string][]exportRun{}
	for round := range exportRounds {
		c, err := copyExport(ctx, conn)
		if err != nil {
			return err
		}
		copies = append(copies, c)
		for _, f := range []exportFormat{ndjsonExport, csvExport} {
			r, err := export(ctx, sys.client, f)
			if err != nil {
				return fmt.Errorf("export %s: %w", f.name, err)
			}
			runs[f.name] = append(runs[f.name], r)
		}
		fmt.Fprintf(os.Stderr, "export: round %d done\n", round+1)
	}
	// Once: it is the NDJSON export with one more query per page.
	r, err := export(ctx, sys.client, addressesExport)
	if err != nil {
		return fmt.Errorf("export %s: %w", addressesExport.name, err)
	}
	runs[addressesExport.name] = []exportRun{r}

	floor := slices.MinFunc(copies, func(a, b exportRun) int { return cmp.Compare(a.elapsed, b.elapsed) }).elapsed
	var warnings []string
	printRuns := func(name string, rs []exportRun) {
		for i, r := range rs {
			printExportRun(fmt.Sprintf("%s, run %d", name, i+1), r, n, floor)
			for _, p := range r.check(n, withAddress) {
				warnings = append(warnings, fmt.Sprintf("%s, run %d: %s", name, i+1, p))
			}
		}
	}
	fmt.Println()
	printRuns("plain COPY", copies)
	for _, f := range []exportFormat{ndjsonExport, csvExport, addressesExport} {
		printRuns(f.name, runs[f.name])
	}
	fmt.Printf("  (× COPY: the run's time over the faster COPY's)\n")
	for _, w := range warnings {
		fmt.Printf("WARNING!!! export %s\n", w)
	}
	fmt.Printf("  aim: 1,000,000 exported in <= 10 s per format, flat memory\n")
	return nil
}

func printExportRun(label string, r exportRun, n int, floor time.Duration) {
	const mib = 1 << 20
	secs := r.elapsed.Seconds()
	fmt.Printf("  %-33s %8.0f rows/s %6.1f MB/s %7.2f s %5.0f MB  %5.2f× COPY  first byte %9s  RSS %+6.1f MiB  heap peak %5.1f MiB (%.1f before)\n",
		label, float64(n)/secs, float64(r.bytes)/1e6/secs, secs, float64(r.bytes)/1e6, secs/floor.Seconds(),
		ms(r.firstByte), float64(r.rssGrowth)/mib, float64(r.heapPeak)/mib, float64(r.heapBefore)/mib)
}

// exportRun is one export read to the end, or one COPY.
type exportRun struct {
	format exportFormat
	measured
	firstByte time.Duration
	bytes     int64

	// What the file held, and its trailers; a COPY sets only rows.
	rows, lines, withAddress int
	firstLineOK, endsMidLine bool
	trailerRows, complete    string
	copied                   bool
}

// check lists what is wrong with the run's file: an export must be whole,
// and say so in its trailers.
func (r exportRun) check(n, withAddress int) []string {
	if r.copied {
		if r.rows != n {
			return []string{fmt.Sprintf("COPY gave %d rows, want %d", r.rows, n)}
		}
		return nil
	}
	var out []string
	want, first := n, "a JSON object"
	if r.format.csv {
		want, first = n+1, "the header" // CSV: the header, then a line per customer
	}
	if r.lines != want {
		out = append(out, fmt.Sprintf("%d lines, want %d", r.lines, want))
	}
	if !r.firstLineOK {
		out = append(out, "the first line is not "+first)
	}
	if r.endsMidLine {
		out = append(out, "the file ends in the middle of a line")
	}
	if r.trailerRows != strconv.Itoa(n) || r.complete != "true" {
		out = append(out, fmt.Sprintf("trailers X-Export-Rows %q and X-Export-Complete %q, want %q and \"true\"", r.trailerRows, r.complete, strconv.Itoa(n)))
	}
	if r.format.addresses && r.withAddress != withAddress {
		out = append(out, fmt.Sprintf("%d customers with addresses, want %d", r.withAddress, withAddress))
	}
	return out
}

// addressesMarker starts the addresses of an NDJSON line that has some.
var addressesMarker = []byte(`"addresses":[{`)

// export GETs one export and reads it to the end, line by line, as a client
// saving the file would: nothing of it is kept.
func export(ctx context.Context, c *client, f exportFormat) (exportRun, error) {
	run := exportRun{format: f}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/v1/customers/export?"+f.query, nil)
	if err != nil {
		return run, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	run.measured, err = measureMemory(func(start time.Time) error {
		// Not c.http: its 30 s timeout is for calls, not for files.
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		run.firstByte = time.Since(start)
		if resp.StatusCode != http.StatusOK {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			return fmt.Errorf("%s: %s", resp.Status, body.Bytes())
		}
		br := bufio.NewReaderSize(resp.Body, 1<<20)
		for {
			line, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				return errors.New("a line longer than 1 MiB")
			}
			run.bytes += int64(len(line))
			if len(line) > 0 && line[len(line)-1] != '\n' {
				run.endsMidLine = true
			} else if len(line) > 0 {
				if run.lines == 0 {
					run.firstLineOK = firstLineOK(f, line)
				}
				run.lines++
				if f.addresses && bytes.Contains(line, addressesMarker) {
					run.withAddress++
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return fmt.Errorf("read after %d lines: %w", run.lines, err)
			}
		}
		// The trailers are there once the body has been read to its end.
		run.trailerRows, run.complete = resp.Trailer.Get("X-Export-Rows"), resp.Trailer.Get("X-Export-Complete")
		return nil
	})
	return run, err
}

func firstLineOK(f exportFormat, line []byte) bool {
	if f.csv {
		return strings.HasPrefix(string(line), "id,email,") && bytes.HasSuffix(line, []byte("\r\n"))
	}
	var v struct{ ID uuid.UUID }
	return json.Unmarshal(line, &v) == nil && v.ID != uuid.Nil
}

// copyExport runs the COPY floor into a counter of its bytes.
func copyExport(ctx context.Context, conn *pgx.Conn) (exportRun, error) {
	run := exportRun{copied: true}
	var err error
	run.measured, err = measureMemory(func(start time.Time) error {
		w := &countingWriter{start: start}
		tag, err := conn.PgConn().CopyTo(ctx, w, exportCopySQL)
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		run.rows, run.bytes, run.firstByte = int(tag.RowsAffected()), w.n, w.firstByte
		return nil
	})
	return run, err
}

// countingWriter discards what it is given, counting it, and notes when the
// first bytes came.
type countingWriter struct {
	start     time.Time
	firstByte time.Duration
	n         int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		w.firstByte = time.Since(w.start)
	}
	w.n += int64(len(p))
	return len(p), nil
}

// measured is a run's time and the memory it took.
type measured struct {
	elapsed              time.Duration
	rssGrowth            int64 // peak RSS during the run minus RSS just before
	heapBefore, heapPeak uint64
}

// measureMemory times fn while a goroutine samples the process's RSS and Go
// heap. VmHWM, the kernel's own peak, cannot be reset between runs, hence
// the sampling: a peak shorter than memorySampleEvery can be missed.
func measureMemory(fn func(start time.Time) error) (measured, error) {
	// A GC that hands free memory back to the OS first, so "before" is the
	// floor, not what the previous run left behind.
	debug.FreeOSMemory()
	rssBefore, _ := readRSS()
	m := measured{heapBefore: heapBytes()}
	peakRSS, peakHeap := rssBefore, m.heapBefore
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		sample := func() {
			if rss, err := readRSS(); err == nil {
				peakRSS = max(peakRSS, rss)
			}
			peakHeap = max(peakHeap, heapBytes())
		}
		tick := time.NewTicker(memorySampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				sample()
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	start := time.Now()
	err := fn(start)
	m.elapsed = time.Since(start)
	close(stop)
	<-done
	m.rssGrowth, m.heapPeak = int64(peakRSS)-int64(rssBefore), peakHeap
	return m, err
}

// readRSS is the process's resident set in bytes, from /proc/self/status.
func readRSS() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}

// heapBytes is the memory of live and not yet swept heap objects (the
// HeapAlloc of runtime.ReadMemStats, without stopping the world).
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// exportSeedColumns are the seed's columns and the customer's default
// addresses, which a CSV export reads.
var exportSeedColumns = append(slices.Clone(seedColumns), "default_shipping_address_id", "default_billing_address_id")

var addressSeedColumns = []string{
	"id", "customer_id", "first_name", "last_name", "company_name", "street_address_1", "street_address_2",
	"city", "postal_code", "country", "phone", "created_at", "updated_at",
}

// Where the seeder's rows hold what an address takes from its customer.
var (
	seedIDCol      = slices.Index(seedColumns, "id")
	seedFirstCol   = slices.Index(seedColumns, "first_name")
	seedLastCol    = slices.Index(seedColumns, "last_name")
	seedCompanyCol = slices.Index(seedColumns, "company_name")
	seedPhoneCol   = slices.Index(seedColumns, "phone")
	seedCreatedCol = slices.Index(seedColumns, "created_at")
)

// places are where the seeded addresses are.
var places = []struct{ country, city, postal, street string }{
	{"DE", "Berlin", "10115", "Hauptstraße"}, {"DE", "München", "80331", "Leopoldstraße"},
	{"GB", "London", "SW1A 1AA", "High Street"}, {"US", "New York", "10001", "Main Street"},
	{"FR", "Paris", "75001", "Rue de Rivoli"}, {"ES", "Madrid", "28001", "Calle Mayor"},
	{"PL", "Warszawa", "00-001", "ulica Długa"}, {"SE", "Stockholm", "111 22", "Storgatan"},
}

// seedExport COPYs n of the search case's customers, without their orders
// (an export reads none), 30% of them with a default address, a fifth of
// those with a second one for billing.
func seedExport(ctx context.Context, pool *pgxpool.Pool, n int) error {
	groups, err := seedGroups(ctx, pool)
	if err != nil {
		return err
	}
	s := newSeeder(n, groups)
	s.noOrders = true
	a := &addressSeeder{rng: rand.New(rand.NewPCG(7, 8))}
	for s.next < s.total {
		src := &addressedBatch{batch: batch{s: s, left: min(seedBatch, s.total-s.next)}, a: a}
		// One transaction: the customers name their default addresses before
		// the addresses exist, which the deferred keys allow until commit.
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"customers"}, exportSeedColumns, src); err != nil {
				return fmt.Errorf("seed: copy customers: %w", err)
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"customer_addresses"}, addressSeedColumns, pgx.CopyFromRows(a.rows)); err != nil {
				return fmt.Errorf("seed: copy addresses: %w", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		a.rows = a.rows[:0]
		fmt.Fprintf(os.Stderr, "seeded %d/%d customers\n", s.next, s.total)
	}
	return nil
}

// addressedBatch is the seeder's batch with each customer's default
// addresses added to its row.
type addressedBatch struct {
	batch
	a *addressSeeder
}

func (b *addressedBatch) Next() bool {
	if !b.batch.Next() {
		return false
	}
	shipping, billing := b.a.addresses(b.row)
	b.row = append(b.row, shipping, billing)
	return true
}

// addressSeeder makes the customers' addresses, from a generator of its own
// so the customers are the search case's.
type addressSeeder struct {
	rng  *rand.Rand
	rows [][]any // the current batch's addresses, in addressSeedColumns order
}

// addresses gives the customer of row its addresses, and returns its default
// shipping and billing address ids (nil, nil without one).
func (a *addressSeeder) addresses(row []any) (shipping, billing any) {
	r := a.rng
	if r.Float64() >= 0.30 {
		return nil, nil
	}
	created := row[seedCreatedCol].(time.Time)
	home := a.add(row, "", created)
	if r.Float64() >= 0.20 {
		return home, home
	}
	return home, a.add(row, row[seedCompanyCol].(string), created.Add(time.Hour))
}

func (a *addressSeeder) add(row []any, company string, created time.Time) uuid.UUID {
	r := a.rng
	p := places[r.IntN(len(places))]
	id := uuidV7(created, r)
	second := ""
	if r.Float64() < 0.15 {
		second = "Apt " + strconv.Itoa(1+r.IntN(40))
	}
	a.rows = append(a.rows, []any{
		id, row[seedIDCol], row[seedFirstCol], row[seedLastCol], company,
		p.street + " " + strconv.Itoa(1+r.IntN(200)), second, p.city, p.postal, p.country,
		row[seedPhoneCol], created, created,
	})
	return id
}
