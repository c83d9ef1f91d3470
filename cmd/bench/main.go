// Command bench measures the customer create path end to end, side by side
// with its floor: the same two INSERTs (customer + outbox) in one transaction
// straight through pgx, at the same concurrency, in the same run.
//
// It starts everything it measures in this process, on databases and a NATS
// server of its own: the command service over HTTP, the relay, and a JetStream
// consumer that times each customer.created from commit to receipt.
//
//	BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres go run ./cmd/bench
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "measured time per case")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured time before each case")
	levels := flag.String("concurrency", "1,8,32", "comma-separated concurrency levels")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *duration, *warmup, *levels); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1) //nolint:gocritic // the profile of a failed run is not wanted
	}
}

func run(ctx context.Context, duration, warmup time.Duration, levels string) error {
	adminURL := os.Getenv("BENCH_DATABASE_URL")
	if adminURL == "" {
		return fmt.Errorf("BENCH_DATABASE_URL is required (an admin database URL)")
	}
	var concurrency []int
	for _, s := range strings.Split(levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad concurrency %q", s)
		}
		concurrency = append(concurrency, n)
	}

	suffix := randomHex(4)
	apiDB, dropAPI, err := freshDatabase(ctx, adminURL, "cbbench_"+suffix+"_api")
	if err != nil {
		return err
	}
	defer dropAPI()
	baseDB, dropBase, err := freshDatabase(ctx, adminURL, "cbbench_"+suffix+"_base")
	if err != nil {
		return err
	}
	defer dropBase()

	sys, err := startSystem(ctx, apiDB)
	if err != nil {
		return err
	}
	defer sys.close()
	base, err := newBaseline(ctx, baseDB, sys.poolSize)
	if err != nil {
		return err
	}
	defer base.close()

	fmt.Printf("GOMAXPROCS %d, CPUs %d, %s per case after %s warm-up, DB pool %d\n\n",
		runtime.GOMAXPROCS(0), runtime.NumCPU(), duration, warmup, sys.poolSize)
	var rows []row
	for _, c := range concurrency {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ours, err := sys.measure(ctx, c, warmup, duration)
		if err != nil {
			return err
		}
		baseline, err := base.measure(ctx, c, warmup, duration)
		if err != nil {
			return err
		}
		rows = append(rows, row{c, ours, baseline})
		fmt.Fprintf(os.Stderr, "concurrency %d done\n", c)
	}
	printTable(rows)
	return nil
}

type row struct {
	concurrency int
	ours        apiResult
	base        baseResult
}

func printTable(rows []row) {
	fmt.Println("| concurrency | ours created/s | call p50 | call p99 | commit→event p50 | commit→event p99 | baseline tx/s | baseline p50 | baseline p99 | ours / baseline |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %d | %.0f | %s | %s | %s | %s | %.0f | %s | %s | %.0f%% |\n",
			r.concurrency, r.ours.rate, ms(r.ours.call.p50), ms(r.ours.call.p99), ms(r.ours.event.p50), ms(r.ours.event.p99),
			r.base.rate, ms(r.base.lat.p50), ms(r.base.lat.p99), 100*r.ours.rate/r.base.rate)
		if r.ours.missing > 0 {
			fmt.Printf("\nWARNING: %d of %d created customers had no customer.created event within the wait\n\n", r.ours.missing, r.ours.created)
		}
	}
	for _, r := range rows {
		if r.concurrency == 32 {
			pct := 100 * r.ours.rate / r.base.rate
			verdict := "MET"
			if pct < 40 {
				verdict = "NOT MET"
			}
			fmt.Printf("\naim: >= 40%% of baseline at concurrency 32: %s (%.0f%%)\n", verdict, pct)
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freshDatabase creates a database on the admin URL's server and returns its URL
// and a function that drops it.
func freshDatabase(ctx context.Context, adminURL, name string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect admin: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		admin.Close(ctx)
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	cfg := admin.Config()
	url := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	drop := func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.Exec(c, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		admin.Close(c)
	}
	return url, drop, nil
}
