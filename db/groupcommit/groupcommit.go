// Package groupcommit commits the transactions of concurrent requests
// together. One commit costs a WAL flush, however little it writes, and that
// flush is what bounds one-transaction-per-request writes; here the requests
// that arrive while a transaction is open join it, each in a savepoint of
// its own, and each is answered only once the commit that holds it is done.
//
// A request that finds its lane idle starts a transaction at once, so alone
// it waits for nobody; those that come while it runs queue, and join it one
// after another (their statements share one connection) until the queue is
// empty or the transaction holds MaxUnits; then the last one commits, and
// hands the lane to the next in the queue. A unit that fails rolls back to
// its savepoint: it alone is refused. A commit that fails fails all of its
// units, none of which was answered yet, so nothing a client was told
// committed is lost.
//
// Writes of one statement (Write: a create) need no code of theirs between
// statements, so those queued one after another are sent together, each in
// a savepoint, with the group's COMMIT, in one round trip: however many it
// holds, a group of them costs that round trip, and a write waits for at
// most the round trip under way before its own.
//
// Each unit's statements run detached from its request's cancellation: a
// statement cancelled in flight would break the connection, and with it the
// other requests' work in the transaction.
package groupcommit

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config tunes the group commit.
type Config struct {
	// Disabled turns group commit off: one transaction per request.
	Disabled bool `env:"GROUP_COMMIT_DISABLED" envDefault:"false"`
	// Lanes is how many group transactions may be open at once, each on a
	// connection of its own (at most half of the pool's).
	Lanes int `env:"GROUP_COMMIT_LANES" envDefault:"4"`
	// MaxUnits bounds the requests in one transaction. PostgreSQL keeps up
	// to 64 subtransactions of a transaction in shared memory; past that,
	// every snapshot in the database gets slower.
	MaxUnits int `env:"GROUP_COMMIT_MAX_UNITS" envDefault:"32"`
}

// maxUnitsLimit keeps MaxUnits within PostgreSQL's subtransaction cache,
// with room for a unit's own savepoints.
const maxUnitsLimit = 48

// DB begins grouped transactions on a pool. Its Exec, Query and QueryRow
// run on the pool directly, outside any group: reads, and writes of one
// statement that need no transaction.
type DB struct {
	*pgxpool.Pool
	lanes    []*lane
	maxUnits int
	next     atomic.Uint32
	seed     maphash.Seed
}

// New returns a DB on pool, or nil when cfg turns group commit off.
// Settings left zero take their defaults.
func New(pool *pgxpool.Pool, cfg Config) *DB {
	if cfg.Disabled {
		return nil
	}
	if cfg.Lanes <= 0 {
		cfg.Lanes = 4
	}
	if cfg.MaxUnits <= 0 || cfg.MaxUnits > maxUnitsLimit {
		cfg.MaxUnits = 32
	}
	d := &DB{Pool: pool, maxUnits: cfg.MaxUnits, seed: maphash.MakeSeed()}
	// Each open group holds a connection: half of the pool at most, so
	// that reads, and the work a request does before it writes, are never
	// starved of connections by the groups waiting for them.
	for range min(cfg.Lanes, max(1, int(pool.Config().MaxConns)/2)) {
		d.lanes = append(d.lanes, &lane{db: d})
	}
	return d
}

type keyContext struct{}

// WithKey marks ctx's transactions as concerning key (a customer's id):
// every transaction of one key takes the same lane, so two of them never
// wait for each other's locks across lanes, and the order of a key's
// commits is the order its requests began.
func WithKey(ctx context.Context, key []byte) context.Context {
	return context.WithValue(ctx, keyContext{}, key)
}

// Begin starts the caller's unit: a savepoint in its lane's open
// transaction, or a new transaction when the lane is idle. Its Commit
// returns once the whole transaction committed.
func (d *DB) Begin(ctx context.Context) (pgx.Tx, error) {
	return d.lane(ctx).begin(ctx)
}

