package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db/gen"
)

// printServer shows the settings that shape the plans.
func printServer(ctx context.Context, pool *pgxpool.Pool) error {
	var version, settings, table, indexes, orders, orderIndexes string
	err := pool.QueryRow(ctx, `SELECT current_setting('server_version'),
		format('shared_buffers %s, work_mem %s, effective_cache_size %s, random_page_cost %s, jit %s, max_parallel_workers_per_gather %s',
			current_setting('shared_buffers'), current_setting('work_mem'), current_setting('effective_cache_size'),
			current_setting('random_page_cost'), current_setting('jit'), current_setting('max_parallel_workers_per_gather')),
		pg_size_pretty(pg_table_size('customers')), pg_size_pretty(pg_indexes_size('customers')),
		pg_size_pretty(pg_table_size('orders')), pg_size_pretty(pg_indexes_size('orders'))`).
		Scan(&version, &settings, &table, &indexes, &orders, &orderIndexes)
	if err != nil {
		return fmt.Errorf("server settings: %w", err)
	}
	fmt.Printf("PostgreSQL %s: %s; customers %s, its indexes %s; orders %s, its indexes %s\n",
		version, settings, table, indexes, orders, orderIndexes)
	return nil
}

// printPlans shows EXPLAIN (ANALYZE, BUFFERS) of each kind's p95 query, as
// the service runs it: the SQL text of the sqlc queries with the parameters
// the service would bind. The pool's connections plan with
// plan_cache_mode = force_custom_plan, as the service's do, and EXPLAIN of a
// statement with bound parameters plans for their values, so each plan is
// the custom plan the service gets.
func printPlans(ctx context.Context, pool *pgxpool.Pool, results []kindResult) error {
	fmt.Println("\n## Plans of each kind's p95 query")
	for _, r := range results {
		list, count, err := queryParams(ctx, pool, r.atP95)
		if err != nil {
			return err
		}
		fmt.Printf("\n### %s: %s\n", r.kind.name, r.atP95)
		if len(r.atP95.attrs) > 0 {
			if err := printAttributePlans(ctx, pool, list, count, r.atP95.attrs, !r.atP95.noCount); err != nil {
				return err
			}
			continue
		}
		for _, part := range listParts(list, r.atP95.page) {
			plan, err := explain(ctx, pool, func(q *gen.Queries) { _, _ = q.ListCustomers(ctx, part.params) })
			if err != nil {
				return fmt.Errorf("explain list: %w", err)
			}
			fmt.Printf("ListCustomers%s:\n```\n%s\n```\n", part.label, plan)
		}
		if r.atP95.noCount {
			continue
		}
		plan, err := explain(ctx, pool, func(q *gen.Queries) { _, _ = q.CountCustomers(ctx, count) })
		if err != nil {
			return fmt.Errorf("explain count: %w", err)
		}
		fmt.Printf("CountCustomers:\n```\n%s\n```\n", plan)
	}
	return nil
}

// listPart is one of the list queries the service runs for a page.
type listPart struct {
	label  string
	params gen.ListCustomersParams
}

// listParts are the list queries of a page as customer.Service.listRows
// runs them: newest first with placed_orders_before Y, the few customers
// created after Y whose first order predates them, then everyone else from
// Y backwards. Both are shown with the page's limit; the second runs with
// what the first left of it (the seeded customers never ordered before
// their creation, so the first finds nobody).
func listParts(l gen.ListCustomersParams, page int) []listPart {
	y := l.PlacedBefore
	if l.Sort != "-created_at" || y == nil || page > 0 {
		return []listPart{{params: l}}
	}
	newer, older := l, l
	newer.OrderedBeforeCreated = true
	from := y.Add(-time.Microsecond)
	if l.CreatedAfter == nil || l.CreatedAfter.Before(from) {
		newer.CreatedAfter = &from
	}
	if l.CreatedBefore == nil || y.Before(*l.CreatedBefore) {
		older.CreatedBefore = y
	}
	return []listPart{
		{label: " (part 1 of 2: created from placed_orders_before on, first order before creation)", params: newer},
		{label: " (part 2 of 2: created before placed_orders_before)", params: older},
	}
}

// queryParams are the parameters the service binds for a list request.
func queryParams(ctx context.Context, pool *pgxpool.Pool, a listArgs) (gen.ListCustomersParams, gen.CountCustomersParams, error) {
	f := gen.CountCustomersParams{
		IsActive: a.isActive, HasAccount: a.hasAccount, CreatedAfter: a.createdAfter, CreatedBefore: a.createdBefore,
		GroupID: a.groupID, OrdersMin: int32Ptr(a.ordersMin), OrdersMax: int32Ptr(a.ordersMax),
		PlacedAfter: a.placedAfter, PlacedBefore: a.placedBefore,
		CountLimit: apiCountLimit + 1, // one more, to see whether more match
	}
	if a.q != "" {
		f.Q = &a.q
	}
	if a.tier != "" {
		f.Metadata = []byte(`{"tier":"` + a.tier + `"}`)
	}
	l := gen.ListCustomersParams{
		Email: f.Email, IsActive: f.IsActive, Q: f.Q, HasAccount: f.HasAccount, IsVerified: f.IsVerified,
		CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore, UpdatedAfter: f.UpdatedAfter,
		Metadata: f.Metadata, GroupID: f.GroupID, OrdersMin: f.OrdersMin, OrdersMax: f.OrdersMax,
		PlacedAfter: f.PlacedAfter, PlacedBefore: f.PlacedBefore, Sort: cmp.Or(a.order, "-created_at"),
		RowLimit: pageSize + 1, // one more than the page, to see whether another follows
	}
	if a.page > 0 {
		// The cursor is the service's own encoding; the row it points at,
		// the last of the previous page, is easier found again here. Only
		// unfiltered lists are walked, in these two orders.
		var id uuid.UUID
		var at time.Time
		var n int32
		var sql string
		switch l.Sort {
		case "-created_at":
			sql = `SELECT id, created_at, number_of_orders FROM customers ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1`
		case "-number_of_orders":
			sql = `SELECT id, created_at, number_of_orders FROM customers ORDER BY number_of_orders DESC, id DESC OFFSET $1 LIMIT 1`
		default:
			return l, f, fmt.Errorf("cursor row: the bench does not walk order %s", l.Sort)
		}
		if err := pool.QueryRow(ctx, sql, a.page*pageSize-1).Scan(&id, &at, &n); err != nil {
			return l, f, fmt.Errorf("cursor row: %w", err)
		}
		// As the service binds them: every cursor field, zero when unused.
		l.AfterID, l.AfterText = &id, new(string)
		switch l.Sort {
		case "-created_at":
			l.AfterTime, l.AfterInt = &at, new(int32)
		default:
			l.AfterTime, l.AfterInt = new(time.Time), &n
		}
	}
	return l, f, nil
}

