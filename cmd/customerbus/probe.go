package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// probeTimeout bounds one probe: a health check that hangs tells nothing.
const probeTimeout = 3 * time.Second

// probeCommand GETs url and fails unless it answers 2xx. It is the health
// check of containers that have nothing but this binary (the image is
// distroless: no shell, curl or wget), as docker compose runs them; an
// orchestrator that probes over HTTP itself (Kubernetes) does not need it.
func probeCommand(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: customerbus probe URL (e.g. http://127.0.0.1:8080/readyz)")
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("probe %s: %s: %s", args[0], resp.Status, body)
	}
	return nil
}
