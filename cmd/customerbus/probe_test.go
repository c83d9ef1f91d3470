package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestProbeFailsUnlessTheURLAnswers2xx(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
	}))
	defer srv.Close()
	if err := probeCommand(context.Background(), []string{srv.URL + "/readyz"}); err != nil {
		t.Fatalf("a ready service: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := probeCommand(context.Background(), []string{srv.URL + "/readyz"}); err == nil {
		t.Fatal("a service answering 503 passed the probe")
	}
	srv.Close()
	if err := probeCommand(context.Background(), []string{srv.URL + "/readyz"}); err == nil {
		t.Fatal("a service that is gone passed the probe")
	}
	if err := probeCommand(context.Background(), nil); err == nil {
		t.Fatal("no URL passed the probe")
	}
}
