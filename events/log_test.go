package events

import (
	"slices"
	"testing"
	"time"
)

func TestLogEntryOfReadsWhatAHistoryShows(t *testing.T) {
	at := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, event string
		changed     []string
	}{
		{"an update", `{"subject":"c1","type":"customer.updated","sequence":"7","time":"2026-12-02T08:00:00+01:00","authtype":"user","authid":"u1","data":{"customer":{"changed":["x"]},"changed":["email","first_name"]}}`, []string{"email", "first_name"}},
		{"data without changed", `{"subject":"c1","type":"customer.updated","sequence":"7","time":"2026-12-02T07:00:00Z","authtype":"user","authid":"u1","data":{"customer":{}}}`, nil},
		{"data not an object", `{"subject":"c1","type":"customer.updated","sequence":"7","time":"2026-12-02T07:00:00Z","authtype":"user","authid":"u1","data":"text"}`, nil},
		{"changed not names", `{"subject":"c1","type":"customer.updated","sequence":"7","time":"2026-12-02T07:00:00Z","authtype":"user","authid":"u1","data":{"changed":{"a":1}}}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := LogEntryOf([]byte(tc.event))
			if err != nil {
				t.Fatal(err)
			}
			want := LogEntry{Subject: "c1", Type: "customer.updated", Sequence: 7, Time: at, Actor: Actor{Type: "user", ID: "u1"}, Changed: tc.changed}
			if e.Subject != want.Subject || e.Type != want.Type || e.Sequence != want.Sequence || !e.Time.Equal(want.Time) || e.Time.Location() != time.UTC ||
				e.Actor != want.Actor || !slices.Equal(e.Changed, want.Changed) {
				t.Errorf("got %+v, want %+v", e, want)
			}
		})
	}
	if _, err := LogEntryOf([]byte(`{"type":`)); err == nil {
		t.Error("a broken event was read")
	}
}
