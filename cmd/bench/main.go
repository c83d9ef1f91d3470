// Command bench measures the service case by case.
//
// create: the customer create path end to end, side by side with its floor:
// the same two INSERTs (customer + outbox) in one transaction straight through
// pgx, at the same concurrency, in the same run; with group commit (the
// default) and with one transaction per request. Then creates paced at half
// of the peak, and the command service run as a process of its own for its
// CPU per created customer and peak RSS.
//
// commands: customer.create commands published on the bus (NATS JetStream,
// async, a bounded number in flight) and applied by the service's command
// consumer; it reports commands applied per second, from the first publish to
// the last customer.created seen, and publish → customer.created latency,
// beside the create case's HTTP rate of the same run.
//
// import: a CSV of -import-rows customers through POST /v1/customers/import,
// until each customer.created is on JetStream, beside a plain COPY of as
// many rows into the customers table, in the same run.
//
// search: GET /v1/customers on a million customers seeded by COPY, with q and
// with filters, one query at a time; it reports p50/p95/p99 per kind of query
// and the plans of the queries behind each p95.
//
// export: GET /v1/customers/export of -export-rows customers seeded by COPY
// (30% with an address), read to the end as NDJSON and as CSV, each twice,
// beside a plain COPY TO STDOUT of the same rows; it reports the time, rows/s,
// MB/s and the bench process's RSS growth and peak Go heap during each run.
//
// duplicates (not run by default): the search case's -search-rows
// customers, 10,000 of them given a twin (a +tag email, the same phone and
// name); it times one customer's duplicates for 1000 customers and 50 pages
// of the global list.
//
// privacy (not run by default: the import of a million customers alone takes
// minutes): -privacy-rows customers through POST /v1/customers/import, until
// each customer.created is on JetStream and in the event log; six of them
// then get 99 more events each through the API, and two customers created
// before the import get theirs while it is published, spread through the
// stream. It times the erasure of five of the six and of the two (POST
// /v1/customers/{id}/anonymize until the relay has erased their messages
// from the streams), 50 data exports of the sixth, the first history page
// of 1000 random customers and the sixth's history paged through, and
// shows the plans of the history and erasure queries.
//
// sync (not run by default): what deploy/nats's `sync_interval: always`
// costs against JetStream's default, each twice, alternating: HTTP creates
// at concurrency 32 with commit → event latency, and the relay's publishing
// rate for a burst of 20,000 committed events.
//
// It starts everything it measures in this process, on databases and a NATS
// server of its own: the command service over HTTP, the relay, and a JetStream
// consumer that times each customer.created from commit to receipt. It never
// talks to the machine's NATS, and it drops its databases when done or
// interrupted.
//
//	BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go run ./cmd/bench [-cases create,commands,search] [-duration 10s] [-warmup 2s] [-concurrency 1,8,32] [-db-conns 8]
//	  [-commands 100000] [-commands-inflight 1024] [-commands-paced-rate 1000]
//	  [-search-rows 1000000] [-search-queries 1000] [-search-sql 'CREATE INDEX ...'] [-explain=false] [-cpuprofile f]
//	  [-import-rows 200000] [-export-rows 1000000] [-privacy-rows 1000000]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/customerbus/customerbus/services/customers"
)

// defaultPoolSize is the database pool of the service and of the baseline
// alike; on 2 cores a larger pool only adds contention inside PostgreSQL
// (16 measured worse than 8).
const defaultPoolSize = 8

// aimConcurrency and aimRatio are the target: with group commit, ours at
// least 1.5 times the baseline's rate at concurrency 32.
const (
	aimConcurrency = 32
	aimRatio       = 1.5
)

type options struct {
	cases            map[string]bool
	duration, warmup time.Duration
	concurrency      []int
	dbConns          int

	commands, commandsInFlight int
	commandsPacedRate          float64

	importRows  int
	exportRows  int
	privacyRows int

	searchRows, searchQueries int
	searchSQL                 string
	searchDB                  string
	explain                   bool
}

