package db_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/customerbus/customerbus/db"
)

// A server that accepts connections and never answers (what a failover's
// old address can look like) fails Connect after DefaultConnectTimeout,
// rather than holding the caller for as long as the kernel retries.
func TestConnectGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // held open, silent
		}
	}()

	start := time.Now()
	pool, err := db.Connect(context.Background(), "postgres://postgres@"+ln.Addr().String()+"/test?sslmode=disable", 1)
	took := time.Since(start)
	if err == nil {
		pool.Close()
		t.Fatal("Connect to a silent server succeeded")
	}
	if took < db.DefaultConnectTimeout-time.Second || took > db.DefaultConnectTimeout+5*time.Second {
		t.Errorf("Connect gave up after %v, want about %v (%v)", took, db.DefaultConnectTimeout, err)
	}
}
