package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/db/groupcommit"
)

// setUp is a pool on a database of the test's own with a table to write.
func setUp(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, _ := dbtest.New(t)
	if _, err := pool.Exec(context.Background(), `CREATE TABLE gc (id int PRIMARY KEY, xid bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return pool
}

// insert writes row id in a unit of db, recording its top-level
// transaction; it fails when fail is true, after writing.
func insert(ctx context.Context, db *groupcommit.DB, id int, fail bool) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO gc (id, xid) VALUES ($1, txid_current())`, id); err != nil {
			return err
		}
		if fail {
			return errors.New("refused")
		}
		return nil
	})
}

// stored reads, through the pool (another connection), which rows exist
// and in how many transactions they were written.
func stored(t *testing.T, pool *pgxpool.Pool) (ids map[int]bool, transactions int) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id FROM gc`)
	if err != nil {
		t.Fatal(err)
	}
	ids = map[int]bool{}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	if err := pool.QueryRow(context.Background(), `SELECT count(DISTINCT xid) FROM gc`).Scan(&transactions); err != nil {
		t.Fatal(err)
	}
	return ids, transactions
}

// Concurrent writes share transactions; every one that was told it
// committed is there for another reader the moment it was told, and one
// that failed is refused alone.
func TestConcurrentWritesCommitTogetherAndFailAlone(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 1})
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	visible := make([]bool, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = insert(context.Background(), db, i, i%10 == 7)
			if errs[i] == nil {
				var one int
				err := pool.QueryRow(context.Background(), `SELECT 1 FROM gc WHERE id = $1`, i).Scan(&one)
				visible[i] = err == nil
			}
		})
	}
	wg.Wait()
	ids, transactions := stored(t, pool)
	for i := range n {
		switch {
		case i%10 == 7 && errs[i] == nil:
			t.Errorf("write %d should have been refused", i)
		case i%10 == 7 && ids[i]:
			t.Errorf("refused write %d is stored", i)
		case i%10 != 7 && errs[i] != nil:
			t.Errorf("write %d: %v", i, errs[i])
		case i%10 != 7 && !visible[i]:
			t.Errorf("write %d was answered before another reader could see it", i)
		}
	}
	if len(ids) != n-n/10 {
		t.Errorf("%d rows stored, want %d", len(ids), n-n/10)
	}
	if transactions >= len(ids)/2 {
		t.Errorf("%d writes took %d transactions: not grouped", len(ids), transactions)
	}
	t.Logf("%d writes in %d transactions", len(ids), transactions)
}

// A write alone commits at once, in a transaction of its own.
func TestAWriteAloneCommitsAtOnce(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{})
	for i := range 5 {
		if err := insert(context.Background(), db, i, false); err != nil {
			t.Fatal(err)
		}
		if ids, _ := stored(t, pool); !ids[i] {
			t.Fatalf("write %d not visible once answered", i)
		}
	}
	if _, transactions := stored(t, pool); transactions != 5 {
		t.Errorf("5 writes one after another took %d transactions, want 5", transactions)
	}
}

// A request cancelled while its statement runs breaks neither its own
// write nor those grouped with it: statements run detached from requests.
func TestACancelledRequestDoesNotBreakTheGroup(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 1})
	ctx, cancel := context.WithCancel(context.Background())
	slow := make(chan error, 1)
	go func() {
		slow <- pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO gc (id, xid) SELECT 1, txid_current() FROM pg_sleep(0.3)`)
			return err
		})
	}()
	time.Sleep(50 * time.Millisecond) // the slow one holds the lane
	others := make(chan error, 5)
	for i := range 5 {
		go func() { others <- insert(context.Background(), db, 10+i, false) }()
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-slow; err != nil {
		t.Errorf("the cancelled request's write: %v", err)
	}
	for range 5 {
		if err := <-others; err != nil {
			t.Errorf("a write grouped with a cancelled one: %v", err)
		}
	}
	if ids, _ := stored(t, pool); len(ids) != 6 {
		t.Errorf("%d rows stored, want 6: %v", len(ids), ids)
	}
}