func main() {
	var opt options
	cases := flag.String("cases", "create,commands,import,search,export", "comma-separated cases to run: create, commands, import, search, export, privacy, duplicates, webhooks, sync")
	flag.DurationVar(&opt.duration, "duration", 10*time.Second, "measured time per case")
	flag.DurationVar(&opt.warmup, "warmup", 2*time.Second, "unmeasured time before each case")
	levels := flag.String("concurrency", "1,8,32", "comma-separated concurrency levels")
	flag.IntVar(&opt.dbConns, "db-conns", defaultPoolSize, "database pool size, for the service and the baseline alike")
	flag.IntVar(&opt.commands, "commands", 100_000, "customer.create commands the commands case publishes")
	flag.IntVar(&opt.commandsInFlight, "commands-inflight", 1024, "most unacknowledged async publishes in the commands case")
	flag.Float64Var(&opt.commandsPacedRate, "commands-paced-rate", 1000, "commands a second the commands case then publishes for -duration, to measure latency below saturation (0: skip)")
	flag.IntVar(&opt.importRows, "import-rows", 200_000, "customers the import case imports")
	flag.IntVar(&opt.exportRows, "export-rows", 1_000_000, "customers the export case seeds and exports")
	flag.IntVar(&opt.privacyRows, "privacy-rows", 1_000_000, "customers the privacy case imports")
	flag.IntVar(&opt.searchRows, "search-rows", 1_000_000, "customers the search case seeds")
	flag.IntVar(&opt.searchQueries, "search-queries", 1000, "measured queries per kind in the search case")
	flag.StringVar(&opt.searchSQL, "search-sql", "", "SQL run on the search case's database after seeding, before VACUUM ANALYZE: to try an index or a statistics target")
	flag.StringVar(&opt.searchDB, "search-db", "", "keep the search case's database under this name and reuse it when it is already seeded: for trying changes without seeding again")
	flag.BoolVar(&opt.explain, "explain", true, "print the plans of the search case's p95 queries, and of the privacy case's history and erasure queries")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()

	var err error
	if opt.cases, err = parseCases(*cases); err != nil {
		fail(err)
	}
	if opt.concurrency, err = parseLevels(*levels); err != nil {
		fail(err)
	}
	if opt.duration <= 0 || opt.warmup < 0 || opt.dbConns < 1 || opt.importRows < 1 || opt.exportRows < 1 || opt.privacyRows < 1 || opt.searchRows < 1 || opt.searchQueries < 1 || opt.commands < 1 || opt.commandsInFlight < 1 || opt.commandsPacedRate < 0 {
		fail(errors.New("-duration, -db-conns, -commands, -commands-inflight, -import-rows, -export-rows, -privacy-rows, -search-rows and -search-queries must be positive, -warmup and -commands-paced-rate not negative"))
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fail(err)
		}
		defer stopProfile()
	}

	// Ctrl-C cancels ctx: the load loops stop, run returns and its defers drop
	// the databases and stop the embedded servers.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opt); err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted; its databases and NATS store were removed")
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1) //nolint:gocritic // the profile of a failed run is not wanted
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(2)
}

func parseCases(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		known := []string{"create", "commands", "import", "search", "export", "privacy", "duplicates", "webhooks", "sync"}
		if !slices.Contains(known, f) {
			return nil, fmt.Errorf("bad case %q: want one of %s", f, strings.Join(known, ", "))
		}
		out[f] = true
	}
	return out, nil
}

func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad concurrency %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func run(ctx context.Context, opt options) error {
	adminURL := os.Getenv("BENCH_DATABASE_URL")
	if adminURL == "" {
		return errors.New("BENCH_DATABASE_URL is required (an admin database URL)")
	}
	prefix := "cbbench_" + randomHex(4)
	var httpRows []row
	sep := func() {} // a blank line between the cases' reports
	if opt.cases["create"] {
		var err error
		if httpRows, err = runCreate(ctx, adminURL, prefix, opt); err != nil {
			return err
		}
		sep = func() { fmt.Println() }
	}
	if opt.cases["commands"] {
		sep()
		if err := runCommands(ctx, adminURL, prefix+"_cmd", opt, httpRows); err != nil {
			return err
		}
		sep = func() { fmt.Println() }
	}
	if opt.cases["import"] {
		sep()
		if err := runImport(ctx, adminURL, prefix+"_imp", opt); err != nil {
			return err
		}
		sep = func() { fmt.Println() }
	}
	if opt.cases["search"] {
		sep()
		if err := runSearch(ctx, adminURL, prefix+"_search", opt); err != nil {
			return err
		}
		sep = func() { fmt.Println() }
	}
	if opt.cases["duplicates"] {
		sep()
		if err := runDuplicates(ctx, adminURL, prefix+"_dup", opt); err != nil {
			return err
		}
		sep = func() { fmt.Println() }
	}
	if opt.cases["webhooks"] {
		sep()
		if err := runWebhooks(ctx, adminURL, prefix+"_wh", opt); err != nil {
			return fmt.Errorf("webhooks: %w", err)
		}
	}
	if opt.cases["sync"] {
		sep()
		if err := runSync(ctx, adminURL, prefix+"_sync", opt); err != nil {
			return err
		}
		sep = func() { fmt.Println() }
	}
	if opt.cases["export"] {
		sep()
		if err := runExport(ctx, adminURL, prefix+"_exp", opt); err != nil {
			return err
		}
		sep = func() { fmt.Println() }
	}
	if opt.cases["privacy"] {
		sep()
		return runPrivacy(ctx, adminURL, prefix+"_priv", opt)
	}
	return nil
}

