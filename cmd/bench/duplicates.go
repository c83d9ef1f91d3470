package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Aims of the duplicates case, at a million customers.
const (
	aimDuplicatesP95 = 50 * time.Millisecond  // one customer's duplicates
	aimPairsPage     = 200 * time.Millisecond // a page of the global list
)

// duplicateTwins is how many seeded customers get a twin: another customer
// with a +tag variant of the email, the same phone and name.
const duplicateTwins = 10_000

// runDuplicates seeds -search-rows customers as the search case does (its
// companies and phones make natural duplicates too), gives duplicateTwins
// of them a twin, then times GET /v1/customers/{id}/duplicates for 1000
// random customers (half of them twins), the build of every pair, and 50
// pages of GET /v1/customer-duplicates walked with their cursors.
func runDuplicates(ctx context.Context, adminURL, name string, opt options) error {
	sys, _, drop, err := seededSystem(ctx, adminURL, name, opt, "duplicates")
	if err != nil {
		return err
	}
	defer drop()
	defer sys.close()

	// The twins go at the end, so a kept -search-db is as the search case
	// seeds it.
	defer func() {
		if _, err := sys.pool.Exec(context.WithoutCancel(ctx), `DELETE FROM customers WHERE email LIKE '%+twin@%'`); err != nil {
			fmt.Printf("duplicates: the twins stay: %v\n", err)
		}
	}()
	start := time.Now()
	tag, err := sys.pool.Exec(ctx, `
		INSERT INTO customers (id, email, first_name, last_name, company_name, phone, is_active, language_code,
		                       metadata, has_account, is_verified, version, created_at, updated_at)
		SELECT gen_random_uuid(), split_part(email, '@', 1) || '+twin@' || split_part(email, '@', 2),
		       first_name, last_name, company_name, phone, true, language_code, '{}', false, false, 1, now(), now()
		FROM customers WHERE email NOT LIKE '%+twin@%' ORDER BY id LIMIT $1
		ON CONFLICT DO NOTHING`, duplicateTwins)
	if err != nil {
		return fmt.Errorf("seed twins: %w", err)
	}
	if _, err := sys.pool.Exec(ctx, "ANALYZE customers"); err != nil {
		return err
	}
	fmt.Printf("duplicates: %d twins added in %s\n", tag.RowsAffected(), time.Since(start).Round(time.Millisecond))
	// Seeded without events, the pairs are built as after a restore.
	start = time.Now()
	if ran, err := sys.svc.RebuildDuplicates(ctx); err != nil || !ran {
		return fmt.Errorf("build the pairs: %v (ran: %v)", err, ran)
	}
	var pairsBuilt int
	if err := sys.pool.QueryRow(ctx, "SELECT count(*) FROM duplicate_pairs").Scan(&pairsBuilt); err != nil {
		return err
	}
	fmt.Printf("  every pair built (customerbus duplicates rebuild): %d pairs in %s\n", pairsBuilt, time.Since(start).Round(time.Millisecond))

	var ids []uuid.UUID
	rows, err := sys.pool.Query(ctx, `
		(SELECT id FROM customers WHERE email LIKE '%+twin@%' ORDER BY random() LIMIT 500)
		UNION ALL (SELECT id FROM customers TABLESAMPLE SYSTEM (1) WHERE email NOT LIKE '%+twin@%' LIMIT 500)`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return err
	}

	var lat []time.Duration
	var found, maxFound int
	for _, id := range ids {
		body, d, err := sys.client.do(ctx, http.MethodGet, "/v1/customers/"+id.String()+"/duplicates", nil, http.StatusOK)
		if err != nil {
			return err
		}
		var page struct {
			Duplicates []json.RawMessage `json:"duplicates"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return err
		}
		found += len(page.Duplicates)
		maxFound = max(maxFound, len(page.Duplicates))
		lat = append(lat, d)
	}
	p := summarize(lat)
	fmt.Printf("  one customer's duplicates (GET /v1/customers/{id}/duplicates), %d customers (half of them twins) one at a time: p50 %s, p95 %s, p99 %s; %.1f found on average, at most %d\n",
		len(ids), ms(p.p50), ms(p.p95), ms(p.p99), float64(found)/float64(len(ids)), maxFound)
	fmt.Printf("  aim: p95 <= %s: %s\n", aimDuplicatesP95, verdict(p.p95 <= aimDuplicatesP95))

	var pages []time.Duration
	var pairs int
	cursor := ""
	for range 50 {
		qs := url.Values{"limit": {"20"}}
		if cursor != "" {
			qs.Set("cursor", cursor)
		}
		body, d, err := sys.client.do(ctx, http.MethodGet, "/v1/customer-duplicates?"+qs.Encode(), nil, http.StatusOK)
		if err != nil {
			return err
		}
		var page struct {
			Pairs      []json.RawMessage `json:"pairs"`
			NextCursor *string           `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return err
		}
		pages = append(pages, d)
		pairs += len(page.Pairs)
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	pp := summarize(pages)
	fmt.Printf("  the global list (GET /v1/customer-duplicates?limit=20), %d pages walked by cursor, %d pairs: per page p50 %s, p95 %s, max %s\n",
		len(pages), pairs, ms(pp.p50), ms(pp.p95), ms(slices.Max(pages)))
	fmt.Printf("  aim: a page <= %s: %s\n", aimPairsPage, verdict(slices.Max(pages) <= aimPairsPage))
	return nil
}
