package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db/gen"
)

// searchWarmup queries of each kind run unmeasured first, so the measured
// ones find in memory what a busy service would have there.
const searchWarmup = 100

// searchAim is the target: p95 of every kind at or under 20 ms.
const searchAim = 20 * time.Millisecond

// pageSize is the limit every search query asks for.
const pageSize = 20

// apiCountLimit is the API's default count_limit: the list counts at most
// this many matches, and says "at_least" when more match.
const apiCountLimit = 1000

// listArgs are the list parameters of one query. One value builds both the
// HTTP request and, for the plans, the parameters of the SQL the service runs.
type listArgs struct {
	q                           string
	isActive, hasAccount        *bool
	createdAfter, createdBefore *time.Time
	tier                        string // metadata[tier]
	attrs                       []attrFilter
	groupID                     *uuid.UUID
	ordersMin, ordersMax        *int       // number_of_orders_min, _max
	placedAfter, placedBefore   *time.Time // placed_orders_after, _before
	order                       string     // the API's default (-created_at) when empty
	noCount                     bool
	cursor                      string
	page                        int // how many pages precede this one
}

func (a listArgs) values() url.Values {
	v := url.Values{"limit": {strconv.Itoa(pageSize)}}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("q", a.q)
	set("metadata[tier]", a.tier)
	for _, f := range a.attrs {
		set("attributes["+f.key+"]", f.eq)
		set("attributes["+f.key+"][gte]", f.gte)
		set("attributes["+f.key+"][lte]", f.lte)
	}
	set("cursor", a.cursor)
	set("order", a.order)
	if a.groupID != nil {
		v.Set("group_id", a.groupID.String())
	}
	for k, b := range map[string]*bool{"is_active": a.isActive, "has_account": a.hasAccount} {
		if b != nil {
			v.Set(k, strconv.FormatBool(*b))
		}
	}
	for k, n := range map[string]*int{"number_of_orders_min": a.ordersMin, "number_of_orders_max": a.ordersMax} {
		if n != nil {
			v.Set(k, strconv.Itoa(*n))
		}
	}
	for k, t := range map[string]*time.Time{
		"created_after": a.createdAfter, "created_before": a.createdBefore,
		"placed_orders_after": a.placedAfter, "placed_orders_before": a.placedBefore,
	} {
		if t != nil {
			v.Set(k, t.Format(time.RFC3339))
		}
	}
	if a.noCount {
		v.Set("count", "false")
	}
	return v
}

// String is the query string without the cursor, which says nothing to a reader.
func (a listArgs) String() string {
	v := a.values()
	v.Del("cursor")
	s, _ := url.QueryUnescape(v.Encode())
	if a.page > 0 {
		s += fmt.Sprintf(" (page %d, via next_cursor)", a.page+1)
	}
	return s
}

// attrFilter is one filter on an attribute the bench defines (see
// defineBenchAttributes): its query values, "" when not given, and how
// the service binds them (text, num or date).
type attrFilter struct {
	key, kind    string
	eq, gte, lte string
}

// benchAttributes are the attributes the search case defines, all
// indexed, with the values seedAttributes gives every customer.
var benchAttributes = []map[string]any{
	{"key": "dob", "label": "Date of birth", "type": "date", "indexed": true},
	{"key": "points", "label": "Points", "type": "integer", "min": 0, "indexed": true},
	{"key": "tier", "label": "Tier", "type": "enum", "values": []string{"bronze", "silver", "gold", "platinum"}, "indexed": true},
}

// defineBenchAttributes defines the bench's attributes through the API
// before the seed, as a store defines them before its customers get values.
func defineBenchAttributes(ctx context.Context, sys *system) error {
	for _, d := range benchAttributes {
		if _, _, err := sys.client.do(ctx, http.MethodPost, "/v1/settings/customer-attributes", d, http.StatusCreated); err != nil {
			return fmt.Errorf("define attribute %s: %w", d["key"], err)
		}
	}
	return nil
}

