package main

import (
	"math"
	"slices"
	"time"
)

type percentiles struct{ p50, p95, p99 time.Duration }

// summarize returns nearest-rank percentiles: p99 of 100 samples is the 99th
// smallest, not the maximum.
func summarize(d []time.Duration) percentiles {
	if len(d) == 0 {
		return percentiles{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[rank(q, len(s))] }
	return percentiles{p50: at(0.50), p95: at(0.95), p99: at(0.99)}
}

// rank is the index of the nearest-rank q-quantile in n sorted values.
func rank(q float64, n int) int {
	r := int(math.Ceil(q * float64(n)))
	return min(max(r, 1), n) - 1
}
