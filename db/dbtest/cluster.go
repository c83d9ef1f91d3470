package dbtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// BinDirEnv names the directory of PostgreSQL's programs (initdb, pg_ctl)
// for NewCluster; `make test` sets it (deploy/local/postgres.sh --bindir).
const BinDirEnv = "TEST_POSTGRES_BINDIR"

// Cluster is a PostgreSQL server of the test's own, which the test may kill
// and start again: the shared server of New must never go down under the
// other tests.
type Cluster struct {
	t    testing.TB
	bin  string
	dir  string // the data directory's parent; also the socket's directory
	port int
}

// NewCluster creates a cluster in a temporary directory, starts it on a free
// port and removes it when the test ends. A machine without PostgreSQL's
// programs fails the test rather than skip it: `make test` provides them.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := os.Getenv(BinDirEnv)
	if bin == "" {
		bin = newestBinDir()
	}
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		t.Fatalf("dbtest: PostgreSQL's programs not found (%v): run `make test`, or set %s", err, BinDirEnv)
	}
	// Not t.TempDir: its parents are private to root, and as root the
	// server must run as the user postgres.
	dir, err := os.MkdirTemp("", "pgcluster")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, bin: bin, dir: dir, port: freePort(t)}
	t.Cleanup(func() {
		c.stop()
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		owner, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("dbtest: initdb refuses to run as root, and there is no user postgres: %v", err)
		}
		uid, _ := strconv.Atoi(owner.Uid)
		gid, _ := strconv.Atoi(owner.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing here outlives the machine, so nothing needs to reach the disk:
	// a killed server loses nothing the kernel already has.
	c.run("initdb", "-D", c.dataDir(), "-A", "trust", "-U", "postgres", "--no-sync")
	c.Start()
	return c
}

// URL is the cluster's database "postgres".
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Start starts the server and returns once it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "30",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", c.port, c.dir), "start")
}

// Kill kills the server's postmaster with SIGKILL, as an OOM killer or a
// crashing machine would: no shutdown, no checkpoint; its backends exit
// when they notice.
func (c *Cluster) Kill() {
	c.t.Helper()
	pid, err := c.postmasterPID()
	if err != nil {
		c.t.Fatalf("dbtest: kill: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		c.t.Fatalf("dbtest: kill postmaster %d: %v", pid, err)
	}
}

// Log is the server's log, for a test that failed.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "log"))
	return string(b)
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// postmasterPID reads the first line of postmaster.pid.
func (c *Cluster) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// stop stops a running server at the test's end, killed or not.
func (c *Cluster) stop() {
	if pid, err := c.postmasterPID(); err == nil && syscall.Kill(pid, 0) == nil {
		_ = c.command("pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "stop").Run()
	}
}

// run runs one of PostgreSQL's programs, failing the test with its output.
func (c *Cluster) run(program string, args ...string) {
	c.t.Helper()
	cmd := c.command(program, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("dbtest: %s: %v\n%s\nserver log:\n%s", program, err, out.String(), c.Log())
	}
}

// command is a program of the cluster's, run as the user postgres when the
// test runs as root (initdb and pg_ctl refuse root).
func (c *Cluster) command(program string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, program)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// newestBinDir is the newest installed PostgreSQL's program directory, as
// deploy/local/postgres.sh finds it, or "" when there is none.
func newestBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	if len(dirs) == 0 {
		return ""
	}
	return dirs[0]
}

// versionOf is the major version in /usr/lib/postgresql/<version>/bin.
func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// freePort is a TCP port nothing listens on at the moment.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
