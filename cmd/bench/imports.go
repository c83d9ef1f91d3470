package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/customerbus/customerbus/db"
	"github.com/customerbus/customerbus/events"
)

// importColumns are the import case's CSV header: realistic fields, 30% of
// the rows with a default address, 20% with a bcrypt hash.
var importColumns = []string{
	"email", "first_name", "last_name", "company_name", "phone", "language_code", "is_verified",
	"metadata.source", "password_hash",
	"address.first_name", "address.last_name", "address.street_address_1", "address.city",
	"address.postal_code", "address.country",
}

// importRows writes n customers as the import's CSV, generated as it is
// sent: the file never sits in memory.
func importRows(w io.Writer, n int, hashes []string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(importColumns); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(2, 3))
	for i := range n {
		first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		row := []string{
			fmt.Sprintf("import.%d@bench.example", i), first, last, "", "+4930" + strconv.Itoa(1_000_000+r.IntN(8_999_999)),
			"en", "true", "migration", "", "", "", "", "", "", "",
		}
		if r.Float64() < 0.2 {
			row[8] = hashes[r.IntN(len(hashes))]
		}
		if r.Float64() < 0.3 {
			copy(row[9:], []string{first, last, "Main St " + strconv.Itoa(i%500+1), "Berlin", "10115", "DE"})
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// runImport imports opt.importRows customers through POST
// /v1/customers/import, until every customer.created is on JetStream, beside
// its floor: a plain COPY of as many such rows into the customers table of
// a database of its own, in the same run.
func runImport(ctx context.Context, adminURL, prefix string, opt options) error {
	apiDB, dropAPI, err := freshDatabase(ctx, adminURL, prefix+"_api")
	if err != nil {
		return err
	}
	defer dropAPI()
	baseDB, dropBase, err := freshDatabase(ctx, adminURL, prefix+"_base")
	if err != nil {
		return err
	}
	defer dropBase()
	sys, err := startSystem(ctx, apiDB, opt.dbConns, 1)
	if err != nil {
		return err
	}
	defer sys.close()

	hashes, err := importHashes()
	if err != nil {
		return err
	}
	n := opt.importRows
	fmt.Printf("import: %d customers (30%% with an address, 20%% with a bcrypt hash), CSV through the API, beside a plain COPY\n", n)

	copyTime, err := copyBaseline(ctx, baseDB, n)
	if err != nil {
		return err
	}

	// Ordinary API traffic, one client creating customers: its commit →
	// event latency alone, then while the import runs.
	alone, err := sys.measure(ctx, 1, time.Second, 3*time.Second)
	if err != nil {
		return err
	}
	type liveResult struct {
		r   apiResult
		err error
	}
	liveDone := make(chan liveResult, 1)
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(time.Second): // the import under way
		}
		r, err := sys.measure(ctx, 1, 0, 5*time.Second)
		liveDone <- liveResult{r, err}
	}()

	start := time.Now()
	uploaded, imported, err := postImport(ctx, sys, n, hashes)
	if err != nil {
		return err
	}
	live := <-liveDone
	if live.err != nil {
		return live.err
	}
	published, err := awaitPublished(ctx, sys, n+alone.created+live.r.created, start)
	if err != nil {
		return err
	}
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	fmt.Printf("  plain COPY            %8.0f rows/s  (%s)\n", rate(copyTime), copyTime.Round(time.Millisecond))
	fmt.Printf("  upload spooled        %8.0f rows/s  (%s)\n", rate(uploaded), uploaded.Round(time.Millisecond))
	fmt.Printf("  imported (committed)  %8.0f rows/s  (%s)  %.1f%% of COPY\n", rate(imported), imported.Round(time.Millisecond), 100*copyTime.Seconds()/imported.Seconds())
	fmt.Printf("  and published         %8.0f rows/s  (%s)  %.1f%% of COPY\n", rate(published), published.Round(time.Millisecond), 100*copyTime.Seconds()/published.Seconds())
	fmt.Printf("  aim: 1,000,000 imported and published in <= 60 s, >= 50%% of the COPY rate\n")
	fmt.Printf("  live creates (1 client), commit → event: alone p50 %s p99 %s (%.0f/s); during the import p50 %s p99 %s (%.0f/s, %d of %d events within %s)\n",
		ms(alone.event.p50), ms(alone.event.p99), alone.rate, ms(live.r.event.p50), ms(live.r.event.p99), live.r.rate,
		live.r.created-live.r.missing, live.r.created, eventWait)
	return nil
}

