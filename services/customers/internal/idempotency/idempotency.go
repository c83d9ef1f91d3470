// Package idempotency keeps the answers to POST requests sent with an
// Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header), so that
// a client retrying after a timeout gets the first answer instead of making
// a second change.
//
// A request with a key runs in one transaction that also holds the key's
// record: the answer commits with the change it answers, or neither does.
// So a retry after any crash gets the first answer at once (the change
// committed) or runs afresh (it did not); and a retry while the first
// request runs waits for it on the record's row, then gets its answer.
package idempotency

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db/gen"
)

// Retention is how long an answer is kept: a day, as Stripe does.
const Retention = 24 * time.Hour

// Wait is how long a retry waits for the first request with its key
// before it is told to come back.
const Wait = 5 * time.Second

// legacyStaleAfter is when a record without an answer, written by a
// version before answers committed with their changes (during a rolling
// upgrade), belongs to a request that died: it is taken over.
const legacyStaleAfter = 2 * time.Minute

// Errors of a repeated key.
var (
	// ErrReused: the key came with another request (method, path or body).
	ErrReused = errors.New("idempotency key used for another request")
	// ErrInProgress: the first request with the key has not finished
	// within Wait.
	ErrInProgress = errors.New("a request with this idempotency key is in progress")
)

// Response is a kept answer.
type Response struct {
	Status      int
	ContentType string
	Location    string
	Body        []byte
}

// Kept reports whether an answer is kept for retries: failures on the
// server's side and rate limits are not, and their changes roll back, so
// a retry runs afresh.
func (r Response) Kept() bool {
	return r.Status < http.StatusInternalServerError && r.Status != http.StatusTooManyRequests
}

// Keys runs requests once per key.
type Keys struct{ pool *pgxpool.Pool }

// New returns Keys on the pool.
func New(pool *pgxpool.Pool) *Keys { return &Keys{pool: pool} }

// Fingerprint identifies a request: a key may only be repeated with the same.
func Fingerprint(method, path string, body []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", method, path)
	h.Write(body)
	return h.Sum(nil)
}

// Run runs the first request with the key: fn, in the transaction that
// records the key, makes the change and answers; its answer is recorded
// and commits with the change when it is Kept, else everything rolls back.
// A repeat gets the recorded answer (replayed true) without running fn;
// ErrReused when the key came with another request, ErrInProgress when the
// first still runs after Wait.
func (k *Keys) Run(ctx context.Context, owner, key string, fingerprint []byte, fn func(tx pgx.Tx) Response) (r Response, replayed bool, err error) {
	for attempt := 0; ; attempt++ {
		r, replayed, err = k.run(ctx, owner, key, fingerprint, fn)
		if !errors.Is(err, errTakenOver) || attempt > 0 {
			return r, replayed, err
		}
	}
}

// errTakenOver: a stale legacy record was removed; run again.
var errTakenOver = errors.New("idempotency: stale record removed")

func (k *Keys) run(ctx context.Context, owner, key string, fingerprint []byte, fn func(tx pgx.Tx) Response) (r Response, replayed bool, err error) {
	tx, err := k.pool.Begin(ctx)
	if err != nil {
		return r, false, fmt.Errorf("idempotency: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit, a no-op
	q := gen.New(tx)
	now := time.Now()
	// A second request with the key waits here, on the first one's
	// uncommitted record, for at most Wait.
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", Wait.Milliseconds())); err != nil {
		return r, false, fmt.Errorf("idempotency: lock timeout: %w", err)
	}
	if err := q.DeleteIdempotencyKeyBefore(ctx, gen.DeleteIdempotencyKeyBeforeParams{Owner: owner, Key: key, CreatedAt: now.Add(-Retention)}); err != nil {
		return r, false, inProgressOr(fmt.Errorf("idempotency: expire: %w", err))
	}
	n, err := q.ClaimIdempotencyKey(ctx, gen.ClaimIdempotencyKeyParams{Owner: owner, Key: key, Fingerprint: fingerprint, CreatedAt: now})
	if err != nil {
		return r, false, inProgressOr(fmt.Errorf("idempotency: claim: %w", err))
	}
	if n == 0 {
		row, err := q.GetIdempotencyKey(ctx, gen.GetIdempotencyKeyParams{Owner: owner, Key: key})
		if errors.Is(err, pgx.ErrNoRows) { // expired or released meanwhile
			return r, false, ErrInProgress
		}
		if err != nil {
			return r, false, fmt.Errorf("idempotency: read: %w", err)
		}
		switch {
		case string(row.Fingerprint) != string(fingerprint):
			return r, false, ErrReused
		case row.Status == nil && row.CreatedAt.Before(now.Add(-legacyStaleAfter)):
			if err := q.ReleaseIdempotencyKey(ctx, gen.ReleaseIdempotencyKeyParams{Owner: owner, Key: key}); err != nil {
				return r, false, fmt.Errorf("idempotency: take over: %w", err)
			}
			if err := tx.Commit(ctx); err != nil {
				return r, false, fmt.Errorf("idempotency: take over: %w", err)
			}
			return r, false, errTakenOver
		case row.Status == nil:
			return r, false, ErrInProgress
		}
		return Response{Status: int(*row.Status), ContentType: row.ContentType, Location: row.Location, Body: row.Body}, true, nil
	}
	// fn runs in a savepoint: a statement of a refused request that failed
	// (a unique email, say) aborts the savepoint, not the record's
	// transaction. A refusal's savepoint may be rolled back: it changes
	// nothing. A success's must release, or nothing commits.
	sp, err := tx.Begin(ctx)
	if err != nil {
		return r, false, fmt.Errorf("idempotency: savepoint: %w", err)
	}
	r = fn(sp)
	if !r.Kept() {
		return r, false, nil // rolled back by the deferred Rollback
	}
	end := sp.Commit
	if tx.Conn().PgConn().TxStatus() == 'E' { // a statement failed: the savepoint is aborted
		if r.Status < http.StatusBadRequest {
			return r, false, errors.New("idempotency: a statement of a successful request failed; nothing is kept")
		}
		end = sp.Rollback
	}
	if err := end(ctx); err != nil {
		return r, false, fmt.Errorf("idempotency: savepoint: %w", err)
	}
	status := int32(r.Status)
	if err := q.FinishIdempotencyKey(ctx, gen.FinishIdempotencyKeyParams{
		Owner: owner, Key: key, Status: &status, ContentType: r.ContentType, Location: r.Location, Body: r.Body,
	}); err != nil {
		return r, false, fmt.Errorf("idempotency: keep answer: %w", err)
	}
	// Sweep a few expired keys of anyone, so the table stays bounded.
	if err := q.DeleteExpiredIdempotencyKeys(ctx, now.Add(-Retention)); err != nil {
		return r, false, fmt.Errorf("idempotency: sweep: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return r, false, fmt.Errorf("idempotency: commit: %w", err)
	}
	return r, false, nil
}

// inProgressOr is ErrInProgress when err is the lock timeout: the first
// request holds the key's record longer than Wait.
func inProgressOr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
		return ErrInProgress
	}
	return err
}
