package events

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
)

// traceParentRE is a W3C trace context traceparent of version 00.
var traceParentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// ValidTraceParent reports whether s is a W3C traceparent (version 00) whose
// trace and parent ids are not all zeros, as the spec requires.
func ValidTraceParent(s string) bool {
	return traceParentRE.MatchString(s) &&
		s[3:35] != strings.Repeat("0", 32) && s[36:52] != strings.Repeat("0", 16)
}

// NewTraceParent starts a new sampled trace with random ids.
func NewTraceParent() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return traceParentOf(b[:])
}

// TraceParentFor is the traceparent of a message that arrived without a valid
// one: its own when valid, else a new trace derived from the message's id, so
// every delivery and retry of the same command lands in the same trace.
func TraceParentFor(traceParent, id string) string {
	if ValidTraceParent(traceParent) {
		return traceParent
	}
	sum := sha256.Sum256([]byte("customerbus trace " + id))
	return traceParentOf(sum[:24])
}

// traceParentOf makes a sampled traceparent of 16 bytes of trace id and 8 of
// parent id.
func traceParentOf(b []byte) string {
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:24]) + "-01"
}

// StoredTraceParent reads the traceparent of an event as the outbox stores
// it (JSON structured mode); "" when it has none.
func StoredTraceParent(stored []byte) string {
	var e struct {
		TraceParent string `json:"traceparent"`
	}
	_ = json.Unmarshal(stored, &e) // a broken event has none
	return e.TraceParent
}
