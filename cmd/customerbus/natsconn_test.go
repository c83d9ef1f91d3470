package main

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/customerbus/customerbus/events/natstest"
)

// A service's connection to a server whose host vanished (nothing closes:
// its packets go nowhere) is given up within a few seconds, so the service
// moves to another server rather than wait on the lost one for minutes.
func TestNATSConnectionToAVanishedServerIsGivenUpWithinSeconds(t *testing.T) {
	t.Parallel()
	line := natstest.New(t).Line()
	core, logs := observer.New(zap.WarnLevel)
	_, closeNATS, err := connectNATS(line.URL(), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer closeNATS()

	time.Sleep(2 * natsPingInterval)
	if logs.Len() > 0 {
		t.Fatalf("answered pings, and the connection was given up: %v", logs.All())
	}
	line.Silence()
	gone := time.Now()
	// Far past the bound, so that a failure says how long it took.
	for logs.FilterMessage("nats disconnected").Len() == 0 && time.Since(gone) < time.Minute {
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(gone)
	t.Logf("connection given up %s after its server went silent", took.Round(time.Millisecond))
	// The first ping unanswered goes within an interval, and the one past
	// the allowed number gives up.
	if want := (natsMaxPingsOut+1)*natsPingInterval + time.Second; took > want {
		t.Errorf("connection given up %s after its server went silent, want within %s", took.Round(time.Millisecond), want)
	}
}