// Write runs sql, a write of one statement that is a transaction of its
// own (sqlc's Exec queries), in ctx's lane. When the lane is idle it runs
// at once, alone: no BEGIN and no COMMIT. When the lane is busy it queues;
// the first of the writes queued one after another at the head of the
// lane's queue, given the lane, sends them all, each in a savepoint, in
// one round trip, so a group of such writes costs one round trip and its
// commit. A write refused by PostgreSQL is rolled back to its savepoint
// and refused alone, and the writes after it are sent again. Like a unit's
// statements, it runs detached from ctx's cancellation once it is sent; a
// write cancelled while it waits for the lane is dropped.
func (d *DB) Write(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	l := d.lane(ctx)
	w := &write{sql: sql, args: args, ran: make(chan struct{})}
	u := &unit{turn: make(chan struct{}), write: w}
	l.mu.Lock()
	if !l.busy {
		l.busy = true
		l.mu.Unlock()
		defer l.handOn(nil)
		return d.Pool.Exec(context.WithoutCancel(ctx), sql, args...)
	}
	l.queue = append(l.queue, u)
	l.mu.Unlock()
	select {
	case <-u.turn:
		l.runWrites(u)
	case <-w.ran: // sent with the writes of the one ahead of it
	case <-ctx.Done():
		l.mu.Lock()
		if i := indexOf(l.queue, u); i >= 0 {
			l.queue = append(l.queue[:i], l.queue[i+1:]...)
			l.mu.Unlock()
			return pgconn.CommandTag{}, ctx.Err()
		}
		l.mu.Unlock()
		select { // taken meanwhile: it goes on
		case <-u.turn:
			l.runWrites(u)
		case <-w.ran:
		}
	}
	<-w.ran
	if w.err != nil {
		return pgconn.CommandTag{}, w.err
	}
	<-w.group.done
	return w.tag, w.group.err
}

// Writes is d with Exec running Write: sqlc's queries on it run their
// writes grouped (each must be a transaction of its own), their reads on
// the pool.
func (d *DB) Writes() Writes { return Writes{d} }

// Writes runs Exec as DB.Write.
type Writes struct{ *DB }

// Exec is DB.Write.
func (w Writes) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return w.Write(ctx, sql, args...)
}

// write is a queued Write: its statement, and once it ran, its outcome
// and the group that is to commit it.
type write struct {
	sql   string
	args  []any
	ran   chan struct{} // closed once tag and err are set
	tag   pgconn.CommandTag
	err   error
	group *group
}

// runWrites runs the Write that was handed the lane, with the Writes queued
// right behind it (as many as the group has room for), in the lane's group,
// which it begins if there is none, and commits the group with them; then
// it hands the lane on, to a new group. Committing in the writes' round
// trip, rather than after more units joined, keeps a write's wait to the
// round trip under way when it came, and its own.
func (l *lane) runWrites(first *unit) {
	l.mu.Lock()
	batch := []*write{first.write}
	for len(l.queue) > 0 && l.queue[0].write != nil && l.joined+len(batch) < l.db.maxUnits {
		batch = append(batch, l.pop().write)
	}
	l.mu.Unlock()
	g := first.group
	if g == nil {
		conn, err := l.db.Pool.Acquire(context.Background())
		if err != nil {
			for _, w := range batch {
				w.err = err
				close(w.ran)
			}
			l.handOn(nil)
			return
		}
		g = &group{conn: conn, done: make(chan struct{})}
	}
	g.run(batch)
	l.handOnAfter(g, len(batch))
}

