// Package idempotency keeps the answers to POST requests sent with an
// Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header), so that
// a client retrying after a timeout gets the first answer instead of making
// a second change.
package idempotency

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db/gen"
)

// Retention is how long an answer is kept: a day, as Stripe does.
const Retention = 24 * time.Hour

// StaleAfter is when an unfinished claim belongs to a request that died
// (the HTTP server ends every request within a minute): a retry takes it
// over and runs, rather than being refused for a day. Its first run may
// have committed, so in that crash window the change can happen twice.
const StaleAfter = 2 * time.Minute

// Errors of a repeated key.
var (
	// ErrReused: the key came with another request (method, path or body).
	ErrReused = errors.New("idempotency key used for another request")
	// ErrInProgress: the first request with the key has not finished.
	ErrInProgress = errors.New("a request with this idempotency key is in progress")
)

// Response is a kept answer.
type Response struct {
	Status      int
	ContentType string
	Location    string
	Body        []byte
}

// Keys claims keys and keeps answers.
type Keys struct{ q *gen.Queries }

// New returns Keys on the pool.
func New(pool *pgxpool.Pool) *Keys { return &Keys{q: gen.New(pool)} }

// Fingerprint identifies a request: a key may only be repeated with the same.
func Fingerprint(method, path string, body []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", method, path)
	h.Write(body)
	return h.Sum(nil)
}

// Claim makes the caller the first request with the key, or returns the
// kept answer of the first one (ErrInProgress while it runs, ErrReused when
// it was another request).
func (k *Keys) Claim(ctx context.Context, owner, key string, fingerprint []byte) (*Response, error) {
	now := time.Now()
	if err := k.q.DeleteIdempotencyKeyBefore(ctx, gen.DeleteIdempotencyKeyBeforeParams{Owner: owner, Key: key, CreatedAt: now.Add(-Retention)}); err != nil {
		return nil, fmt.Errorf("idempotency: expire: %w", err)
	}
	n, err := k.q.ClaimIdempotencyKey(ctx, gen.ClaimIdempotencyKeyParams{Owner: owner, Key: key, Fingerprint: fingerprint, CreatedAt: now})
	if err != nil {
		return nil, fmt.Errorf("idempotency: claim: %w", err)
	}
	if n == 1 {
		// Sweep a few expired keys of anyone, so the table stays bounded.
		if err := k.q.DeleteExpiredIdempotencyKeys(ctx, now.Add(-Retention)); err != nil {
			return nil, fmt.Errorf("idempotency: sweep: %w", err)
		}
		return nil, nil
	}
	row, err := k.q.GetIdempotencyKey(ctx, gen.GetIdempotencyKeyParams{Owner: owner, Key: key})
	if errors.Is(err, pgx.ErrNoRows) { // released meanwhile: the caller may try again
		return nil, ErrInProgress
	}
	if err != nil {
		return nil, fmt.Errorf("idempotency: read: %w", err)
	}
	switch {
	case string(row.Fingerprint) != string(fingerprint):
		return nil, ErrReused
	case row.Status == nil:
		taken, err := k.q.TakeOverIdempotencyKey(ctx, gen.TakeOverIdempotencyKeyParams{Owner: owner, Key: key, Now: now, StaleBefore: now.Add(-StaleAfter)})
		if err != nil {
			return nil, fmt.Errorf("idempotency: take over: %w", err)
		}
		if taken == 1 {
			return nil, nil
		}
		return nil, ErrInProgress
	}
	return &Response{Status: int(*row.Status), ContentType: row.ContentType, Location: row.Location, Body: row.Body}, nil
}

// Finish keeps the first request's answer.
func (k *Keys) Finish(ctx context.Context, owner, key string, r Response) error {
	status := int32(r.Status)
	if err := k.q.FinishIdempotencyKey(ctx, gen.FinishIdempotencyKeyParams{
		Owner: owner, Key: key, Status: &status, ContentType: r.ContentType, Location: r.Location, Body: r.Body,
	}); err != nil {
		return fmt.Errorf("idempotency: keep answer: %w", err)
	}
	return nil
}

// Release forgets a claim whose request failed on the server's side.
func (k *Keys) Release(ctx context.Context, owner, key string) error {
	if err := k.q.ReleaseIdempotencyKey(ctx, gen.ReleaseIdempotencyKeyParams{Owner: owner, Key: key}); err != nil {
		return fmt.Errorf("idempotency: release: %w", err)
	}
	return nil
}
