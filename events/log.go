package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// LogEntry is what the event log keeps of a published event, for a
// customer's history: what happened, to which resource, when and by whom,
// and for an update the names of the fields changed. It holds no data
// values, so no personal data.
type LogEntry struct {
	Subject  string
	Type     string
	Sequence int64
	Time     time.Time
	Actor    Actor
	Changed  []string
}

// LogEntryOf reads the log entry of an event as the outbox stores it (JSON
// structured mode).
func LogEntryOf(stored []byte) (LogEntry, error) {
	var e struct {
		Subject  string          `json:"subject"`
		Type     string          `json:"type"`
		Sequence string          `json:"sequence"`
		Time     time.Time       `json:"time"`
		AuthType string          `json:"authtype"`
		AuthID   string          `json:"authid"`
		Data     json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(stored, &e); err != nil {
		return LogEntry{}, fmt.Errorf("events: log entry: %w", err)
	}
	seq, _ := strconv.ParseInt(e.Sequence, 10, 64)
	var data struct {
		Changed []string `json:"changed"`
	}
	_ = json.Unmarshal(e.Data, &data) // only updates have it; any other data has none
	return LogEntry{
		Subject: e.Subject, Type: e.Type, Sequence: seq, Time: e.Time.UTC(),
		Actor: Actor{Type: e.AuthType, ID: e.AuthID}, Changed: data.Changed,
	}, nil
}