// indexSeededAttributes fills the tables of indexed attribute values
// for the seeded customers, which COPY wrote without it, through the
// store's own query; an attribute indexed already (a kept database) is
// left as it is.
func indexSeededAttributes(ctx context.Context, pool *pgxpool.Pool) error {
	start := time.Now()
	q := gen.New(pool)
	for _, d := range benchAttributes {
		key := d["key"].(string)
		var n int64
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM customer_attribute_texts WHERE key = $1)
			+ (SELECT count(*) FROM customer_attribute_numbers WHERE key = $1) + (SELECT count(*) FROM customer_attribute_times WHERE key = $1)`, key).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if err := q.IndexAttributeValues(ctx, gen.IndexAttributeValuesParams{Key: &key}); err != nil {
			return fmt.Errorf("index attribute %s: %w", key, err)
		}
	}
	fmt.Printf("seeded attribute values indexed in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// searchKind is one kind of list query, measured on its own.
type searchKind struct {
	name string
	args func(r *rand.Rand) listArgs
	walk bool // each query asks for the page after the previous one's
}

func searchKinds(samples []sample, groups seededGroups) []searchKind {
	yes, no := true, false
	ten, zero := 10, 0
	// month is a random 1-month window inside the seeded years.
	month := func(r *rand.Rand) (from, to time.Time) {
		from = seedStart.Add(time.Duration(r.Int64N(int64(seedEnd.AddDate(0, -1, 0).Sub(seedStart)))))
		return from, from.AddDate(0, 1, 0)
	}
	pick := func(r *rand.Rand) sample { return samples[r.IntN(len(samples))] }
	lastName := func(r *rand.Rand) string {
		s := substring(r, pick(r).lastName)
		if r.IntN(2) == 0 {
			s = strings.ToLower(asciiFold.Replace(s)) // as people type it
		}
		return s
	}
	return []searchKind{
		{name: "q: last-name substring", args: func(r *rand.Rand) listArgs { return listArgs{q: lastName(r)} }},
		{name: "q: last-name substring, count=false", args: func(r *rand.Rand) listArgs { return listArgs{q: lastName(r), noCount: true} }},
		{name: "q: email local-part substring", args: func(r *rand.Rand) listArgs { return listArgs{q: substring(r, pick(r).emailLocal)} }},
		{name: "q: last-name substring & has_account=true", args: func(r *rand.Rand) listArgs { return listArgs{q: lastName(r), hasAccount: &yes} }},
		{name: "is_active=false & has_account=true", args: func(*rand.Rand) listArgs { return listArgs{isActive: &no, hasAccount: &yes} }},
		{name: "created in a 1-month window", args: func(r *rand.Rand) listArgs {
			from, to := month(r)
			return listArgs{createdAfter: &from, createdBefore: &to}
		}},
		{name: "metadata[tier]=gold", args: func(*rand.Rand) listArgs { return listArgs{tier: "gold"} }},
		{name: "attributes[tier]=gold (9%)", args: func(*rand.Rand) listArgs {
			return listArgs{attrs: []attrFilter{{key: "tier", kind: "text", eq: "gold"}}}
		}},
		{name: "attributes[tier]=platinum (1%)", args: func(*rand.Rand) listArgs {
			return listArgs{attrs: []attrFilter{{key: "tier", kind: "text", eq: "platinum"}}}
		}},
		{name: "attributes[points] in a range of 1% (gte & lte)", args: func(r *rand.Rand) listArgs {
			lo := r.IntN(9_900)
			return listArgs{attrs: []attrFilter{{key: "points", kind: "num", gte: strconv.Itoa(lo), lte: strconv.Itoa(lo + 99)}}}
		}},
		{name: "attributes[points][gte] of half the customers", args: func(*rand.Rand) listArgs {
			return listArgs{attrs: []attrFilter{{key: "points", kind: "num", gte: "5000"}}}
		}},
		{name: "attributes[dob] in a 1-year range (gte & lte)", args: func(r *rand.Rand) listArgs {
			from := seedBirthStart.AddDate(r.IntN(54), 0, 0)
			return listArgs{attrs: []attrFilter{{key: "dob", kind: "date", gte: from.Format(time.DateOnly), lte: from.AddDate(1, 0, -1).Format(time.DateOnly)}}}
		}},
		{name: "attributes[points][gte] (10%) & attributes[tier]=gold", args: func(*rand.Rand) listArgs {
			return listArgs{attrs: []attrFilter{{key: "points", kind: "num", gte: "9000"}, {key: "tier", kind: "text", eq: "gold"}}}
		}},
		{name: "attributes[points][gte] (10%) & attributes[tier]=gold, count=false", args: func(*rand.Rand) listArgs {
			return listArgs{attrs: []attrFilter{{key: "points", kind: "num", gte: "9000"}, {key: "tier", kind: "text", eq: "gold"}}, noCount: true}
		}},
		{name: "group_id of a group of 10% of customers", args: func(*rand.Rand) listArgs { return listArgs{groupID: &groups.large} }},
		{name: "group_id of a group of 0.1% of customers", args: func(*rand.Rand) listArgs { return listArgs{groupID: &groups.small} }},
		{name: "unfiltered, first page", args: func(*rand.Rand) listArgs { return listArgs{} }},
		{name: "unfiltered, first page, count=false", args: func(*rand.Rand) listArgs { return listArgs{noCount: true} }},
		{name: "unfiltered, next pages via next_cursor", args: func(*rand.Rand) listArgs { return listArgs{} }, walk: true},
		{name: "number_of_orders_min=10", args: func(*rand.Rand) listArgs { return listArgs{ordersMin: &ten} }},
		{name: "number_of_orders_max=0, order=-created_at", args: func(*rand.Rand) listArgs {
			return listArgs{ordersMax: &zero, order: "-created_at"}
		}},
		{name: "order=-number_of_orders, first page", args: func(*rand.Rand) listArgs { return listArgs{order: "-number_of_orders"} }},
		{name: "order=-number_of_orders, next pages via next_cursor", args: func(*rand.Rand) listArgs {
			return listArgs{order: "-number_of_orders"}
		}, walk: true},
		{name: "placed_orders_after the start of a 1-month window", args: func(r *rand.Rand) listArgs {
			from, _ := month(r)
			return listArgs{placedAfter: &from}
		}},
		{name: "placed orders in a 1-month window (after & before)", args: func(r *rand.Rand) listArgs {
			from, to := month(r)
			return listArgs{placedAfter: &from, placedBefore: &to}
		}},
		{name: "placed_orders_before a date in the first 3 months", args: func(r *rand.Rand) listArgs {
			at := seedStart.Add(time.Duration(r.Int64N(int64(seedStart.AddDate(0, 3, 0).Sub(seedStart)))))
			return listArgs{placedBefore: &at}
		}},
	}
}

// substring is 4 to 6 consecutive letters of s (all of s when shorter).
func substring(r *rand.Rand, s string) string {
	rs := []rune(s)
	n := min(4+r.IntN(3), len(rs))
	i := r.IntN(len(rs) - n + 1)
	return string(rs[i : i+n])
}

type kindResult struct {
	kind    searchKind
	lat     percentiles
	matched string   // median count, "—" when not counted
	atLeast int      // queries whose count was capped at the count limit
	empty   int      // queries that found nothing
	atP95   listArgs // the query whose latency was the p95, for its plan
}

// measureKind runs the warm-up and then n measured queries of one kind, one at
// a time: the latency a single user sees, not a throughput.
func measureKind(ctx context.Context, c *client, k searchKind, r *rand.Rand, n int) (kindResult, error) {
	type obs struct {
		args    listArgs
		lat     time.Duration
		count   *int64
		atLeast bool
		found   int
	}
	var all []obs
	var next listArgs // the walk's position
	for i := range searchWarmup + n {
		a := k.args(r)
		if k.walk {
			a.cursor, a.page = next.cursor, next.page
		}
		p, lat, err := c.list(ctx, a.values())
		if err != nil {
			return kindResult{}, err
		}
		if k.walk {
			next = listArgs{} // after the last page, start again
			if p.NextCursor != nil {
				next = listArgs{cursor: *p.NextCursor, page: a.page + 1}
			}
		}
		if i >= searchWarmup {
			atLeast := p.CountPrecision != nil && *p.CountPrecision == "at_least"
			all = append(all, obs{args: a, lat: lat, count: p.Count, atLeast: atLeast, found: len(p.Customers)})
		}
	}
	slices.SortFunc(all, func(a, b obs) int { return cmp.Compare(a.lat, b.lat) })
	res := kindResult{kind: k, matched: "—", atP95: all[rank(0.95, len(all))].args}
	lat := make([]time.Duration, len(all))
	var counts []int64
	for i, o := range all {
		lat[i] = o.lat
		if o.count != nil {
			counts = append(counts, *o.count)
		}
		if o.found == 0 {
			res.empty++
		}
		if o.atLeast {
			res.atLeast++
		}
	}
	res.lat = summarize(lat)
	if len(counts) > 0 {
		slices.Sort(counts)
		res.matched = strconv.FormatInt(counts[rank(0.5, len(counts))], 10)
	}
	return res, nil
}

func printSearchReport(results []kindResult, queries int) {
	fmt.Printf("%d queries per kind, one at a time, after %d unmeasured; limit=%d; counted as the API defaults (count=true, count_limit=%d) unless count=false\n\n",
		queries, searchWarmup, pageSize, apiCountLimit)
	fmt.Println("| kind | p50 | p95 | p99 | matched (median count) | counts capped at the limit | queries finding nothing |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	var over []string
	for _, r := range results {
		fmt.Printf("| %s | %s | %s | %s | %s | %d | %d |\n", r.kind.name, ms(r.lat.p50), ms(r.lat.p95), ms(r.lat.p99), r.matched, r.atLeast, r.empty)
		if r.lat.p95 > searchAim {
			over = append(over, r.kind.name)
		}
	}
	fmt.Println()
	label := fmt.Sprintf("aim: p95 <= %s for every kind", ms(searchAim))
	if len(over) == 0 {
		fmt.Printf("%s: MET\n", label)
		return
	}
	fmt.Printf("%s: NOT MET (%s)\n", label, strings.Join(over, "; "))
}

// runSearch seeds a database of its own with opt.searchRows customers by COPY,
// then times list queries of each kind through the service's HTTP API.
func runSearch(ctx context.Context, adminURL, name string, opt options) error {
	sys, sd, drop, err := seededSystem(ctx, adminURL, name, opt, "search")
	if err != nil {
		return err
	}
	defer drop()
	defer sys.close()

	r := rand.New(rand.NewPCG(3, 4))
	var results []kindResult
	for _, k := range searchKinds(sd.samples, sd.groups) {
		res, err := measureKind(ctx, sys.client, k, r, opt.searchQueries)
		if err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
		results = append(results, res)
		fmt.Fprintf(os.Stderr, "%s done\n", k.name)
	}
	printSearchReport(results, opt.searchQueries)
	if opt.explain {
		if err := printPlans(ctx, sys.pool, results); err != nil {
			return err
		}
	}
	return printCreatesAtSize(ctx, sys, opt)
}

// printCreatesAtSize creates customers over HTTP at aimConcurrency on the
// seeded tables, their indexes as large as the seed made them, side by side
// with the baseline's two INSERTs on the same tables; then it deletes what
// both created, so that a kept database can be used again.
func printCreatesAtSize(ctx context.Context, sys *system, opt options) error {
	ours, err := sys.measure(ctx, aimConcurrency, opt.warmup, opt.duration)
	if err != nil {
		return fmt.Errorf("creates at size: %w", err)
	}
	base, err := (&baseline{pool: sys.pool, sent: true}).measure(ctx, aimConcurrency, opt.warmup, opt.duration)
	if err != nil {
		return fmt.Errorf("baseline at size: %w", err)
	}
	// The same creates with values of the three indexed attributes: their
	// check and the side table's rows are what attributes add to a create.
	withAttrs, err := sys.measureWith(ctx, aimConcurrency, opt.warmup, opt.duration, sys.client.createWithAttributes)
	if err != nil {
		return fmt.Errorf("creates with attributes at size: %w", err)
	}
	fmt.Printf("creates on the seeded tables at concurrency %d: ours %.0f/s (call p99 %s), baseline %.0f tx/s (p99 %s): ours / baseline %.0f%%\n",
		aimConcurrency, ours.rate, ms(ours.call.p99), base.rate, ms(base.lat.p99), 100*ours.rate/base.rate)
	fmt.Printf("creates with 3 indexed attributes: %.0f/s (call p99 %s): with / without attributes %.0f%%, with / baseline %.0f%%\n",
		withAttrs.rate, ms(withAttrs.call.p99), 100*withAttrs.rate/ours.rate, 100*withAttrs.rate/base.rate)
	// Every seeded customer was created before seedEnd, and the seed writes
	// no events: the outbox and the event log hold only the creates'. The
	// cascade removes what hangs on the customers.
	if _, err := sys.pool.Exec(ctx, `DELETE FROM customers WHERE created_at >= $1`, seedEnd); err != nil {
		return fmt.Errorf("remove the created customers: %w", err)
	}
	if _, err := sys.pool.Exec(ctx, `DELETE FROM outbox; DELETE FROM event_log`); err != nil {
		return fmt.Errorf("remove the created customers' events: %w", err)
	}
	return nil
}

// searchDatabase is a fresh database dropped at the end, or with -search-db a
// kept one, created when missing.
func searchDatabase(ctx context.Context, adminURL, fresh, keep string) (string, func(), error) {
	if keep == "" {
		return freshDatabase(ctx, adminURL, fresh)
	}
	dbURL, err := replaceDatabase(adminURL, keep)
	if err != nil {
		return "", nil, err
	}
	err = adminExec(ctx, adminURL, "CREATE DATABASE "+pgx.Identifier{keep}.Sanitize())
	// 42P04 duplicate_database: kept from an earlier run.
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") {
		return "", nil, fmt.Errorf("create database %s: %w", keep, err)
	}
	return dbURL, func() {}, nil
}

// findGroups finds the groups seedGroups made in a reused database.
func findGroups(ctx context.Context, pool *pgxpool.Pool) (seededGroups, error) {
	var g seededGroups
	err := pool.QueryRow(ctx, `SELECT (SELECT id FROM customer_groups WHERE name = 'Newsletter'),
		(SELECT id FROM customer_groups WHERE name = 'Wholesale')`).Scan(&g.large, &g.small)
	if err != nil {
		return g, fmt.Errorf("find seeded groups: %w", err)
	}
	return g, nil
}

// seededGroups are two customer groups of very different sizes.
type seededGroups struct{ large, small uuid.UUID }

// seedGroups makes two groups; the seeder puts about 10% of the customers
// in one and 0.1% in the other, so the group_id filter meets both a common
// and a rare group.
func seedGroups(ctx context.Context, pool *pgxpool.Pool) (seededGroups, error) {
	g := seededGroups{large: uuid.Must(uuid.NewV7()), small: uuid.Must(uuid.NewV7())}
	_, err := pool.Exec(ctx, `INSERT INTO customer_groups (id, name, created_at, updated_at)
		VALUES ($1, 'Newsletter', now(), now()), ($2, 'Wholesale', now(), now())`, g.large, g.small)
	if err != nil {
		return g, fmt.Errorf("seed groups: %w", err)
	}
	return g, nil
}

// seededSystem is the service on -search-rows customers seeded by COPY (or
// a kept -search-db), vacuumed and analyzed: the search and duplicates
// cases' database. label names the case in what it prints.
func seededSystem(ctx context.Context, adminURL, name string, opt options, label string) (*system, *seeder, func(), error) {
	dbURL, drop, err := searchDatabase(ctx, adminURL, name, opt.searchDB)
	if err != nil {
		return nil, nil, nil, err
	}
	sys, err := startSystem(ctx, dbURL, opt.dbConns, aimConcurrency)
	if err != nil {
		drop()
		return nil, nil, nil, err
	}
	fail := func(err error) (*system, *seeder, func(), error) {
		sys.close()
		drop()
		return nil, nil, nil, err
	}

	var seeded int
	if err := sys.pool.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&seeded); err != nil {
		return fail(err)
	}
	var sd *seeder
	switch seeded {
	case 0:
		start := time.Now()
		groups, err := seedGroups(ctx, sys.pool)
		if err != nil {
			return fail(err)
		}
		if err := defineBenchAttributes(ctx, sys); err != nil {
			return fail(err)
		}
		sd = newSeeder(opt.searchRows, groups)
		if err := seed(ctx, sys.pool, sd); err != nil {
			return fail(err)
		}
		fmt.Printf(label+": %d customers and %d orders seeded by COPY in %s (%.0f rows/s)\n",
			opt.searchRows, sd.orderSeq, time.Since(start).Round(time.Second), float64(opt.searchRows+sd.orderSeq)/time.Since(start).Seconds())
	default:
		// A kept database, seeded in full, or in part by a run that was
		// stopped between two batches: the seed goes on where it stopped.
		if seeded > opt.searchRows || seeded%seedBatch != 0 {
			return fail(fmt.Errorf("database %s has %d customers, not %d: drop it or use another -search-db", opt.searchDB, seeded, opt.searchRows))
		}
		groups, err := findGroups(ctx, sys.pool)
		if err != nil {
			return fail(err)
		}
		sd = newSeeder(opt.searchRows, groups)
		sd.skipTo(seeded) // the samples, without writing the rows again
		var orders int
		if err := sys.pool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&orders); err != nil {
			return fail(err)
		}
		if orders != sd.orderSeq {
			return fail(fmt.Errorf("database %s has %d orders, not the %d this seed makes (seeded by an older bench?): drop it or use another -search-db",
				opt.searchDB, orders, sd.orderSeq))
		}
		if seeded < opt.searchRows {
			fmt.Printf(label+": database %s has %d customers of %d: seeding the rest\n", opt.searchDB, seeded, opt.searchRows)
			if err := seed(ctx, sys.pool, sd); err != nil {
				return fail(err)
			}
		} else {
			fmt.Printf(label+": reusing database %s with its %d customers and %d orders\n", opt.searchDB, seeded, orders)
		}
	}
	var defined int
	var bare bool
	if err := sys.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM customer_attribute_definitions), EXISTS (SELECT 1 FROM customers WHERE attributes = '{}')").Scan(&defined, &bare); err != nil {
		return fail(err)
	}
	if bare || defined != len(benchAttributes) {
		return fail(fmt.Errorf("database %s has customers without attributes or not the bench's attribute definitions (seeded by an older bench?): drop it or use another -search-db", opt.searchDB))
	}
	if err := indexSeededAttributes(ctx, sys.pool); err != nil {
		return fail(err)
	}
	if opt.searchSQL != "" {
		if _, err := sys.pool.Exec(ctx, opt.searchSQL); err != nil {
			return fail(fmt.Errorf("-search-sql: %w", err))
		}
		fmt.Printf("with -search-sql: %s\n", opt.searchSQL)
	}
	// VACUUM also empties the trigram index's pending list, which every
	// search would otherwise scan in full; ANALYZE gives the planner the
	// statistics a long-lived table would have.
	start := time.Now()
	if _, err := sys.pool.Exec(ctx, "VACUUM ANALYZE customers, orders, customer_attribute_texts, customer_attribute_numbers, customer_attribute_times"); err != nil {
		return fail(fmt.Errorf("vacuum: %w", err))
	}
	fmt.Printf("VACUUM ANALYZE %s\n", time.Since(start).Round(time.Second))
	if err := printServer(ctx, sys.pool); err != nil {
		return fail(err)
	}
	return sys, sd, drop, nil
}
