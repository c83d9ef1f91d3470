// Package db owns the PostgreSQL schema (embedded goose migrations), the sqlc
// queries and their generated code (db/gen), and how services connect.
package db

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/customerbus/customerbus/events/tracing"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the embedded migration files, for tools that fingerprint them.
func Migrations() embed.FS { return migrations }

// DefaultConnectTimeout bounds making a connection, from dialling to the
// server's ready, when the URL sets no connect_timeout.
const DefaultConnectTimeout = 10 * time.Second

// Connect opens a pool. Every connection plans each statement with its actual
// parameters: the list queries use "param IS NULL OR ..." filters that only a
// custom plan can fold into index scans. JIT is off: it compiles for the
// planner's cost estimate, not the real work, and cost 70 ms on a count that
// ran 230 ms at 1,000,000 customers; short OLTP queries never win from it.
// Parallel workers are off too: at 10,000,000 customers the planner sent
// them down the created_at index for a page of 21, each worker walking and
// probing ahead of what the Gather Merge took (4,711 probes for 21 rows),
// 27-31 ms against 7.5-11 ms alone; every query of ours reads a bounded
// page or a capped count, so none needs them, and on a busy server they
// only take cores from the other requests.
// Ids are read and written as bytes, see registerUUID. With tracing on,
// each statement of a traced request or handling is a span of its own.
func Connect(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("db: parse url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Without one, a connection to a server that stopped answering
		// (a failover's old address, a dropped route) waits on the
		// kernel's retries for minutes, holding up what needs it.
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	cfg.ConnConfig.RuntimeParams["jit"] = "off"
	cfg.ConnConfig.RuntimeParams["max_parallel_workers_per_gather"] = "0"
	if tracing.Enabled() {
		cfg.ConnConfig.Tracer = otelpgx.NewTracer()
	}
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		registerUUID(conn.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("db: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("db: ping: %w", err)
	}
	return pool, nil
}

// Migrate applies every pending migration. Goose takes a PostgreSQL advisory
// lock, so several instances starting at once migrate only once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	return migrateDB(ctx, sqlDB)
}

func migrateDB(ctx context.Context, sqlDB *sql.DB) error {
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("db: migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("db: migration lock: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, files, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("db: migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("db: migrate: %w", err)
	}
	return nil
}
