package main

import (
	"context"
	"errors"
	"fmt"
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

// runPaced starts op at rate a second for d, each in a goroutine of its own
// (at most maxInFlight at once: past that the service is saturated and the
// run is void), and returns every result.
func runPaced[T any](ctx context.Context, rate float64, d time.Duration, maxInFlight int, op func(n int64) (T, error)) ([]T, error) {
	var (
		mu       sync.Mutex
		results  []T
		firstErr error
		wg       sync.WaitGroup
	)
	slots := make(chan struct{}, maxInFlight)
	start := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if at.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(at))
		select {
		case slots <- struct{}{}:
		default:
			wg.Wait()
			return nil, fmt.Errorf("more than %d calls in flight at %.0f/s: %w", maxInFlight, rate, errFallsBehind)
		}
		wg.Go(func() {
			defer func() { <-slots }()
			res, err := op(seq.Add(1))
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			results = append(results, res)
		})
	}
	wg.Wait()
	return results, firstErr
}

// errFallsBehind: a paced load's calls pile up, the rate being more than
// what is measured can take.
var errFallsBehind = errors.New("it cannot keep up")
