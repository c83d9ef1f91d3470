package events

// Sequences tells a consumer that reads every event of some resources, in
// the order of their stream, when a resource's sequence jumps: an event
// comes whose sequence is above the one after the highest seen of its
// subject, so the events between are missing. They may have been lost by
// the stream (the relay's reconciler publishes them again, later), erased
// with their customer, deleted by hand, or never published. An event at or
// below the highest seen is no gap: a redelivery, or one published again
// late.
//
// Only a consumer that gets every event of a subject can tell: not one
// filtered to some event types, nor one of several instances that share a
// durable consumer, which each get a part of a resource's events.
//
// It remembers between max/2 and max subjects, the most recently seen: the
// first event of a subject it does not remember sets its mark, so a gap of
// a subject forgotten goes unnoticed and nothing is taken for a gap that
// is not one. It is not safe for concurrent use.
type Sequences struct {
	max       int
	cur, prev map[string]int64 // two generations: prev is dropped when cur is full
}

// NewSequences returns a Sequences that remembers at most max subjects.
func NewSequences(max int) *Sequences {
	return &Sequences{max: max, cur: map[string]int64{}, prev: map[string]int64{}}
}

// See records an event of subject with sequence seq (sequences start at 1;
// one below is no sequence and is ignored), and reports whether it jumps
// past expected, the sequence after the highest seen before.
func (s *Sequences) See(subject string, seq int64) (expected int64, gap bool) {
	if seq < 1 {
		return 0, false
	}
	last, seen := s.cur[subject]
	if !seen {
		last, seen = s.prev[subject]
	}
	s.put(subject, max(last, seq))
	return last + 1, seen && seq > last+1
}

func (s *Sequences) put(subject string, seq int64) {
	s.cur[subject] = seq
	if len(s.cur) >= max(s.max/2, 1) {
		s.prev, s.cur = s.cur, map[string]int64{}
	}
}
