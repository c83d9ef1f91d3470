package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/gen"
)

// The relay's advisory locks (a lane's, the reconciler's) each live as long
// as the transaction that took it. A relay that hangs holding one (stopped
// by SIGSTOP, a frozen VM or container, a debugger) keeps its connection,
// and so its transaction and the lock, for as long as it hangs: every other
// relay would wait. So each such transaction has PostgreSQL end it once it
// sits idle between statements, or has a result sent to a relay that takes
// none of it, for longer than lockIdleTimeout: a hung relay loses the lock
// within seconds, and, its session gone, writes nothing when it resumes.
// A healthy relay is never idle that long: it
// publishes for at most PublishTimeout, and its longer work between
// statements (reading or deleting many messages) renews the lease.

// lockIdleMargin is how much longer than PublishTimeout a transaction
// holding a lock may sit idle before PostgreSQL ends it: what a healthy
// relay does between statements besides publishing (pauses for garbage
// collection or for want of CPU) takes far less.
const lockIdleMargin = time.Second

// lockIdleTimeout is how long a transaction holding a lock may sit idle
// between statements.
func (r *Relay) lockIdleTimeout() time.Duration { return r.cfg.PublishTimeout + lockIdleMargin }

// beginLocking begins a transaction to take a lock in, which PostgreSQL
// ends once it sits idle for longer than lockIdleTimeout.
func (r *Relay) beginLocking(ctx context.Context) (pgx.Tx, *gen.Queries, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	q := r.q.WithTx(tx)
	if err := q.SetIdleTimeout(ctx, int32(r.lockIdleTimeout().Milliseconds())); err != nil {
		_ = tx.Rollback(ctx)
		return nil, nil, fmt.Errorf("idle timeout: %w", err)
	}
	return tx, q, nil
}

// beginTryLock begins a transaction as beginLocking does and tries to take
// the lock key in it, in the same round trip as the idle timeout. When
// locked is false the transaction is rolled back already.
func (r *Relay) beginTryLock(ctx context.Context, key int64) (tx pgx.Tx, q *gen.Queries, locked bool, err error) {
	if tx, err = r.pool.Begin(ctx); err != nil {
		return nil, nil, false, fmt.Errorf("begin: %w", err)
	}
	q = r.q.WithTx(tx)
	res, err := q.TryRelayLockIdleAfter(ctx, gen.TryRelayLockIdleAfterParams{IdleMs: int32(r.lockIdleTimeout().Milliseconds()), LockKey: key})
	if err != nil || !res.Locked {
		_ = tx.Rollback(ctx)
		if err != nil {
			err = fmt.Errorf("lock: %w", err)
		}
		return nil, nil, false, err
	}
	return tx, q, true, nil
}

// lease keeps a transaction that holds the lock key from looking hung
// while the relay works between statements for longer than the idle
// timeout allows.
type lease struct {
	q       *gen.Queries
	key     int64
	renewed time.Time
}

// renew runs a statement in the transaction (it takes the lock again, which
// it holds already) when the last renewal is half a lockIdleMargin old.
// It fails once PostgreSQL has ended the transaction: the lock may be
// another relay's by then, and the work must stop.
func (l *lease) renew(ctx context.Context) error {
	if time.Since(l.renewed) < lockIdleMargin/2 {
		return nil
	}
	if _, err := l.q.TryRelayLock(ctx, l.key); err != nil {
		return fmt.Errorf("lock lost: %w", err)
	}
	l.renewed = time.Now()
	return nil
}
