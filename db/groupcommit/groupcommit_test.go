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
	"github.com/jackc/pgx/v5/pgconn"
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

// writeRow writes row id with Write, recording its top-level transaction.
func writeRow(ctx context.Context, db *groupcommit.DB, id int) error {
	_, err := db.Write(ctx, `INSERT INTO gc (id, xid) VALUES ($1, txid_current())`, id)
	return err
}

// xidOf reads the transaction a row was written in.
func xidOf(t *testing.T, pool *pgxpool.Pool, id int) int64 {
	t.Helper()
	var xid int64
	if err := pool.QueryRow(context.Background(), `SELECT xid FROM gc WHERE id = $1`, id).Scan(&xid); err != nil {
		t.Fatalf("row %d: %v", id, err)
	}
	return xid
}

// A Write on an idle lane runs at once in a transaction of its own; on a
// busy one it waits, and commits in the group under way.
func TestAWriteRunsAloneOnAnIdleLaneAndJoinsABusyOnesGroup(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 1})
	ctx := context.Background()
	for id := 1; id <= 2; id++ {
		if err := writeRow(ctx, db, id); err != nil {
			t.Fatal(err)
		}
		xidOf(t, pool, id) // visible once answered
	}
	if xidOf(t, pool, 1) == xidOf(t, pool, 2) {
		t.Error("two writes one after another shared a transaction")
	}
	errs, release := queueBehind(t, db, func() error { return writeRow(ctx, db, 3) })
	if ids, _ := stored(t, pool); ids[3] {
		t.Error("a write on a busy lane was visible before the group under way committed")
	}
	release()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if xidOf(t, pool, 3) != xidOf(t, pool, 0) {
		t.Error("a write on a busy lane did not commit in the group under way")
	}
}

// Of writes sent together, one that PostgreSQL refuses (a duplicate key)
// is refused alone: those before and after it commit, in the one group.
func TestARefusedWriteAmongQueuedOnesIsRefusedAlone(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 1})
	ids := []int{1, 2, 2, 3, 1, 4, 4}
	refused := map[int]bool{2: true, 4: true, 6: true}
	var writes []func() error
	for _, id := range ids {
		writes = append(writes, func() error { return writeRow(context.Background(), db, id) })
	}
	errs, release := queueBehind(t, db, writes...)
	release()
	for i, err := range errs {
		var pgErr *pgconn.PgError
		switch {
		case refused[i] && !(errors.As(err, &pgErr) && pgErr.Code == "23505"):
			t.Errorf("write %d (row %d): %v, want a unique violation", i, ids[i], err)
		case !refused[i] && err != nil:
			t.Errorf("write %d (row %d): %v", i, ids[i], err)
		}
	}
	got, transactions := stored(t, pool)
	if len(got) != 5 || transactions != 1 {
		t.Errorf("rows %v in %d transactions, want 0 to 4 in 1", got, transactions)
	}
}

// A Write whose request is cancelled while it waits for the lane writes
// nothing; the group goes on.
func TestAWriteCancelledWhileWaitingWritesNothing(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 1})
	ctx, cancel := context.WithCancel(context.Background())
	errs, release := queueBehind(t, db,
		func() error { return writeRow(ctx, db, 1) },
		func() error { return writeRow(context.Background(), db, 2) })
	cancel()
	time.Sleep(20 * time.Millisecond)
	release()
	if !errors.Is(errs[0], context.Canceled) || errs[1] != nil {
		t.Fatalf("cancelled write: %v; the other: %v", errs[0], errs[1])
	}
	if ids, _ := stored(t, pool); len(ids) != 2 || ids[1] {
		t.Errorf("rows %v, want 0 and 2", ids)
	}
}

