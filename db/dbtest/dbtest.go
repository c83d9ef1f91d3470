// Package dbtest gives each test a fresh, migrated PostgreSQL database of its own.
//
// The server comes from TEST_DATABASE_URL (default: the local server on
// 127.0.0.1:5432, database "test"). A template database is migrated once per set of
// migrations (its name carries their hash), and each test clones it, which is far
// faster than migrating every time. Databases are dropped when the test ends.
//
// A test that must kill or restart PostgreSQL runs a server of its own
// (NewCluster), with the programs of the PostgreSQL installed on the machine.
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db"
)

// DefaultURL is used when TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// New returns a pool on a new database migrated to the latest schema, and its URL.
func New(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	adminURL := os.Getenv("TEST_DATABASE_URL")
	if adminURL == "" {
		adminURL = DefaultURL
	}
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("dbtest: connect to %s (set TEST_DATABASE_URL): %v", adminURL, err)
	}
	defer admin.Close(ctx)

	template := "cbtmpl_" + migrationsHash(t)
	if err := ensureTemplate(ctx, admin, adminURL, template); err != nil {
		t.Fatalf("dbtest: template: %v", err)
	}

	name := "cbtest_" + randomSuffix()
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, template)); err != nil {
		t.Fatalf("dbtest: create database: %v", err)
	}
	dbURL := withDatabase(t, adminURL, name)
	pool, err := db.Connect(ctx, dbURL, 0)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Logf("dbtest: drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Logf("dbtest: drop %s: %v", name, err)
		}
	})
	return pool, dbURL
}

// ensureTemplate creates and migrates the template once; concurrent test
// binaries serialise on an advisory lock so only one of them builds it.
func ensureTemplate(ctx context.Context, admin *pgx.Conn, adminURL, template string) error {
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(727274)"); err != nil {
		return err
	}
	defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock(727274)") //nolint:errcheck

	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", template).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := template + "_build"
	if _, err := admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", building)); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s", building)); err != nil {
		return err
	}
	buildURL, err := replaceDatabase(adminURL, building)
	if err != nil {
		return err
	}
	pool, err := db.Connect(ctx, buildURL, 2)
	if err != nil {
		return err
	}
	err = db.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	// Renamed only when complete, so a crash never leaves a half-migrated template.
	_, err = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, template))
	return err
}

func migrationsHash(t testing.TB) string {
	h := sha256.New()
	err := fs.WalkDir(db.Migrations(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(db.Migrations(), path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatalf("dbtest: hash migrations: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func withDatabase(t testing.TB, adminURL, name string) string {
	out, err := replaceDatabase(adminURL, name)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return out
}

func replaceDatabase(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("TEST_DATABASE_URL must be a postgres:// URL: %q", raw)
	}
	u.Path = "/" + name
	return u.String(), nil
}