// runCreate measures creates through the service, with group commit and
// with one transaction per request, against the pgx baseline, and returns
// its rows for the commands case to compare with.
func runCreate(ctx context.Context, adminURL, prefix string, opt options) ([]row, error) {
	// A database each, so that no side's rows slow down another's inserts
	// or the relay's scans.
	apiDB, dropAPI, err := freshDatabase(ctx, adminURL, prefix+"_api")
	if err != nil {
		return nil, err
	}
	defer dropAPI()
	singleDB, dropSingle, err := freshDatabase(ctx, adminURL, prefix+"_single")
	if err != nil {
		return nil, err
	}
	defer dropSingle()
	baseDB, dropBase, err := freshDatabase(ctx, adminURL, prefix+"_base")
	if err != nil {
		return nil, err
	}
	defer dropBase()

	sys, err := startSystem(ctx, apiDB, opt.dbConns, slices.Max(opt.concurrency))
	if err != nil {
		return nil, err
	}
	defer sys.close()
	single, err := startSystem(ctx, singleDB, opt.dbConns, slices.Max(opt.concurrency),
		tuning{customers: func(c *customers.Config) { c.GroupCommit.Disabled = true }})
	if err != nil {
		return nil, err
	}
	defer single.close()
	base, err := newBaseline(ctx, baseDB, opt.dbConns)
	if err != nil {
		return nil, err
	}
	defer base.close()

	fmt.Printf("GOMAXPROCS %d, CPUs %d; %s per case after %s warm-up; DB pool %d (service and baseline)\n",
		runtime.GOMAXPROCS(0), runtime.NumCPU(), opt.duration, opt.warmup, opt.dbConns)
	fmt.Println("ours: HTTP creates with group commit (the default); one tx: with GROUP_COMMIT_DISABLED; baseline: the two INSERTs in a pgx transaction")
	fmt.Println()
	var rows []row
	for _, c := range opt.concurrency {
		r, err := measureLevel(ctx, sys, single, base, c, opt)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
		fmt.Fprintf(os.Stderr, "concurrency %d done\n", c)
	}
	printReport(sys, rows)
	if err := printPacedCreates(ctx, sys, single, base, rows, opt); err != nil {
		return nil, err
	}
	f, err := measureFootprint(ctx, adminURL, prefix+"_footprint", opt)
	if err != nil {
		return nil, fmt.Errorf("footprint: %w", err)
	}
	bf, err := measureBaselineFootprint(ctx, adminURL, prefix+"_basefootprint", opt)
	if err != nil {
		return nil, fmt.Errorf("baseline footprint: %w", err)
	}
	printFootprint(f, bf)
	printEventSizes(ctx, sys, base)
	return rows, nil
}

// aimPacedP99 is the aim for a create's call latency at half of the peak
// rate at aimConcurrency.
const aimPacedP99 = 20 * time.Millisecond

// printPacedCreates creates customers at half of the peak rate that group
// commit reached at aimConcurrency, and reports the calls' latency there;
// then, at the same rate, one transaction per request's and the baseline's,
// which show what of the latency is the machine's (its WAL flushes).
func printPacedCreates(ctx context.Context, sys, single *system, base *baseline, rows []row, opt options) error {
	i := slices.IndexFunc(rows, func(r row) bool { return r.concurrency == aimConcurrency })
	if i < 0 {
		return nil
	}
	rate := rows[i].ours.rate / 2
	callLatency := func(c call) time.Duration { return c.latency }
	// One transaction per request may not keep up with half of what group
	// commit peaks at: that is said, and the others are still measured.
	var said [3]string
	var lat [3]percentiles
	behind := false // ours
	for j, op := range []func() (percentiles, error){
		func() (percentiles, error) {
			return pacedLatency(ctx, rate, opt.duration, sys.client.create, callLatency)
		},
		func() (percentiles, error) {
			return pacedLatency(ctx, rate, opt.duration, single.client.create, callLatency)
		},
		func() (percentiles, error) {
			return pacedLatency(ctx, rate, opt.duration,
				func(n int64) (time.Duration, error) { return base.insert(ctx, n) },
				func(d time.Duration) time.Duration { return d })
		},
	} {
		var err error
		lat[j], err = op()
		switch {
		case errors.Is(err, errFallsBehind):
			said[j], behind = "cannot keep up at that rate", behind || j == 0
		case err != nil:
			return fmt.Errorf("paced creates: %w", err)
		default:
			said[j] = fmt.Sprintf("p50 %s, p99 %s", ms(lat[j].p50), ms(lat[j].p99))
		}
	}
	fmt.Printf("paced at half of the peak (%.0f creates/s for %s): call %s (one tx: %s; baseline: %s); aim p99 <= %s: %s\n",
		rate, opt.duration, said[0], said[1], said[2], aimPacedP99, verdict(!behind && lat[0].p99 <= aimPacedP99))
	return nil
}

