// Package customers is the command service: the HTTP API that validates
// customer commands and writes each change with its events in one transaction.
package customers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/customerbus/customerbus/db/groupcommit"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/ops"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/bus"
	"github.com/customerbus/customerbus/services/customers/internal/console"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/httpapi"
	"github.com/customerbus/customerbus/services/customers/internal/idempotency"
	"github.com/customerbus/customerbus/services/customers/internal/idp"
	"github.com/customerbus/customerbus/services/customers/internal/imports"
	"github.com/customerbus/customerbus/services/customers/internal/merge"
	"github.com/customerbus/customerbus/services/customers/internal/order"
	"github.com/customerbus/customerbus/services/customers/internal/staff"
	"github.com/customerbus/customerbus/services/customers/internal/store"
	"github.com/customerbus/customerbus/services/customers/internal/webhook"
)

// Config of the command service, read from the environment.
type Config struct {
	HTTPAddr        string        `env:"HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	MaxBodyBytes    int64         `env:"HTTP_MAX_BODY_BYTES" envDefault:"1048576"`
	PhoneRegion     string        `env:"DEFAULT_PHONE_REGION"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"15s"`
	// TrustedProxies are the proxies (CIDR prefixes, comma-separated) whose
	// X-Forwarded-For names the client, for the per-address login limit.
	TrustedProxies []netip.Prefix `env:"TRUSTED_PROXIES"`
	Accounts       AccountConfig
	Privacy        customer.PrivacyConfig
	Orders         order.Config
	Imports        imports.Config
	Commands       bus.Config
	Webhooks       webhook.Config
	OIDC           idp.Config
	GroupCommit    groupcommit.Config
	Staff          staff.Config
	Console        console.Settings
	// Ops serves /healthz, /readyz and /metrics on the API's listener: the
	// process's (ops.New), which checks and measures what its services
	// wait for. Nil: the service's own, which checks the database and
	// serves reg.
	Ops http.Handler
}

// AccountConfig tunes customer accounts: token lifetimes and login limits.
type AccountConfig = customer.AccountConfig

// Service is the command service: the HTTP adapter and the bus adapter
// over the same use cases, on one database.
type Service struct {
	cfg   Config
	log   *zap.Logger
	api   *httpapi.API
	bus   *bus.Bus
	store *store.Store
	// merges is the merge and duplicates use cases on the pool.
	merges *merge.Service
	// imports runs import jobs, those of every instance.
	imports *imports.Jobs
	staff   *staff.Service
	// console is the admin console, over the same use cases as api.
	console *console.Console
}

// New wires the service on a migrated database.
func New(pool *pgxpool.Pool, log *zap.Logger, reg *prometheus.Registry, cfg Config) *Service {
	cfg.Commands = cfg.Commands.WithDefaults()
	tokens := auth.NewTokens(pool)
	spec, err := openAPIJSON()
	if err != nil {
		// Like regexp.MustCompile: the document is compiled in, and the tests
		// fail on a broken one, so a released binary cannot get here.
		panic(err)
	}
	st := store.New(pool)
	// The use cases on a store: on the pool for HTTP, its writes committed
	// in groups; for a bus command, or an HTTP request with an
	// Idempotency-Key, on its own transaction, which also records its id or
	// its answer.
	// One discovery for the process: each provider is discovered, and its
	// keys fetched, once.
	discovery := idp.NewDiscovery(cfg.OIDC.HTTPTimeout)
	useCasesOn := func(st *store.Store) httpapi.UseCases {
		customers := customer.NewService(st, cfg.PhoneRegion, cfg.Accounts, cfg.Privacy)
		orders := order.NewService(st, customers, cfg.Orders)
		customers.EndTransfersWith(orders)
		return httpapi.UseCases{Customers: customers, Orders: orders, Merges: merge.NewService(st), Webhooks: webhook.NewService(st, cfg.Webhooks),
			IdentityProviders: idp.New(st, customers, discovery, cfg.OIDC)}
	}
	useCases := func(tx pgx.Tx) httpapi.UseCases { return useCasesOn(st.On(tx)) }
	uses := useCasesOn(st.WithGroupCommit(groupcommit.New(pool, cfg.GroupCommit)))
	jobs := imports.New(pool, log, cfg.Imports, func(tx pgx.Tx) *customer.Service { return useCases(tx).Customers })
	opsHandler := cfg.Ops
	if opsHandler == nil {
		opsHandler = ops.Handler(reg, ops.Needs{Pool: pool})
	}
	api := httpapi.New(httpapi.Config{
		Customers:         uses.Customers,
		Orders:            uses.Orders,
		Merges:            uses.Merges,
		Imports:           jobs,
		Webhooks:          uses.Webhooks,
		IdentityProviders: uses.IdentityProviders,
		Tokens:            tokens,
		Log:               log,
		MaxBodyBytes:      cfg.MaxBodyBytes,
		Ops:               opsHandler,
		Registry:          reg,
		OpenAPI:           spec,
		IdempotencyKeys:   idempotency.New(pool),
		UseCasesIn:        useCases,
		TrustedProxies:    cfg.TrustedProxies,
	})
	staffUsers := staff.New(pool, st, cfg.Accounts, cfg.Staff)
	admin := console.New(console.Config{
		Customers: uses.Customers, Orders: uses.Orders, Merges: uses.Merges, Webhooks: uses.Webhooks, Staff: staffUsers, Tokens: tokens,
		IdentityProviders: uses.IdentityProviders,
		Log:               log, ClientAddress: api.ClientAddress, Settings: cfg.Console,
	})
	commands := func(tx pgx.Tx) bus.Domain {
		u := useCases(tx)
		return bus.Domain{Customers: u.Customers, Orders: u.Orders, Merges: u.Merges}
	}
	return &Service{cfg: cfg, log: log, api: api, store: st, imports: jobs, merges: uses.Merges, staff: staffUsers, console: admin,
		bus: bus.New(pool, log, reg, cfg.Commands, commands, uses.Merges)}
}

// RebuildDuplicates scores every pair of the global duplicates list again,
// for customers written without events (restored from a backup, loaded in
// bulk); it tells whether it ran (not while another instance builds them).
func (s *Service) RebuildDuplicates(ctx context.Context) (bool, error) {
	return s.merges.BuildDuplicates(ctx, true)
}

// RunImports runs import jobs until ctx ends (Serve runs it).
func (s *Service) RunImports(ctx context.Context) error { return s.imports.Run(ctx) }

// RunCommands runs the bus adapter until ctx ends: the commands
// integrators publish on JetStream, and the same commands as NATS requests.
func (s *Service) RunCommands(ctx context.Context, js jetstream.JetStream) error {
	return s.bus.Run(ctx, js)
}

// Route names an authenticated route and the permission it needs.
type Route struct{ Pattern, Permission string }

// Routes lists every authenticated route, so tests can prove each one is guarded.
func (s *Service) Routes() []Route {
	var out []Route
	for _, r := range s.api.Routes() {
		out = append(out, Route{Pattern: r.Pattern, Permission: r.Permission})
	}
	return out
}

// ConsoleRoutes lists the admin console's pages and forms that need a
// staff session, so tests can prove each one is guarded.
func (s *Service) ConsoleRoutes() []Route {
	var out []Route
	for _, r := range s.console.Routes() {
		out = append(out, Route{Pattern: r.Pattern, Permission: r.Permission})
	}
	return out
}

// Handler is the service's HTTP handler (tests serve it with httptest):
// the admin console under /admin, the API everywhere else. It is no
// ServeMux: one would set each request's Pattern to "/", and the tracing
// names a request's span after the pattern of its route.
func (s *Service) Handler() http.Handler {
	api, admin := s.api.Handler(), s.console.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == console.Prefix && r.Method == http.MethodGet:
			http.Redirect(w, r, console.Prefix+"/", http.StatusMovedPermanently)
		case strings.HasPrefix(r.URL.Path, console.Prefix+"/"):
			admin.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
}

// Run serves HTTP on cfg.HTTPAddr until ctx ends, then drains open requests.
func (s *Service) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("customers: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	// The import worker and the sweeps run beside the server and end with
	// it: Serve returns only when none of them is still writing.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("customers: serve: %w", err)
		}
		return nil
	})
	g.Go(func() error { s.sweepEvery(gctx, time.Hour); return nil })
	g.Go(func() error { return s.RunImports(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			return fmt.Errorf("customers: shutdown: %w", err)
		}
		return nil
	})
	s.log.Info("customers API listening", zap.String("url", "http://"+ln.Addr().String()))
	return g.Wait()
}

// TokenGrace is how long an expired one-time token is kept: a link used
// soon after it expired is told "expired" rather than "not valid".
const TokenGrace = 24 * time.Hour

// Sweep deletes one-time tokens expired more than TokenGrace ago and ended
// sessions; it returns how many of each.
func (s *Service) Sweep(ctx context.Context) (tokens, sessions int64, err error) {
	now := time.Now()
	return s.store.Sweep(ctx, now.Add(-TokenGrace), now)
}

// SweepCommands forgets the bus commands processed longer ago than
// COMMANDS_RETENTION.
func (s *Service) SweepCommands(ctx context.Context) (int64, error) {
	return s.store.SweepCommands(ctx, time.Now().Add(-s.cfg.Commands.Retention))
}

// sweepEvery sweeps at start and then every interval until ctx ends; every
// instance does, which is harmless: the deletes are idempotent.
func (s *Service) sweepEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.SweepCommands(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("customers: sweep commands", zap.Error(err))
		} else if n > 0 {
			s.log.Info("customers: swept processed commands", zap.Int64("commands", n))
		}
		if n, err := s.staff.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("customers: sweep staff sessions", zap.Error(err))
		} else if n > 0 {
			s.log.Info("customers: swept staff sessions", zap.Int64("sessions", n))
		}
		if tokens, sessions, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("customers: sweep", zap.Error(err))
		} else if tokens+sessions > 0 {
			s.log.Info("customers: swept", zap.Int64("tokens", tokens), zap.Int64("sessions", sessions))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DuplicatesConsumer is the durable consumer of the events stream through
// which the command service keeps the duplicates list current.
const DuplicatesConsumer = bus.DuplicatesConsumer

// Permissions a token can hold.
var Permissions = auth.AllPermissions

// CreateToken issues an API token; the returned secret is shown only now.
func CreateToken(ctx context.Context, pool *pgxpool.Pool, name string, staff bool, perms []string) (string, error) {
	kind := events.AuthServiceAccount
	if staff {
		kind = events.AuthUser
	}
	token, _, err := auth.NewTokens(pool).Create(ctx, name, kind, perms)
	return token, err
}

// StaffPermissions are the permissions a staff user's group can hold.
var StaffPermissions = auth.StaffPermissions

// StaffFullAccess is the group of every permission that the first staff
// user is put in.
const StaffFullAccess = staff.FullAccess

// StaffUser is a staff user to create: see CreateStaff.
type StaffUser = staff.CreateInput

// CreateStaff creates a staff user of the console.
func CreateStaff(ctx context.Context, pool *pgxpool.Pool, in StaffUser) error {
	_, err := staff.New(pool, store.New(pool), customer.AccountConfig{}, staff.Config{}).Create(ctx, in)
	return err
}

// NewStaffPassword makes up a password for a staff user.
func NewStaffPassword() string { return staff.NewPassword() }

// FirstStaffEmail is the login of the staff user a first `make run` creates.
const FirstStaffEmail = "admin@example.com"

// EnsureFirstStaff creates a staff user of every permission when none
// exists, so a first `make run` can log in to the console; it returns its
// password, or "" when staff users exist.
func EnsureFirstStaff(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	return staff.New(pool, store.New(pool), customer.AccountConfig{}, staff.Config{}).EnsureFirst(ctx, FirstStaffEmail)
}

// EnsureDevToken creates a token with every permission when none exists yet,
// so a first `make run` can be used at once. It returns "" when tokens exist.
func EnsureDevToken(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	tokens := auth.NewTokens(pool)
	n, err := tokens.Count(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	token, _, err := tokens.Create(ctx, "development", events.AuthUser, auth.AllPermissions)
	return token, err
}
