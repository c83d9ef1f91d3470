package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db"
	"github.com/customerbus/customerbus/services/customers"
)

// aimPeakRSS is the aim for the command service's peak resident memory
// under the create load.
const aimPeakRSS = 100 << 20

// footprint is what the command service's process used for a load, and
// the PostgreSQL backends serving its database.
type footprint struct {
	created int
	cpu     time.Duration // user + system
	peakRSS int64         // bytes (VmHWM)
	db      backendsLoad
}

// measureFootprint runs the command service as a process of its own (the
// real binary, `customerbus customers`, HTTP only), creates customers at
// aimConcurrency for opt.duration, and reads the process's CPU time and
// peak RSS from /proc: the bench's own work (the client, the baseline) is
// not in them.
func measureFootprint(ctx context.Context, adminURL, name string, opt options) (footprint, error) {
	dbURL, drop, err := freshDatabase(ctx, adminURL, name)
	if err != nil {
		return footprint{}, err
	}
	defer drop()
	pool, err := db.Connect(ctx, dbURL, 2)
	if err != nil {
		return footprint{}, err
	}
	defer pool.Close()
	if err := db.Migrate(ctx, pool); err != nil {
		return footprint{}, err
	}
	token, err := customers.CreateToken(ctx, pool, "bench", false, []string{"MANAGE_USERS"})
	if err != nil {
		return footprint{}, err
	}
	dir, err := os.MkdirTemp("", "cbbench-bin-")
	if err != nil {
		return footprint{}, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "customerbus")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/customerbus").CombinedOutput(); err != nil {
		return footprint{}, fmt.Errorf("build the service (run the bench from the repository's root): %v: %s", err, out)
	}
	addr, err := freeAddr()
	if err != nil {
		return footprint{}, err
	}
	cmd := exec.Command(bin, "customers")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "HTTP_ADDR="+addr, "NATS_URL=", "LOG_LEVEL=warn",
		"DB_MAX_CONNS="+strconv.Itoa(opt.dbConns))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return footprint{}, err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return footprint{}, fmt.Errorf("the service did not get ready within 30 s")
		}
	}
	c := newClient(base, token, aimConcurrency)
	if _, err := runWorkers(ctx, aimConcurrency, opt.warmup, c.create); err != nil {
		return footprint{}, err
	}
	before, err := processCPU(cmd.Process.Pid)
	if err != nil {
		return footprint{}, err
	}
	dbBefore := readBackendsCPU(ctx, pool)
	calls, err := runWorkers(ctx, aimConcurrency, opt.duration, c.create)
	if err != nil {
		return footprint{}, err
	}
	after, err := processCPU(cmd.Process.Pid)
	if err != nil {
		return footprint{}, err
	}
	f := footprint{created: len(calls), cpu: after - before, db: dbBefore.until(readBackendsCPU(ctx, pool))}
	f.peakRSS, err = peakRSS(cmd.Process.Pid)
	return f, err
}

// measureBaselineFootprint runs the baseline's transactions at
// aimConcurrency for opt.duration on a database of its own, and reads the
// CPU time of this process (the baseline's client, and the idle systems of
// the other measurements) and of the database's PostgreSQL backends, for
// comparing with the service run as a process of its own.
func measureBaselineFootprint(ctx context.Context, adminURL, name string, opt options) (footprint, error) {
	dbURL, drop, err := freshDatabase(ctx, adminURL, name)
	if err != nil {
		return footprint{}, err
	}
	defer drop()
	b, err := newBaseline(ctx, dbURL, opt.dbConns)
	if err != nil {
		return footprint{}, err
	}
	defer b.close()
	r, err := b.measure(ctx, aimConcurrency, opt.warmup, opt.duration)
	return footprint{created: r.n, cpu: r.cpu.self, db: r.cpu.db}, err
}

// backendsCPU is the CPU time so far of each PostgreSQL backend of a
// database, by pid; nil when it cannot be read (a server on another
// machine).
type backendsCPU map[int32]time.Duration

// backendsLoad is the CPU time the backends of a database used between two
// readings; ok is false when either could not be read.
type backendsLoad struct {
	cpu time.Duration
	ok  bool
}

