package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// seq numbers every operation of the run, which keeps emails unique across
// warm-ups, windows and concurrency levels on the same database.
var seq atomic.Int64

// runWorkers runs c goroutines calling op back to back for d (or until ctx
// ends), and returns the results of the calls that finished inside the
// window. A call in flight when the window closes is let finish, uncounted,
// so no transaction is cut short. The first error ends the run.
func runWorkers[T any](ctx context.Context, c int, d time.Duration, op func(n int64) (T, error)) ([]T, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	results := make([][]T, c)
	errs := make([]error, c)
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				res, err := op(seq.Add(1))
				if err != nil {
					errs[w] = err
					cancel() // the others stop too: the case is void anyway
					return
				}
				if ctx.Err() == nil {
					results[w] = append(results[w], res)
				}
			}
		})
	}
	wg.Wait()
	var all []T
	for w := range c {
		if errs[w] != nil {
			return nil, errs[w]
		}
		all = append(all, results[w]...)
	}
	return all, nil
}
