package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/dbtest"
)

// The pool's connections plan without parallel workers, even where the
// costs make them look cheap; the same session with workers allowed plans
// a Gather, so the costs set here would bring them in.
func TestConnectionsPlanWithoutParallelWorkers(t *testing.T) {
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	// A table of a few pages: the planner gives an empty one no workers.
	if _, err := pool.Exec(ctx, "CREATE TABLE plan_probe AS SELECT g FROM generate_series(1, 10000) g; ANALYZE plan_probe"); err != nil {
		t.Fatal(err)
	}
	plan := func(workers string) string {
		var lines []string
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('parallel_setup_cost', '0', true), set_config('parallel_tuple_cost', '0', true),
				set_config('min_parallel_table_scan_size', '0', true)`); err != nil {
				return err
			}
			if workers != "" {
				if _, err := tx.Exec(ctx, `SELECT set_config('max_parallel_workers_per_gather', $1, true)`, workers); err != nil {
					return err
				}
			}
			rows, err := tx.Query(ctx, "EXPLAIN SELECT count(*) FROM plan_probe WHERE g % 7 = 0")
			if err != nil {
				return err
			}
			lines, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	if p := plan(""); strings.Contains(p, "Gather") {
		t.Errorf("a connection of the pool plans parallel workers:\n%s", p)
	}
	if p := plan("2"); !strings.Contains(p, "Gather") {
		t.Fatalf("with workers allowed the costs set bring in no Gather, so the test shows nothing:\n%s", p)
	}
}