// run sends the writes, each in a savepoint, and the group's COMMIT in one
// round trip; after a write that PostgreSQL refuses, the statements behind
// it are skipped (the transaction is aborted, and the COMMIT with them):
// the transaction is rolled back to the refused write's savepoint, which
// undoes it alone, and the rest are sent again with the COMMIT. Each
// write's outcome is set, and ran closed, before it returns, and the
// group is committed (committed, err). A failure of anything but a
// write's own statement leaves the transaction broken: the group's commit
// fails, and with it every write in the group.
func (g *group) run(writes []*write) {
	ctx := context.Background()
	finish := func(w *write, tag pgconn.CommandTag, err error) {
		w.tag, w.err, w.group = tag, err, g
		close(w.ran)
	}
	defer func() { g.committed = true }()
	if g.broken {
		g.err = g.commit()
		for _, w := range writes {
			finish(w, pgconn.CommandTag{}, g.err)
		}
		return
	}
	for {
		b := &pgx.Batch{}
		prefixed := 0
		if g.tx == nil {
			b.BeginTx(pgx.TxOptions{})
			prefixed++
		}
		if g.release {
			b.Queue("RELEASE " + unitSavepoint)
			prefixed++
		}
		for _, w := range writes {
			b.Queue(unitSavepoint)
			b.Queue(w.sql, w.args...)
			b.Queue("RELEASE " + unitSavepoint)
		}
		b.Queue("COMMIT")
		g.release = false
		br := g.conn.SendBatch(ctx, b)
		if tx := br.Tx(); tx != nil {
			g.tx = tx
		}
		fail := func(err error, rest []*write) {
			_ = br.Close()
			g.broken = true
			for _, w := range rest {
				finish(w, pgconn.CommandTag{}, err)
			}
			g.err = g.commit()
		}
		for range prefixed {
			if _, err := br.Exec(); err != nil {
				fail(err, writes)
				return
			}
		}
		refused := -1
		for i, w := range writes {
			if _, err := br.Exec(); err != nil { // the savepoint
				fail(err, writes[i:])
				return
			}
			tag, err := br.Exec()
			if err != nil {
				finish(w, tag, err)
				refused = i
				break
			}
			if _, err := br.Exec(); err != nil { // its release
				fail(err, writes[i+1:])
				finish(w, tag, err)
				return
			}
			finish(w, tag, nil)
		}
		if refused < 0 {
			_, err := br.Exec() // the COMMIT
			if cerr := br.Close(); err == nil {
				err = cerr
			}
			g.err = err
			g.conn.Release()
			return
		}
		// After a refusal the statements sent behind it were skipped, the
		// transaction being aborted: roll back to the savepoint, which
		// undoes the refused write alone, and send the rest again.
		_ = br.Close()
		if _, err := g.tx.Exec(ctx, "ROLLBACK TO "+unitSavepoint); err != nil {
			g.broken = true
			for _, w := range writes[refused+1:] {
				finish(w, pgconn.CommandTag{}, err)
			}
			g.err = g.commit()
			return
		}
		g.release = true
		writes = writes[refused+1:]
	}
}

// lane is the lane of ctx's key; with no key, any lane will do, and an
// idle one (where a write runs at once), or else the one with the fewest
// waiting, answers soonest.
func (d *DB) lane(ctx context.Context) *lane {
	if key, ok := ctx.Value(keyContext{}).([]byte); ok {
		return d.lanes[maphash.Bytes(d.seed, key)%uint64(len(d.lanes))]
	}
	start := d.next.Add(1)
	var best *lane
	fewest := 0
	for i := range uint32(len(d.lanes)) {
		l := d.lanes[(start+i)%uint32(len(d.lanes))]
		l.mu.Lock()
		busy, waiting := l.busy, len(l.queue)
		l.mu.Unlock()
		if !busy {
			return l
		}
		if best == nil || waiting < fewest {
			best, fewest = l, waiting
		}
	}
	return best
}

// lane runs one group transaction at a time.
type lane struct {
	db *DB

	mu     sync.Mutex
	busy   bool    // a unit holds the lane, or is committing its group
	queue  []*unit // waiting for the lane, in arrival order
	joined int     // units of the open group so far
}

// group is one transaction and the units that committed into it. Its
// BEGIN goes with the first statement in it, in one round trip.
type group struct {
	conn      *pgxpool.Conn
	tx        pgx.Tx        // nil until a statement began it
	release   bool          // the last unit's savepoint is yet to be released
	broken    bool          // a statement of Writes' other than theirs failed: it commits nothing
	committed bool          // its writes' round trip committed it (err is set, conn released)
	done      chan struct{} // closed when the commit is over
	err       error         // the commit's outcome
}

// commit commits the transaction, if a statement began it, and gives the
// connection back (the pool closes one left in a transaction).
func (g *group) commit() error {
	defer g.conn.Release()
	if g.tx == nil {
		return nil
	}
	if g.broken {
		_ = g.tx.Rollback(context.Background())
		return errBroken
	}
	return g.tx.Commit(context.Background())
}

// errBroken is the commit's outcome for a group whose transaction broke.
var errBroken = errors.New("groupcommit: the group's transaction broke; nothing in it is committed")

// unit is one request's transaction within a group.
type unit struct {
	turn  chan struct{} // closed when the lane is the unit's
	group *group        // the group to join; nil: start one
	write *write        // a Write's, run with those queued behind it; nil: a Begin's
}