// Writes and units mixed, many at once: each told it committed is there
// for another reader when told; each refused (a unit that fails, a write
// of a row that exists) is not.
func TestWritesAndUnitsMixedCommitTogetherAndFailAlone(t *testing.T) {
	pool := setUp(t)
	if _, err := pool.Exec(context.Background(), `INSERT INTO gc SELECT g, 0 FROM generate_series(1000, 1099) g`); err != nil {
		t.Fatal(err)
	}
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 2, MaxUnits: 8})
	const n = 300
	failingUnit := func(i int) bool { return i%3 == 0 && i%9 == 0 }
	duplicate := func(i int) bool { return i%3 != 0 && i%7 == 1 }
	var wg sync.WaitGroup
	errs := make([]error, n)
	visible := make([]bool, n)
	for i := range n {
		wg.Go(func() {
			switch {
			case i%3 == 0:
				errs[i] = insert(context.Background(), db, i, failingUnit(i))
			case duplicate(i):
				errs[i] = writeRow(context.Background(), db, 1000+i%100)
			default:
				errs[i] = writeRow(context.Background(), db, i)
			}
			if errs[i] == nil {
				var one int
				visible[i] = pool.QueryRow(context.Background(), `SELECT 1 FROM gc WHERE id = $1`, i).Scan(&one) == nil
			}
		})
	}
	wg.Wait()
	ids, transactions := stored(t, pool)
	want := 100
	for i := range n {
		refused := failingUnit(i) || duplicate(i)
		switch {
		case refused && errs[i] == nil:
			t.Errorf("write %d was not refused", i)
		case refused && ids[i]:
			t.Errorf("refused write %d is stored", i)
		case !refused && errs[i] != nil:
			t.Errorf("write %d: %v", i, errs[i])
		case !refused && !visible[i]:
			t.Errorf("write %d was answered before another reader could see it", i)
		}
		if !refused {
			want++
		}
	}
	if len(ids) != want {
		t.Errorf("%d rows, want %d", len(ids), want)
	}
	if transactions >= (want-100)/2 {
		t.Errorf("%d rows took %d transactions: not grouped", want-100, transactions-1)
	}
	t.Logf("%d rows in %d transactions", want-100, transactions-1)
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

// A group of units of one statement each costs one round trip a unit and
// one for the commit: the BEGIN and each unit's savepoint go with its
// statement, and the savepoint's release with the next unit's. Writes
// queued one after another go together with the group's COMMIT: one round
// trip for all of them and the commit.
func TestAGroupCostsARoundTripAWriteAndOneForTheCommit(t *testing.T) {
	const n = 10
	for _, tc := range []struct {
		name  string
		write func(db *groupcommit.DB, id int) error
		want  int64 // round trips for the first unit and n writes queued behind it
	}{
		{"units", func(db *groupcommit.DB, id int) error { return insert(context.Background(), db, id, false) }, n + 2},
		{"writes", func(db *groupcommit.DB, id int) error { return writeRow(context.Background(), db, id) }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := setUp(t)
			p, rt := counted(t, pool)
			db := groupcommit.New(p, groupcommit.Config{Lanes: 1})
			var writes []func() error
			for i := range n {
				writes = append(writes, func() error { return tc.write(db, 1+i) })
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
			if sent != tc.want {
				t.Errorf("%d writes in a group took %d round trips, want %d", n+1, sent, tc.want)
			}
		})
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

// A write of no key (a create: no other write can concern its customer
// yet) takes an idle lane where there is one, and so runs at once while
// another lane is busy.
func TestAWriteOfNoKeyTakesAnIdleLane(t *testing.T) {
	pool := setUp(t)
	db := groupcommit.New(pool, groupcommit.Config{Lanes: 2})
	hold, held := make(chan struct{}), make(chan error, 1)
	go func() {
		held <- pgx.BeginFunc(context.Background(), db, func(tx pgx.Tx) error { <-hold; return nil })
	}()
	time.Sleep(50 * time.Millisecond)
	for id := 1; id <= 4; id++ {
		done := make(chan error, 1)
		go func() { done <- writeRow(context.Background(), db, id) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Second):
			close(hold)
			t.Fatalf("write %d waited for the busy lane while the other was idle", id)
		}
	}
	close(hold)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if ids, _ := stored(t, pool); len(ids) != 4 {
		t.Errorf("rows %v, want 1 to 4", ids)
	}
}
