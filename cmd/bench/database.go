package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// freshDatabase creates an empty database on the admin URL's server and returns
// its URL and a function that drops it. The drop runs on a context of its own,
// so it still works after Ctrl-C has cancelled ctx.
func freshDatabase(ctx context.Context, adminURL, name string) (string, func(), error) {
	dbURL, err := replaceDatabase(adminURL, name)
	if err != nil {
		return "", nil, err
	}
	if err := adminExec(ctx, adminURL, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE: a pool we failed to close must not keep the database alive.
		if err := adminExec(ctx, adminURL, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			fmt.Printf("WARNING: could not drop database %s: %v\n", name, err)
		}
	}
	return dbURL, drop, nil
}

// adminExec runs one statement on a short-lived admin connection; holding one
// open for the whole run would only be an idle session to lose.
func adminExec(ctx context.Context, adminURL, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect admin: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// replaceDatabase swaps the database name in a postgres:// URL, keeping the
// credentials and query parameters (sslmode and the like) as given.
func replaceDatabase(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("BENCH_DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freshSystem starts the system on a fresh database (the case's name) with
// one client; stop closes the system, then drops the database.
func freshSystem(ctx context.Context, adminURL, name string, opt options) (sys *system, dbURL string, stop func(), err error) {
	dbURL, drop, err := freshDatabase(ctx, adminURL, name)
	if err != nil {
		return nil, "", nil, err
	}
	if sys, err = startSystem(ctx, dbURL, opt.dbConns, 1); err != nil {
		drop()
		return nil, "", nil, err
	}
	return sys, dbURL, func() { sys.close(); drop() }, nil
}
