package events_test

import (
	"testing"

	"github.com/customerbus/customerbus/events"
)

// A jump past the next sequence of a subject is a gap; the first event of a
// subject, a repeat, an older one and one without a sequence are not; a
// subject forgotten to keep the memory bounded starts afresh.
func TestSequencesTellAGapFromARedeliveryOrALateEvent(t *testing.T) {
	type see struct {
		subject  string
		seq      int64
		gap      bool
		expected int64 // when gap
	}
	cases := []struct {
		name string
		max  int
		seen []see
	}{
		{"in order", 10, []see{{"a", 1, false, 0}, {"a", 2, false, 0}, {"a", 3, false, 0}}},
		{"first seen mid-way", 10, []see{{"a", 7, false, 0}, {"a", 8, false, 0}}},
		{"a jump", 10, []see{{"a", 1, false, 0}, {"a", 2, false, 0}, {"a", 5, true, 3}, {"a", 6, false, 0}}},
		{"redelivered and late", 10, []see{{"a", 1, false, 0}, {"a", 3, true, 2}, {"a", 3, false, 0}, {"a", 2, false, 0}, {"a", 1, false, 0}, {"a", 4, false, 0}}},
		{"subjects apart", 10, []see{{"a", 1, false, 0}, {"b", 5, false, 0}, {"a", 2, false, 0}, {"b", 7, true, 6}}},
		{"no sequence", 10, []see{{"a", 1, false, 0}, {"a", 0, false, 0}, {"a", 2, false, 0}}},
		// With room for 4, "a" is forgotten once 4 others came after it.
		{"forgotten", 4, []see{{"a", 1, false, 0}, {"b", 1, false, 0}, {"c", 1, false, 0}, {"d", 1, false, 0}, {"e", 1, false, 0}, {"a", 5, false, 0}}},
		{"remembered when seen lately", 4, []see{{"a", 1, false, 0}, {"b", 1, false, 0}, {"a", 2, false, 0}, {"c", 1, false, 0}, {"d", 1, false, 0}, {"a", 4, true, 3}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := events.NewSequences(c.max)
			for i, e := range c.seen {
				expected, gap := s.See(e.subject, e.seq)
				if gap != e.gap || (gap && expected != e.expected) {
					t.Errorf("event %d (%s %d): gap %v, expected %d; want gap %v, expected %d", i, e.subject, e.seq, gap, expected, e.gap, e.expected)
				}
			}
		})
	}
}
