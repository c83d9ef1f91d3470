package store

import (
	"context"
	"fmt"
	"time"
)

// Sweep deletes one-time tokens that expired before tokensBefore, and
// sessions and begun OIDC sign-ins that ended before sessionsBefore, in batches so that no statement
// holds locks for long. It returns how many of each it deleted.
func (s *Store) Sweep(ctx context.Context, tokensBefore, sessionsBefore time.Time) (tokens, sessions int64, err error) {
	if tokens, err = drain(ctx, tokensBefore, s.q.SweepCustomerTokens); err != nil {
		return tokens, 0, fmt.Errorf("store: sweep tokens: %w", err)
	}
	if sessions, err = drain(ctx, sessionsBefore, s.q.SweepCustomerSessions); err != nil {
		return tokens, sessions, fmt.Errorf("store: sweep sessions: %w", err)
	}
	// Begun sign-ins past their expiry: a callback refuses them anyway.
	if _, err = drain(ctx, sessionsBefore, s.q.SweepOIDCAuthRequests); err != nil {
		return tokens, sessions, fmt.Errorf("store: sweep sign-ins: %w", err)
	}
	return tokens, sessions, nil
}

// SweepCommands forgets the bus commands processed, and the order keys last
// used, before the given time.
func (s *Store) SweepCommands(ctx context.Context, before time.Time) (int64, error) {
	commands, err := drain(ctx, before, s.q.SweepProcessedCommands)
	if err != nil {
		return commands, fmt.Errorf("store: sweep processed commands: %w", err)
	}
	if _, err := drain(ctx, before, s.q.SweepCommandOrder); err != nil {
		return commands, fmt.Errorf("store: sweep command order: %w", err)
	}
	return commands, nil
}

// drain runs a batch delete until it deletes nothing.
func drain(ctx context.Context, before time.Time, batch func(context.Context, time.Time) (int64, error)) (int64, error) {
	var total int64
	for {
		n, err := batch(ctx, before)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}