func (l *lane) begin(ctx context.Context) (pgx.Tx, error) {
	u := &unit{turn: make(chan struct{})}
	l.mu.Lock()
	if l.busy {
		l.queue = append(l.queue, u)
		l.mu.Unlock()
		select {
		case <-u.turn:
		case <-ctx.Done():
			l.mu.Lock()
			if i := indexOf(l.queue, u); i >= 0 {
				l.queue = append(l.queue[:i], l.queue[i+1:]...)
				l.mu.Unlock()
				return nil, ctx.Err()
			}
			l.mu.Unlock()
			<-u.turn // handed the lane meanwhile: it must be handed on
		}
	} else {
		l.busy = true
		l.mu.Unlock()
	}
	if u.group == nil {
		conn, err := l.db.Pool.Acquire(context.WithoutCancel(ctx))
		if err != nil {
			l.handOn(nil)
			return nil, err
		}
		u.group = &group{conn: conn, done: make(chan struct{})}
		// The group's first unit needs no savepoint: nothing else is in
		// the transaction before it is done, so if it fails, the whole
		// transaction rolls back. Alone, a request so costs a BEGIN, sent
		// with its first statement, and a COMMIT.
		return &unitTx{lane: l, unit: u, first: true}, nil
	}
	return &unitTx{lane: l, unit: u}, nil
}

// handOn passes the lane on after a unit is done with g: to the next
// waiting unit, in g while it has room; else it commits g, answers its
// units, and hands the lane to the next waiting unit for a new group.
func (l *lane) handOn(g *group) { l.handOnAfter(g, 1) }

// handOnAfter is handOn after n units were done with g.
func (l *lane) handOnAfter(g *group, n int) {
	l.mu.Lock()
	if g != nil {
		l.joined += n
	}
	if g != nil && !g.committed && len(l.queue) > 0 && l.joined < l.db.maxUnits {
		next := l.pop()
		next.group = g
		l.mu.Unlock()
		close(next.turn)
		return
	}
	l.joined = 0
	l.mu.Unlock()
	if g != nil {
		if !g.committed {
			g.err = g.commit()
		}
		close(g.done)
	}
	l.mu.Lock()
	if len(l.queue) == 0 {
		l.busy = false
		l.mu.Unlock()
		return
	}
	next := l.pop()
	l.mu.Unlock()
	close(next.turn) // next.group is nil: it starts a new group
}

func (l *lane) pop() *unit {
	u := l.queue[0]
	l.queue = l.queue[1:]
	return u
}

func indexOf(q []*unit, u *unit) int {
	for i, v := range q {
		if v == u {
			return i
		}
	}
	return -1
}

// unitTx is a unit's part of its group's transaction. Past the first unit,
// each sets a savepoint, in the same round trip as its first statement,
// along with the release of the previous unit's: so a unit of one
// statement costs one round trip. Commit waits for the group's commit;
// Rollback undoes the unit alone. Statements run detached from the
// caller's cancellation.
type unitTx struct {
	lane  *lane
	unit  *unit
	first bool // the group's transaction itself, with no savepoint
	saved bool // the unit's savepoint is set
	over  bool
}

// unitSavepoint is every unit's savepoint: a unit's is released before the
// next unit sets its own.
const unitSavepoint = "SAVEPOINT unit"

// prefix is a batch of the statements due before the unit's next one (the
// group's BEGIN, the savepoints' release and set), or nil when none is.
func (t *unitTx) prefix() *pgx.Batch {
	g := t.unit.group
	var b *pgx.Batch
	if g.tx == nil {
		b = &pgx.Batch{}
		b.BeginTx(pgx.TxOptions{})
	}
	if !t.first && !t.saved {
		t.saved = true
		if b == nil {
			b = &pgx.Batch{}
		}
		if g.release {
			g.release = false
			b.Queue("RELEASE " + unitSavepoint)
		}
		b.Queue(unitSavepoint)
	}
	return b
}

