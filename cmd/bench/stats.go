package main

import (
	"math"
	"slices"
	"time"
)

type percentiles struct{ p50, p99 time.Duration }

// summarize returns nearest-rank percentiles: p99 of 100 samples is the 99th
// smallest, not the maximum.
func summarize(d []time.Duration) percentiles {
	if len(d) == 0 {
		return percentiles{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		rank := int(math.Ceil(q * float64(len(s))))
		return s[min(max(rank, 1), len(s))-1]
	}
	return percentiles{p50: at(0.50), p99: at(0.99)}
}