// importHashes are a few real bcrypt hashes (cost 10) for the import's rows,
// reused: making one a row would take longer than the import.
func importHashes() ([]string, error) {
	hashes := make([]string, 8)
	for i := range hashes {
		h, err := bcrypt.GenerateFromPassword([]byte("password "+strconv.Itoa(i)), bcrypt.DefaultCost)
		if err != nil {
			return nil, err
		}
		hashes[i] = string(h)
	}
	return hashes, nil
}

// postImport sends n customers as the import's CSV to POST
// /v1/customers/import and waits until its job has finished: it returns
// when the upload was spooled (the 202) and when the import committed, both
// from its start. A job that failed, or failed rows, is an error.
func postImport(ctx context.Context, sys *system, n int, hashes []string) (uploaded, imported time.Duration, err error) {
	body, w := io.Pipe()
	go func() { w.CloseWithError(importRows(w, n, hashes)) }()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sys.client.baseURL+"/v1/customers/import", body)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+sys.client.token)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return 0, 0, fmt.Errorf("import: %s: %s", resp.Status, raw)
	}
	uploaded = time.Since(start)
	var job struct{ ID string }
	if err := json.Unmarshal(raw, &job); err != nil {
		return 0, 0, err
	}
	for {
		var status string
		var failed int64
		if err := sys.pool.QueryRow(ctx, `SELECT status, rows_failed FROM import_jobs WHERE id = $1`, job.ID).Scan(&status, &failed); err != nil {
			return 0, 0, err
		}
		if status == "succeeded" || status == "failed" {
			imported = time.Since(start)
			if status != "succeeded" || failed > 0 {
				return 0, 0, fmt.Errorf("import %s: %s with %d failed rows", job.ID, status, failed)
			}
			break
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return uploaded, imported, nil
}

// awaitPublished waits until every customer.created is on the stream.
func awaitPublished(ctx context.Context, sys *system, n int, start time.Time) (time.Duration, error) {
	stream, err := sys.js.Stream(ctx, events.EventsStream)
	if err != nil {
		return 0, err
	}
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			return 0, err
		}
		if info.State.Msgs >= uint64(n) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// copyBaseline COPYs n rows like the import's (with their outbox events'
// worth of bytes left out: the floor of writing the customers alone) into a
// migrated database of its own.
func copyBaseline(ctx context.Context, url string, n int) (time.Duration, error) {
	pool, err := db.Connect(ctx, url, 2)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	if err := db.Migrate(ctx, pool); err != nil {
		return 0, err
	}
	cols := []string{"id", "email", "first_name", "last_name", "phone", "language_code", "is_verified", "has_account",
		"metadata", "version", "created_at", "updated_at", "group_ids", "password_hash"}
	r := rand.New(rand.NewPCG(2, 3))
	now := time.Now().UTC()
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		i++
		phone := "+4930" + strconv.Itoa(1_000_000+r.IntN(8_999_999))
		var hash *string
		if r.Float64() < 0.2 {
			h := "$2a$10$" + string(bytes.Repeat([]byte("x"), 53))
			hash = &h
		}
		return []any{uuid.Must(uuid.NewV7()), fmt.Sprintf("import.%d@bench.example", i), firstNames[r.IntN(len(firstNames))],
			lastNames[r.IntN(len(lastNames))], phone, "en", true, hash != nil, []byte(`{"source":"migration"}`), int64(1), now, now,
			[]uuid.UUID{}, hash}, nil
	})
	start := time.Now()
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"customers"}, cols, src); err != nil {
		return 0, fmt.Errorf("baseline copy: %w", err)
	}
	return time.Since(start), nil
}
