package main

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/services/customers"
)

// The import and export commands against a real command service: progress
// and a summary on stderr, the file on stdout, a failing exit when rows fail.
func TestImportAndExportCommands(t *testing.T) {
	pool, _ := dbtest.New(t)
	svc := customers.New(pool, zaptest.NewLogger(t), prometheus.NewRegistry(), customers.Config{})
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = svc.RunImports(ctx) }()
	token, err := customers.CreateToken(ctx, pool, "cli", false, customers.Permissions)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUSTOMERBUS_URL", api.URL)
	t.Setenv("CUSTOMERBUS_TOKEN", token)

	path := filepath.Join(t.TempDir(), "customers.csv")
	if err := os.WriteFile(path, []byte("email,first_name\nann@example.com,Ann\nnot an email,X\nbo@example.com,Bo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err = importCommand(ctx, []string{"-quiet", path}, &stderr)
	if !errors.Is(err, errFailedRows) {
		t.Fatalf("import with a bad row: %v, want errFailedRows\n%s", err, stderr.String())
	}
	if out := stderr.String(); !strings.Contains(out, "succeeded") || !strings.Contains(out, "created 2, updated 0, failed 1") || !strings.Contains(out, "row 2: email:") {
		t.Errorf("summary:\n%s", out)
	}

	var stdout bytes.Buffer
	stderr.Reset()
	if err := exportCommand(ctx, []string{"-quiet", "-format", "csv", "-fields", "email,first_name", "order=email"}, &stdout, &stderr); err != nil {
		t.Fatalf("export: %v\n%s", err, stderr.String())
	}
	if got, want := stdout.String(), "email,first_name\r\nann@example.com,Ann\r\nbo@example.com,Bo\r\n"; got != want {
		t.Errorf("export:\n%q\nwant\n%q", got, want)
	}
	if !strings.Contains(stderr.String(), "exported 2 customers") {
		t.Errorf("export summary: %s", stderr.String())
	}
	if err := exportCommand(ctx, []string{"-quiet", "not-a-filter"}, &stdout, &stderr); err == nil {
		t.Error("a filter without = was taken")
	}

	// The export imported again, with upsert: nothing fails, both updated.
	again := filepath.Join(t.TempDir(), "again.csv")
	if err := os.WriteFile(again, stdout.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if err := importCommand(ctx, []string{"-quiet", "-mode", "upsert", again}, &stderr); err != nil {
		t.Fatalf("re-import: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "created 0, updated 2, failed 0") {
		t.Errorf("re-import summary: %s", stderr.String())
	}
}