// readBackendsCPU reads the CPU time of the client backends connected to
// pool's database, from /proc: the server must run on this machine, as
// the bench's own user or one it may read.
func readBackendsCPU(ctx context.Context, pool *pgxpool.Pool) backendsCPU {
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`)
	if err != nil {
		return nil
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil
	}
	cpu := backendsCPU{}
	for _, pid := range pids {
		t, err := processCPU(int(pid))
		if err != nil {
			return nil
		}
		cpu[pid] = t
	}
	return cpu
}

// until is the CPU the backends used from b to a later reading; a backend
// that started in between counts from 0, one that ended is missed.
func (b backendsCPU) until(later backendsCPU) backendsLoad {
	if b == nil || later == nil {
		return backendsLoad{}
	}
	var sum time.Duration
	for pid, t := range later {
		sum += t - b[pid]
	}
	return backendsLoad{cpu: sum, ok: true}
}

func printFootprint(f, base footprint) {
	fmt.Printf("the command service as a process of its own, %d creates at concurrency %d: CPU %s per created customer (%s in all), peak RSS %.0f MB; aim peak RSS <= %d MB: %s\n",
		f.created, aimConcurrency, f.perCustomer(f.cpu), f.cpu.Round(time.Millisecond), float64(f.peakRSS)/(1<<20), aimPeakRSS>>20, verdict(f.peakRSS <= aimPeakRSS))
	if !f.db.ok || !base.db.ok {
		fmt.Println("CPU of PostgreSQL's backends: not readable from /proc (the server is not on this machine, or not readable)")
		return
	}
	ours, theirs := f.perCustomer(f.cpu+f.db.cpu), base.perCustomer(base.cpu+base.db.cpu)
	fmt.Printf("CPU per created customer with PostgreSQL's backends (not the relay, NATS or PostgreSQL's WAL writer): ours %s (service %s, PostgreSQL %s); baseline, %d at concurrency %d, %s (client %s, PostgreSQL %s); ours / baseline %.2f\n",
		ours, f.perCustomer(f.cpu), f.perCustomer(f.db.cpu), base.created, aimConcurrency, theirs, base.perCustomer(base.cpu), base.perCustomer(base.db.cpu), float64(ours)/float64(max(theirs, 1)))
}

// perCustomer is cpu per customer created.
func (f footprint) perCustomer(cpu time.Duration) time.Duration {
	if f.created == 0 {
		return 0
	}
	return (cpu / time.Duration(f.created)).Round(time.Microsecond)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux that Go supports.
const clockTicks = 100

// processCPU is a process's user plus system CPU time so far.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count after it.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// peakRSS is a process's peak resident set size (VmHWM).
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// cpuUse is the CPU this process and a database's PostgreSQL backends used
// for a load.
type cpuUse struct {
	self time.Duration
	db   backendsLoad
}

// cpuDuring runs load and returns the CPU this process (in the create case:
// the service, the relay, NATS and the bench's client, all in-process) and
// pool's database's backends used meanwhile.
func cpuDuring(ctx context.Context, pool *pgxpool.Pool, load func() error) (cpuUse, error) {
	before, err := processCPU(os.Getpid())
	if err != nil {
		return cpuUse{}, err
	}
	dbBefore := readBackendsCPU(ctx, pool)
	if err := load(); err != nil {
		return cpuUse{}, err
	}
	after, err := processCPU(os.Getpid())
	return cpuUse{self: after - before, db: dbBefore.until(readBackendsCPU(ctx, pool))}, err
}

// per is the CPU per one of n, as "total (process + PostgreSQL)".
func (u cpuUse) per(n int) string {
	if n == 0 {
		return "-"
	}
	self := (u.self / time.Duration(n)).Round(time.Microsecond)
	if !u.db.ok {
		return fmt.Sprintf("%s (PostgreSQL not readable)", self)
	}
	db := (u.db.cpu / time.Duration(n)).Round(time.Microsecond)
	return fmt.Sprintf("%s (%s + %s)", self+db, self, db)
}
