// Command customerbus runs the customerbus services: all of them in one
// process (`run`), or each alone (`customers`, `relay`, `notifier`,
// `orderlinker`, `webhooks`) so they scale apart.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/customerbus/customerbus/db"
	"github.com/customerbus/customerbus/events/tracing"
	"github.com/customerbus/customerbus/services/customers"
	"github.com/customerbus/customerbus/services/notifier"
	"github.com/customerbus/customerbus/services/orderlinker"
	"github.com/customerbus/customerbus/services/relay"
	"github.com/customerbus/customerbus/services/webhooks"
)

// config is the whole process's configuration, from the environment.
type config struct {
	DatabaseURL string `env:"DATABASE_URL,required"`
	DBMaxConns  int32  `env:"DB_MAX_CONNS" envDefault:"0"`
	NATSURL     string `env:"NATS_URL"`
	// NATSListen is where `run` serves its embedded NATS when NATS_URL is unset.
	NATSListen string `env:"NATS_LISTEN" envDefault:"127.0.0.1:4223"`
	DataDir    string `env:"DATA_DIR" envDefault:"./var"`
	LogFormat  string `env:"LOG_FORMAT" envDefault:"console"`
	LogLevel   string `env:"LOG_LEVEL" envDefault:"info"`
	Customers  customers.Config
	Relay      relay.Config
	Notifier   notifier.Config
	Linker     orderlinker.Config
	Webhooks   webhooks.Config
	Tracing    tracing.Config

	// OpsAddr is where a service run alone serves /healthz, /readyz and
	// /metrics (the command service serves them on HTTP_ADDR).
	OpsAddr string `env:"OPS_ADDR" envDefault:"127.0.0.1:9090"`
}