// attrParams are the bench's attribute filters as the service binds them
// in the ByAttribute queries' slots: the first two of each kind (the
// bench's kinds have at most one of each).
func attrParams(attrs []attrFilter) (l gen.ListCustomersByAttributeParams, err error) {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	instant := func(d string) *time.Time {
		if d == "" {
			return nil
		}
		t, _ := time.Parse(time.DateOnly, d)
		return &t
	}
	for _, f := range attrs {
		lo, hi := cmp.Or(f.gte, f.eq), cmp.Or(f.lte, f.eq)
		switch {
		case f.kind == "num" && l.Number1Key == nil:
			l.Number1Key, l.Number1Min, l.Number1Max = opt(f.key), opt(lo), opt(hi)
		case f.kind == "date" && l.Time1Key == nil:
			l.Time1Key, l.Time1Min, l.Time1Max = opt(f.key), instant(lo), instant(hi)
		case f.kind == "text" && l.Text1Key == nil:
			l.Text1Key, l.Text1Value = opt(f.key), opt(f.eq)
		default:
			return l, fmt.Errorf("plans: the bench binds one attribute filter of each kind, not %+v", attrs)
		}
	}
	return l, nil
}

// printAttributePlans shows the plans of a list with attribute filters:
// ListCustomersByAttribute and, withCount, CountCustomersByAttribute.
func printAttributePlans(ctx context.Context, pool *pgxpool.Pool, l gen.ListCustomersParams, c gen.CountCustomersParams, attrs []attrFilter, withCount bool) error {
	list, err := attrParams(attrs)
	if err != nil {
		return err
	}
	list.Sort, list.RowLimit = l.Sort, l.RowLimit
	count := gen.CountCustomersByAttributeParams{
		Text1Key: list.Text1Key, Text1Value: list.Text1Value,
		Number1Key: list.Number1Key, Number1Min: list.Number1Min, Number1Max: list.Number1Max,
		Time1Key: list.Time1Key, Time1Min: list.Time1Min, Time1Max: list.Time1Max,
		CountLimit: c.CountLimit,
	}
	plan, err := explain(ctx, pool, func(q *gen.Queries) { _, _ = q.ListCustomersByAttribute(ctx, list) })
	if err != nil {
		return fmt.Errorf("explain list: %w", err)
	}
	fmt.Printf("ListCustomersByAttribute:\n```\n%s\n```\n", plan)
	if !withCount {
		return nil
	}
	plan, err = explain(ctx, pool, func(q *gen.Queries) { _, _ = q.CountCustomersByAttribute(ctx, count) })
	if err != nil {
		return fmt.Errorf("explain count: %w", err)
	}
	fmt.Printf("CountCustomersByAttribute:\n```\n%s\n```\n", plan)
	return nil
}

// int32Ptr narrows an optional count to the queries' integer parameters.
func int32Ptr(n *int) *int32 {
	if n == nil {
		return nil
	}
	v := int32(*n)
	return &v
}

// querier runs a query: a pool, or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// explain runs EXPLAIN (ANALYZE, BUFFERS) of the one query call makes.
func explain(ctx context.Context, pool querier, call func(*gen.Queries)) (string, error) {
	var rec recorder
	call(gen.New(&rec))
	if rec.sql == "" {
		return "", errors.New("no query recorded")
	}
	rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+rec.sql, rec.args...)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}

// errRecorded fails the query a recorder was given: only its text and
// arguments were wanted.
var errRecorded = errors.New("recorded, not run")

// recorder is a gen.DBTX that keeps the SQL and arguments of a query instead
// of running it, so the plans shown are of exactly the text the service sends.
type recorder struct {
	sql  string
	args []any
}

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.sql, r.args = sql, args
	return pgconn.CommandTag{}, errRecorded
}

func (r *recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.sql, r.args = sql, args
	return nil, errRecorded
}

func (r *recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.sql, r.args = sql, args
	return errRow{}
}

type errRow struct{}

func (errRow) Scan(...any) error { return errRecorded }

// SendBatch completes gen.DBTX; the list and count queries never batch.
func (r *recorder) SendBatch(context.Context, *pgx.Batch) pgx.BatchResults {
	panic("bench: recorder cannot record a batch")
}

// CopyFrom completes gen.DBTX; the list and count queries never copy.
func (r *recorder) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, errRecorded
}