// A request cancelled while it waits for the lane leaves without writing,
// and the lane goes on.
func TestARequestCancelledWhileWaitingWritesNothing(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 1})
	hold := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- pgx.BeginFunc(context.Background(), db, func(tx pgx.Tx) error {
			<-hold
			_, err := tx.Exec(context.Background(), `INSERT INTO gc (id, xid) VALUES (1, txid_current())`)
			return err
		})
	}()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := insert(ctx, db, 2, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a write cancelled in the queue: %v, want the deadline", err)
	}
	close(hold)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := insert(context.Background(), db, 3, false); err != nil {
		t.Fatal(err)
	}
	if ids, _ := stored(t, pool); len(ids) != 2 || ids[2] {
		t.Errorf("rows %v, want 1 and 3", ids)
	}
}

// Many concurrent writes of one row (one key) all apply, none lost to
// another: a key's writes share a lane.
func TestConcurrentWritesOfOneKeyAllApply(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 4})
	if _, err := pool.Exec(context.Background(), `INSERT INTO gc (id, xid) VALUES (0, 0)`); err != nil {
		t.Fatal(err)
	}
	ctx := groupcommit.WithKey(context.Background(), []byte("customer-1"))
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `UPDATE gc SET xid = xid + 1 WHERE id = 0`)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT xid FROM gc WHERE id = 0`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 50 {
		t.Errorf("counter %d after 50 increments", n)
	}
}

// The first write of a group runs in the transaction itself, without a
// savepoint: when it fails, the transaction rolls back, and the writes
// waiting behind it commit in a new one.
func TestAFailedFirstWriteRollsBackAloneAndTheNextGoOn(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 1})
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- pgx.BeginFunc(context.Background(), db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(context.Background(), `INSERT INTO gc (id, xid) VALUES (1, txid_current())`); err != nil {
				return err
			}
			<-release
			// A statement error, as a refused request's: the transaction is
			// aborted, not just this write.
			_, err := tx.Exec(context.Background(), `INSERT INTO gc (id, xid) VALUES (1, 0)`)
			return err
		})
	}()
	time.Sleep(50 * time.Millisecond)
	next := make(chan error, 3)
	for i := range 3 {
		go func() { next <- insert(context.Background(), db, 10+i, false) }()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := <-first; err == nil {
		t.Error("the duplicate insert was not refused")
	}
	for range 3 {
		if err := <-next; err != nil {
			t.Errorf("a write queued behind a failed first one: %v", err)
		}
	}
	if ids, _ := stored(t, pool); len(ids) != 3 || ids[1] {
		t.Errorf("rows %v, want 10, 11, 12", ids)
	}
}

// A statement alone runs as it is, in no transaction of ours; with the
// lane busy it does not run, and the caller joins the group instead.
func TestIfAloneRunsOnlyOnAnIdleLane(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 1})
	exec := func(id int) func() error {
		return func() error {
			_, err := pool.Exec(context.Background(), `INSERT INTO gc (id, xid) VALUES ($1, txid_current())`, id)
			return err
		}
	}
	if ran, err := db.IfAlone(context.Background(), exec(1)); !ran || err != nil {
		t.Fatalf("on an idle lane: ran %v, %v", ran, err)
	}
	hold, held := make(chan struct{}), make(chan error, 1)
	go func() {
		held <- pgx.BeginFunc(context.Background(), db, func(tx pgx.Tx) error { <-hold; return nil })
	}()
	time.Sleep(50 * time.Millisecond)
	if ran, _ := db.IfAlone(context.Background(), exec(2)); ran {
		t.Error("ran on a busy lane")
	}
	close(hold)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := insert(context.Background(), db, 3, false); err != nil {
		t.Fatal(err)
	}
	if ids, _ := stored(t, pool); len(ids) != 2 || !ids[1] || !ids[3] {
		t.Errorf("rows %v, want 1 and 3", ids)
	}
}

// roundTrips counts what a pool sends: each statement, and each batch of
// statements sent together, counts once.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// counted is a second pool on pool's database whose round trips are counted.
func counted(t *testing.T, pool *pgxpool.Pool) (*pgxpool.Pool, *roundTrips) {
	t.Helper()
	cfg := pool.Config().Copy()
	rt := &roundTrips{}
	cfg.ConnConfig.Tracer = rt
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, rt
}

// queueBehind runs hold's unit first, so that the writes then started
// queue behind it and join its group once hold is closed.
func queueBehind(t *testing.T, db *groupcommit.DB, writes ...func() error) (errs []error, release func()) {
	t.Helper()
	hold, held := make(chan struct{}), make(chan error, 1)
	go func() {
		held <- pgx.BeginFunc(context.Background(), db, func(tx pgx.Tx) error {
			<-hold
			_, err := tx.Exec(context.Background(), `INSERT INTO gc (id, xid) VALUES (0, txid_current())`)
			return err
		})
	}()
	time.Sleep(50 * time.Millisecond)
	errs = make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Go(func() { errs[i] = w() })
		time.Sleep(5 * time.Millisecond) // in this order
	}
	time.Sleep(50 * time.Millisecond)
	return errs, func() {
		close(hold)
		if err := <-held; err != nil {
			t.Errorf("the first write: %v", err)
		}
		wg.Wait()
	}
}

// A group of one-statement writes costs one round trip a write and one for
// the commit: the BEGIN and each write's savepoint go with its statement,
// and the savepoint's release with the next write's.
func TestAGroupCostsARoundTripAWriteAndOneForTheCommit(t *testing.T) {
	pool := setUp(t)
	p, rt := counted(t, pool)
	db := groupcommit.New(p, groupcommit.Config{Lanes: 1})
	const n = 10
	var writes []func() error
	for i := range n {
		writes = append(writes, func() error { return insert(context.Background(), db, 1+i, false) })
	}
	before := rt.n.Load()
	errs, release := queueBehind(t, db, writes...)
	release()
	sent := rt.n.Load() - before
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	ids, transactions := stored(t, pool)
	if len(ids) != n+1 || transactions != 1 {
		t.Fatalf("%d rows in %d transactions, want %d in 1", len(ids), transactions, n+1)
	}
	if want := int64(n + 2); sent != want {
		t.Errorf("%d writes in a group took %d round trips, want %d", n+1, sent, want)
	}
}

// In a group, a write whose statement is refused (here a duplicate key)
// is refused alone, whatever it ran (Exec, QueryRow, Query); the writes
// after it commit, and so do those before it.
func TestARefusedStatementRefusesItsWriteAlone(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 1})
	ctx := context.Background()
	queryRow := func(id int) func() error {
		return func() error {
			return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
				var got int
				err := tx.QueryRow(ctx, `INSERT INTO gc (id, xid) VALUES ($1, txid_current()) RETURNING id`, id).Scan(&got)
				if err == nil && got != id {
					err = fmt.Errorf("returned %d, want %d", got, id)
				}
				return err
			})
		}
	}
	query := func(id int) func() error {
		return func() error {
			return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, `INSERT INTO gc (id, xid) VALUES ($1, txid_current()), ($1 + 100, txid_current()) RETURNING id`, id)
				if err != nil {
					return err
				}
				got, err := pgx.CollectRows(rows, pgx.RowTo[int])
				if err == nil && len(got) != 2 {
					err = fmt.Errorf("returned %v", got)
				}
				if err != nil {
					return err
				}
				// The connection is free for the write's next statement.
				_, err = tx.Exec(ctx, `UPDATE gc SET xid = xid WHERE id = $1`, id)
				return err
			})
		}
	}
	exec := func(id int) func() error { return func() error { return insert(ctx, db, id, false) } }
	errs, release := queueBehind(t, db,
		exec(1), exec(1), exec(2), queryRow(2), queryRow(3), query(3), query(4), exec(5))
	release()
	refused := []bool{false, true, false, true, false, true, false, false}
	for i, err := range errs {
		if (err != nil) != refused[i] {
			t.Errorf("write %d: %v, want refused %v", i, err, refused[i])
		}
	}
	ids, transactions := stored(t, pool)
	for _, id := range []int{0, 1, 2, 3, 4, 104, 5} {
		if !ids[id] {
			t.Errorf("row %d missing", id)
		}
	}
	if len(ids) != 7 || transactions != 1 {
		t.Errorf("rows %v in %d transactions, want 7 in 1", ids, transactions)
	}
}