// send sends the prefix b with, when sql is not empty, the statement at its
// end, and reads the prefix's results: the batch is left at the statement's.
func (t *unitTx) send(ctx context.Context, b *pgx.Batch, sql string, args []any) (pgx.BatchResults, error) {
	g := t.unit.group
	prefixed := b.Len()
	if sql != "" {
		b.Queue(sql, args...)
	}
	br := g.conn.SendBatch(context.WithoutCancel(ctx), b)
	if tx := br.Tx(); tx != nil {
		g.tx = tx
	}
	for range prefixed {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	return br, nil
}

// flush sends the prefix on its own, before what cannot carry it.
func (t *unitTx) flush(ctx context.Context) error {
	b := t.prefix()
	if b == nil {
		return nil
	}
	br, err := t.send(ctx, b, "", nil)
	if err != nil {
		return err
	}
	return br.Close()
}

func (t *unitTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx = context.WithoutCancel(ctx)
	b := t.prefix()
	if b == nil {
		return t.unit.group.tx.Exec(ctx, sql, args...)
	}
	br, err := t.send(ctx, b, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *unitTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	ctx = context.WithoutCancel(ctx)
	b := t.prefix()
	if b == nil {
		return t.unit.group.tx.Query(ctx, sql, args...)
	}
	br, err := t.send(ctx, b, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *unitTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return rowOf{rows}
}

func (t *unitTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return detachedTx{t.unit.group.tx}.Begin(ctx)
}

func (t *unitTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	return t.unit.group.tx.CopyFrom(context.WithoutCancel(ctx), table, columns, src)
}

func (t *unitTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.flush(ctx); err != nil {
		return errBatch{err}
	}
	return t.unit.group.tx.SendBatch(context.WithoutCancel(ctx), b)
}

func (t *unitTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.unit.group.conn.Conn().Prepare(context.WithoutCancel(ctx), name, sql)
}

// LargeObjects is not for units: they are short writes.
func (t *unitTx) LargeObjects() pgx.LargeObjects {
	panic("groupcommit: large objects in a grouped transaction")
}

func (t *unitTx) Conn() *pgx.Conn { return t.unit.group.conn.Conn() }

func (t *unitTx) Commit(ctx context.Context) error {
	if t.over {
		return pgx.ErrTxClosed
	}
	t.over = true
	g := t.unit.group
	// A savepoint is released with the next unit's first statement, or by
	// the commit.
	g.release = g.release || t.saved
	t.lane.handOn(g)
	<-g.done
	return g.err
}

func (t *unitTx) Rollback(ctx context.Context) error {
	if t.over {
		return pgx.ErrTxClosed
	}
	t.over = true
	g := t.unit.group
	ctx = context.WithoutCancel(ctx)
	var err error
	if t.first {
		if g.tx != nil {
			err = g.tx.Rollback(ctx)
		}
		g.conn.Release()
		t.lane.handOn(nil) // the group is over: the next unit starts one
		return err
	}
	if t.saved {
		// On a broken connection this fails, and so does the group's commit.
		_, err = g.tx.Exec(ctx, "ROLLBACK TO "+unitSavepoint)
		g.release = true
	}
	t.lane.handOn(g)
	return err
}

// batchRows are a statement's rows read from the batch that carried its
// prefix: closing them ends the batch, freeing the connection.
type batchRows struct {
	pgx.Rows
	br       pgx.BatchResults
	closeErr error
	closed   bool
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if !r.closed {
		r.closed = true
		r.closeErr = r.br.Close()
	}
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.closeErr
}

// rowOf is QueryRow's row over Query's rows, as pgx's own is.
type rowOf struct{ rows pgx.Rows }

func (r rowOf) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// errBatch answers err for every statement of a batch never sent.
type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow{b.err} }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil }

// detachedTx runs a transaction's statements detached from the caller's
// cancellation, as do the savepoints it begins.
type detachedTx struct{ pgx.Tx }

func (t detachedTx) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := t.Tx.Begin(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	return detachedTx{tx}, nil
}

func (t detachedTx) Commit(ctx context.Context) error {
	return t.Tx.Commit(context.WithoutCancel(ctx))
}

func (t detachedTx) Rollback(ctx context.Context) error {
	return t.Tx.Rollback(context.WithoutCancel(ctx))
}

func (t detachedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.Tx.Exec(context.WithoutCancel(ctx), sql, args...)
}

func (t detachedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.Tx.Query(context.WithoutCancel(ctx), sql, args...)
}

func (t detachedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.Tx.QueryRow(context.WithoutCancel(ctx), sql, args...)
}

func (t detachedTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return t.Tx.CopyFrom(context.WithoutCancel(ctx), table, columns, src)
}

func (t detachedTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.Tx.SendBatch(context.WithoutCancel(ctx), b)
}
