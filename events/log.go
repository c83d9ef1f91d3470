package events

import (
	"encoding/json"
	"errors"
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
	// One pass over the event, data included: the relay reads every event
	// it publishes this way.
	var e struct {
		Subject  string    `json:"subject"`
		Type     string    `json:"type"`
		Sequence string    `json:"sequence"`
		Time     time.Time `json:"time"`
		AuthType string    `json:"authtype"`
		AuthID   string    `json:"authid"`
		Data     struct {
			Changed []string `json:"changed"` // only updates have it
		} `json:"data"`
	}
	// A value of another type (data that is not an object, changed that is
	// not a list of names) is left out and the rest is read.
	var wrongType *json.UnmarshalTypeError
	if err := json.Unmarshal(stored, &e); err != nil && !errors.As(err, &wrongType) {
		return LogEntry{}, fmt.Errorf("events: log entry: %w", err)
	}
	seq, _ := strconv.ParseInt(e.Sequence, 10, 64)
	return LogEntry{
		Subject: e.Subject, Type: e.Type, Sequence: seq, Time: e.Time.UTC(),
		Actor: Actor{Type: e.AuthType, ID: e.AuthID}, Changed: e.Data.Changed,
	}, nil
}