const usage = `usage: customerbus <command>

commands:
  run            the whole system in one process (embedded NATS unless NATS_URL is set)
  customers      the command service alone: the HTTP API, and bus commands when NATS_URL is set
  relay          the outbox relay alone (needs NATS_URL)
  notifier       the notification email sender alone (needs NATS_URL)
  orderlinker    the guest-order linker alone (needs NATS_URL)
  webhooks       the webhook deliverer alone (needs NATS_URL)
  migrate        apply database migrations and exit
  token create   issue an API token: -name NAME [-permissions MANAGE_USERS,...] [-staff]
  staff create   add a staff user of the admin console (/admin): -email EMAIL [-name NAME]
                 [-group NAME] [-permissions MANAGE_USERS,...] [-password-stdin]
                 (a new group gets -permissions; the password is made up and printed
                 unless read from stdin)
  duplicates rebuild
                 score every pair of the duplicates list again (after customers were
                 restored from a backup or loaded without events)
  import FILE    import customers from a CSV or NDJSON file through the API, with progress:
                 [-mode create|upsert] [-dry-run] [-on-error skip_rows|reject_all]
  export         export customers through the API to stdout: [-format ndjson|csv]
                 [-fields ...] [-include private_metadata,addresses] [filter=value ...]
                 (import and export read CUSTOMERBUS_URL and CUSTOMERBUS_TOKEN)
  probe URL      exit 0 if URL answers 2xx, else 1: a container's health check
                 (e.g. http://127.0.0.1:8080/readyz)

configuration is read from the environment; every setting is in docs/operations.md.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "customerbus:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	// The file commands and the probe are clients of a running service: no database.
	switch args[0] {
	case "import":
		return importCommand(ctx, args[1:], os.Stderr)
	case "export":
		return exportCommand(ctx, args[1:], os.Stdout, os.Stderr)
	case "probe":
		return probeCommand(ctx, args[1:])
	}
	cfg, err := env.ParseAs[config]()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if cfg.Relay.PublicBaseURL == "" {
		cfg.Relay.PublicBaseURL = ownBaseURL(cfg.Customers.HTTPAddr)
	}
	log, err := newLogger(cfg)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck
	// Before the pool and the services: they are instrumented only when
	// tracing is on.
	stopTracing, err := tracing.Setup(ctx, cfg.Tracing, serviceName(args[0]), log)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(ctx); err != nil {
			log.Warn("tracing: the last spans were not exported", zap.Error(err))
		}
	}()

	pool, err := db.Connect(ctx, cfg.DatabaseURL, cfg.DBMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := db.Migrate(ctx, pool); err != nil {
		return err
	}

	switch args[0] {
	case "migrate":
		log.Info("migrations applied")
		return nil
	case "token":
		return tokenCommand(ctx, pool, args[1:])
	case "staff":
		return staffCommand(ctx, pool, args[1:], os.Stdin, os.Stdout)
	case "duplicates":
		if len(args) != 2 || args[1] != "rebuild" {
			return errors.New("usage: customerbus duplicates rebuild")
		}
		start := time.Now()
		ran, err := customers.New(pool, log, newRegistry(), cfg.Customers).RebuildDuplicates(ctx)
		if err == nil && !ran {
			err = errors.New("duplicates rebuild: another instance is building them; try again when it is done")
		}
		if err == nil {
			log.Info("duplicate pairs rebuilt", zap.Duration("took", time.Since(start)))
		}
		return err
	case "customers":
		reg := newRegistry()
		if cfg.NATSURL == "" { // HTTP only
			cfg.Customers.Ops = opsFor(reg, pool, nil, "customers")
			return customers.New(pool, log, reg, cfg.Customers).Run(ctx)
		}
		js, closeNATS, err := connectNATS(cfg.NATSURL, log)
		if err != nil {
			return err
		}
		defer closeNATS()
		cfg.Customers.Ops = opsFor(reg, pool, js, "customers")
		svc := customers.New(pool, log, reg, cfg.Customers)
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return svc.Run(ctx) })
		g.Go(func() error { return svc.RunCommands(ctx, js) })
		return g.Wait()
	case "relay":
		if cfg.NATSURL == "" {
			return errors.New("relay: NATS_URL is required")
		}
		js, closeNATS, err := connectNATS(cfg.NATSURL, log)
		if err != nil {
			return err
		}
		defer closeNATS()
		reg := newRegistry()
		return withOps(ctx, cfg, log, opsFor(reg, pool, js, "relay"), relay.New(pool, js, log, reg, cfg.Relay).Run)
	case "notifier":
		if cfg.NATSURL == "" {
			return errors.New("notifier: NATS_URL is required")
		}
		js, closeNATS, err := connectNATS(cfg.NATSURL, log)
		if err != nil {
			return err
		}
		defer closeNATS()
		reg := newRegistry()
		nt, err := notifier.New(pool, js, log, reg, cfg.Notifier)
		if err != nil {
			return err
		}
		return withOps(ctx, cfg, log, opsFor(reg, pool, js, "notifier"), nt.Run)
	case "orderlinker":
		if cfg.NATSURL == "" {
			return errors.New("orderlinker: NATS_URL is required")
		}
		js, closeNATS, err := connectNATS(cfg.NATSURL, log)
		if err != nil {
			return err
		}
		defer closeNATS()
		reg := newRegistry()
		return withOps(ctx, cfg, log, opsFor(reg, pool, js, "orderlinker"), orderlinker.New(pool, js, log, reg, cfg.Linker).Run)
	case "webhooks":
		if cfg.NATSURL == "" {
			return errors.New("webhooks: NATS_URL is required")
		}
		js, closeNATS, err := connectNATS(cfg.NATSURL, log)
		if err != nil {
			return err
		}
		defer closeNATS()
		reg := newRegistry()
		return withOps(ctx, cfg, log, opsFor(reg, pool, js, "webhooks"), webhooks.New(pool, js, log, reg, cfg.Webhooks).Run)
	case "run":
		return runAll(ctx, cfg, pool, log)
	default:
		return fmt.Errorf("unknown command %q\n\n%s", args[0], usage)
	}
}

// serviceName is the service.name of the process's spans: customerbus for
// the whole system, customerbus-relay and so on for a service alone.
func serviceName(command string) string {
	if command == "run" {
		return "customerbus"
	}
	return "customerbus-" + command
}

// runAll runs every service in this process, with an embedded NATS server
// unless NATS_URL points at one.
func runAll(ctx context.Context, cfg config, pool *pgxpool.Pool, log *zap.Logger) error {
	natsURL := cfg.NATSURL
	if natsURL == "" {
		srv, err := startEmbeddedNATS(cfg)
		if err != nil {
			return err
		}
		defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
		natsURL = srv.ClientURL()
	}
	js, closeNATS, err := connectNATS(natsURL, log)
	if err != nil {
		return err
	}
	defer closeNATS()

	token, err := customers.EnsureDevToken(ctx, pool)
	if err != nil {
		return err
	}
	staffPassword, err := customers.EnsureFirstStaff(ctx, pool)
	if err != nil {
		return err
	}
	reg := newRegistry()
	cfg.Customers.Ops = opsFor(reg, pool, js, everyService...) // on the API's listener
	svc := customers.New(pool, log, reg, cfg.Customers)
	rl := relay.New(pool, js, log, reg, cfg.Relay)
	nt, err := notifier.New(pool, js, log, reg, cfg.Notifier)
	if err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "\ncustomerbus is running\n  API:   %s\n  admin: %s/admin/\n  NATS:  %s\n", ownBaseURL(cfg.Customers.HTTPAddr), ownBaseURL(cfg.Customers.HTTPAddr), natsURL)
	if cfg.Notifier.SMTPURL == "" {
		fmt.Fprintf(os.Stderr, "  mail:  written to %s/<event id>.eml (set SMTP_URL to send)\n", cfg.Notifier.MailDir)
	}
	if token != "" {
		fmt.Fprintf(os.Stderr, "  dev token (shown once, keep it): %s\n", token)
	} else {
		fmt.Fprintf(os.Stderr, "  tokens exist already; create another with:\n    DATABASE_URL=\"$(deploy/local/postgres.sh customerbus)\" go run ./cmd/customerbus token create -name me\n")
	}
	if staffPassword != "" {
		fmt.Fprintf(os.Stderr, "  admin login (shown once, keep it): %s / %s\n", customers.FirstStaffEmail, staffPassword)
	} else {
		fmt.Fprintf(os.Stderr, "  staff users exist already; add another with:\n    DATABASE_URL=\"$(deploy/local/postgres.sh customerbus)\" go run ./cmd/customerbus staff create -email you@example.com\n")
	}
	fmt.Fprintln(os.Stderr)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(ctx) })
	g.Go(func() error { return svc.RunCommands(ctx, js) })
	g.Go(func() error { return rl.Run(ctx) })
	g.Go(func() error { return nt.Run(ctx) })
	g.Go(func() error { return orderlinker.New(pool, js, log, reg, cfg.Linker).Run(ctx) })
	g.Go(func() error { return webhooks.New(pool, js, log, reg, cfg.Webhooks).Run(ctx) })
	return g.Wait()
}

func tokenCommand(ctx context.Context, pool *pgxpool.Pool, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: customerbus token create -name NAME [-permissions MANAGE_USERS,...] [-staff]")
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	name := fs.String("name", "", "who the token is for (required)")
	perms := fs.String("permissions", "MANAGE_USERS", "comma-separated permissions: "+strings.Join(customers.Permissions, ","))
	staff := fs.Bool("staff", false, "the token is a staff member's (events record authtype user, else service_account)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if strings.TrimSpace(*name) == "" {
		return errors.New("token create: -name is required")
	}
	token, err := customers.CreateToken(ctx, pool, *name, *staff, strings.Split(*perms, ","))
	if err != nil {
		return err
	}
	fmt.Println(token)
	return nil
}

const staffUsage = "usage: customerbus staff create -email EMAIL [-name NAME] [-group NAME] [-permissions MANAGE_USERS,...] [-password-stdin]"

// staffCommand adds a staff user; the password it made up goes to out.
func staffCommand(ctx context.Context, pool *pgxpool.Pool, args []string, in io.Reader, out io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New(staffUsage)
	}
	fs := flag.NewFlagSet("staff create", flag.ContinueOnError)
	email := fs.String("email", "", "the staff user's email, their login (required)")
	name := fs.String("name", "", "the staff user's name")
	group := fs.String("group", customers.StaffFullAccess, "the permission group to join; created with -permissions when it does not exist")
	perms := fs.String("permissions", strings.Join(customers.StaffPermissions, ","), "comma-separated permissions of a new group: "+strings.Join(customers.StaffPermissions, ","))
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin instead of making one up")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if strings.TrimSpace(*email) == "" {
		return errors.New("staff create: -email is required\n" + staffUsage)
	}
	pw := customers.NewStaffPassword()
	if *fromStdin {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("staff create: read password: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	err := customers.CreateStaff(ctx, pool, customers.StaffUser{Email: *email, Name: *name, Password: pw, Group: *group, Permissions: strings.Split(*perms, ",")})
	if err != nil {
		return fmt.Errorf("staff create: %w", err)
	}
	if !*fromStdin {
		fmt.Fprintf(out, "%s\n", pw)
	}
	return nil
}

func startEmbeddedNATS(cfg config) (*server.Server, error) {
	host, port, err := splitHostPort(cfg.NATSListen)
	if err != nil {
		return nil, fmt.Errorf("NATS_LISTEN: %w", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "customerbus-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return nil, fmt.Errorf("embedded nats: not ready on %s (is the port taken? set NATS_LISTEN)", cfg.NATSListen)
	}
	return srv, nil
}

// How a service's NATS connection notices that its server is gone. A
// server that stops or crashes closes the connection, and the client moves
// to another at once; a host that vanishes (power, network) closes nothing,
// and nats.go's default pings (every 2 minutes, 2 unanswered allowed) would
// leave the service on it for about 5 minutes. A ping a second is a few
// bytes; the connection is given up 2 to 3 s after the server last spoke.
const (
	natsPingInterval = time.Second
	natsMaxPingsOut  = 2
)

// How soon a service tries again. On losing its server it tries the others
// of NATS_URL at once (the lost one last); after a round that found none,
// the next waits natsReconnectWait plus up to natsReconnectJitter, so that
// a lone server that restarts is back in use within a second, and not by
// every instance at the same moment.
const (
	natsReconnectWait   = 500 * time.Millisecond
	natsReconnectJitter = 500 * time.Millisecond
)

// connectNATS is the one place the services connect to NATS.
func connectNATS(url string, log *zap.Logger) (jetstream.JetStream, func(), error) {
	nc, err := nats.Connect(url,
		nats.Name("customerbus"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.PingInterval(natsPingInterval),
		nats.MaxPingsOutstanding(natsMaxPingsOut),
		nats.ReconnectWait(natsReconnectWait),
		nats.ReconnectJitter(natsReconnectJitter, natsReconnectJitter),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil on a deliberate Close
				log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", zap.String("url", nc.ConnectedUrl())) }),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("nats: connect %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	// Close, not Drain: it runs after the relay returned, so every publish is
	// acked, and Drain is asynchronous (the embedded server would stop under it).
	return js, nc.Close, nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func newLogger(cfg config) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	zc := zap.NewProductionConfig()
	if cfg.LogFormat == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	return zc.Build(zap.AddStacktrace(zapcore.ErrorLevel))
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	var port int
	if _, err := fmt.Sscanf(addr[i+1:], "%d", &port); err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	return addr[:i], port, nil
}

// ownBaseURL is the API's own address as a URL: the default of
// PUBLIC_BASE_URL. A listen address without a host (":8080", "0.0.0.0:8080")
// is reached on localhost.
func ownBaseURL(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "http://" + httpAddr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
