package main

import (
	"slices"
	"time"
)

type percentiles struct{ p50, p99 time.Duration }

func summarize(d []time.Duration) percentiles {
	if len(d) == 0 {
		return percentiles{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return percentiles{p50: at(0.50), p99: at(0.99)}
}
