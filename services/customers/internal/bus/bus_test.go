package bus

import (
	"fmt"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
)

// A Config made in code gets the defaults the environment gives, and any
// AckWait and PinnedTTL are taken so that the commands a dead reader held
// are due again at least a second before its pin can pass to another
// instance, with pulls that renew the pin well within it.
func TestConfigDefaultsKeepADeadReadersCommandsFirst(t *testing.T) {
	fromEnv, err := env.ParseAsWithOptions[Config](env.Options{Environment: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	fromEnv.StreamReplicas = 0 // taken as 1 by events.EnsureStream
	if got := (Config{}).WithDefaults(); got != fromEnv {
		t.Errorf("Config{}.WithDefaults() = %+v, want the environment's defaults %+v", got, fromEnv)
	}
	durations := []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 30 * time.Second, time.Minute, 10 * time.Minute}
	for _, ackWait := range durations {
		for _, pinnedTTL := range durations {
			c := Config{AckWait: ackWait, PinnedTTL: pinnedTTL}.WithDefaults()
			t.Run(fmt.Sprintf("AckWait=%s,PinnedTTL=%s", ackWait, pinnedTTL), func(t *testing.T) {
				if m := c.pinMargin(); m < time.Second {
					t.Errorf("taken as AckWait %s, PinnedTTL %s: pinMargin %s, want at least 1s", c.AckWait, c.PinnedTTL, m)
				}
				if e := c.pullExpiry(); e < time.Second || e > c.PinnedTTL/2 {
					t.Errorf("taken as PinnedTTL %s: pullExpiry %s, want between 1s and half of it", c.PinnedTTL, e)
				}
			})
		}
	}
}