// pacedLatency runs op at rate for d and summarizes the latencies.
func pacedLatency[T any](ctx context.Context, rate float64, d time.Duration, op func(int64) (T, error), latency func(T) time.Duration) (percentiles, error) {
	results, err := runPaced(ctx, rate, d, 1024, op)
	if err != nil {
		return percentiles{}, err
	}
	lat := make([]time.Duration, len(results))
	for i, r := range results {
		lat[i] = latency(r)
	}
	return summarize(lat), nil
}

func printEventSizes(ctx context.Context, sys *system, base *baseline) {
	ours, err1 := avgEventSize(ctx, sys.pool)
	theirs, err2 := avgEventSize(ctx, base.pool)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Println("outbox event size: unknown:", err)
		return
	}
	fmt.Printf("outbox event size: ours %d bytes on average, baseline %d bytes\n", ours, theirs)
}

func measureLevel(ctx context.Context, sys, single *system, base *baseline, c int, opt options) (row, error) {
	r := row{concurrency: c}
	var err error
	if r.ours, err = sys.measure(ctx, c, opt.warmup, opt.duration); err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return row{}, err
	}
	if r.single, err = single.measure(ctx, c, opt.warmup, opt.duration); err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return row{}, err
	}
	if r.base, err = base.measure(ctx, c, opt.warmup, opt.duration); err == nil {
		err = ctx.Err()
	}
	return r, err
}

type row struct {
	concurrency int
	ours        apiResult // with group commit
	single      apiResult // one transaction per request
	base        baseResult
}

func (r row) ratio() float64 {
	if r.base.rate == 0 {
		return 0
	}
	return r.ours.rate / r.base.rate
}

func printReport(sys *system, rows []row) {
	fmt.Println("| concurrency | ours created/s | call p50 | call p99 | commit→event p99 | one tx created/s | one tx p99 | baseline tx/s | baseline p99 | ours / baseline | one tx / baseline | ours / one tx |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %d | %.0f | %s | %s | %s | %.0f | %s | %.0f | %s | %.0f%% | %.0f%% | %.0f%% |\n",
			r.concurrency, r.ours.rate, ms(r.ours.call.p50), ms(r.ours.call.p99), ms(r.ours.event.p99),
			r.single.rate, ms(r.single.call.p99), r.base.rate, ms(r.base.lat.p99),
			100*r.ratio(), 100*r.single.rate/r.base.rate, 100*r.ours.rate/r.single.rate)
	}
	fmt.Println()
	fmt.Println("CPU per created customer in the measured windows, this process (the service, relay, NATS and client in-process; the baseline's client) + the database's PostgreSQL backends:")
	for _, r := range rows {
		fmt.Printf("  concurrency %d: ours %s, one tx %s, baseline %s\n", r.concurrency,
			r.ours.cpu.per(r.ours.created), r.single.cpu.per(r.single.created), r.base.cpu.per(r.base.n))
	}
	if events, batches := sys.relayBatches(); batches > 0 {
		fmt.Printf("the relay (group commit's system) published %d events in %d batches, %.1f a batch\n", events, batches, float64(events)/float64(batches))
	}
	fmt.Println()
	// Outside the table, so the Markdown still renders.
	for _, r := range rows {
		for _, side := range []struct {
			name string
			res  apiResult
		}{{"ours", r.ours}, {"one tx", r.single}} {
			if side.res.missing > 0 {
				fmt.Printf("WARNING!!! %s, concurrency %d: %d of %d created customers had no customer.created event within %s\n",
					side.name, r.concurrency, side.res.missing, side.res.created, eventWait)
			}
		}
	}
	printAim(rows)
}

func printAim(rows []row) {
	label := fmt.Sprintf("aim: with group commit >= %.1f x the baseline's rate at concurrency %d", aimRatio, aimConcurrency)
	i := slices.IndexFunc(rows, func(r row) bool { return r.concurrency == aimConcurrency })
	if i < 0 {
		fmt.Printf("%s: not measured (add %d to -concurrency)\n", label, aimConcurrency)
		return
	}
	met := verdict(rows[i].ratio() >= aimRatio)
	if rows[i].ours.missing > 0 {
		met += ", but events went missing"
	}
	fmt.Printf("%s: %s (%.2f x)\n", label, met, rows[i].ratio())
	if j := slices.IndexFunc(rows, func(r row) bool { return r.concurrency == 1 }); j >= 0 {
		r := rows[j]
		fmt.Printf("aim: at concurrency 1 no slower than one tx per request: %s (rate %.0f%%, call p50 %s against %s)\n",
			verdict(r.ours.rate >= 0.95*r.single.rate), 100*r.ours.rate/r.single.rate, ms(r.ours.call.p50), ms(r.single.call.p50))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
