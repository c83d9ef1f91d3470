// Package httpapi is the HTTP edge of the command service: routing,
// authentication, decoding, and turning errors into problem details.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/jackc/pgx/v5"
	"net/http"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/tracing"
	"github.com/customerbus/customerbus/ops"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/idp"
	"github.com/customerbus/customerbus/services/customers/internal/imports"
	"github.com/customerbus/customerbus/services/customers/internal/merge"
	"github.com/customerbus/customerbus/services/customers/internal/order"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
	"github.com/customerbus/customerbus/services/customers/internal/webhook"
)

// DefaultMaxBodyBytes caps request bodies unless configured otherwise.
const DefaultMaxBodyBytes = 1 << 20

// Authenticator checks bearer tokens.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (auth.Principal, error)
}

// API serves the HTTP routes.
type API struct {
	customers    *customer.Service
	orders       *order.Service
	merges       *merge.Service
	imports      *imports.Jobs
	webhooks     *webhook.Service
	providers    *idp.Service
	tokens       Authenticator
	log          *zap.Logger
	maxBodyBytes int64
	ops          http.Handler
	metrics      *metrics
	openAPI      []byte
	keys         IdempotencyKeys
	useCasesIn   func(pgx.Tx) UseCases
	// trustedProxies may set X-Forwarded-For (see ClientAddress).
	trustedProxies []netip.Prefix
}

// Config wires an API.
type Config struct {
	Customers *customer.Service
	Orders    *order.Service
	Merges    *merge.Service
	Imports   *imports.Jobs
	Webhooks  *webhook.Service
	// IdentityProviders signs customers in with OpenID Connect providers.
	IdentityProviders *idp.Service
	Tokens            Authenticator
	Log               *zap.Logger
	MaxBodyBytes      int64
	// Ops serves /healthz, /readyz and /metrics (package ops).
	Ops http.Handler
	// Registry is where the API's metrics go.
	Registry prometheus.Registerer
	// OpenAPI is the API's OpenAPI document as JSON, served at /openapi.json.
	OpenAPI []byte
	// IdempotencyKeys keeps POST answers for Idempotency-Key; nil ignores the header.
	IdempotencyKeys IdempotencyKeys
	// UseCasesIn gives the use cases in a transaction: that of a request
	// with an Idempotency-Key, which also records its answer.
	UseCasesIn func(pgx.Tx) UseCases
	// TrustedProxies are the proxies whose X-Forwarded-For names the client.
	TrustedProxies []netip.Prefix
}

// New returns an API.
func New(cfg Config) *API {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return &API{
		customers: cfg.Customers, orders: cfg.Orders, merges: cfg.Merges, imports: cfg.Imports, webhooks: cfg.Webhooks, providers: cfg.IdentityProviders,
		tokens: cfg.Tokens, log: cfg.Log,
		maxBodyBytes: cfg.MaxBodyBytes, ops: cfg.Ops,
		metrics: newMetrics(cfg.Registry), openAPI: cfg.OpenAPI,
		keys: cfg.IdempotencyKeys, useCasesIn: cfg.UseCasesIn, trustedProxies: cfg.TrustedProxies,
	}
}

// handler serves a route for an authenticated caller; its error becomes a problem.
type handler func(w http.ResponseWriter, r *http.Request, p auth.Principal) error

// Route is one API route.
type Route struct {
	Pattern string // method and path, as http.ServeMux reads them
	// Permission is what the caller's token must hold: a permission,
	// auth.Customer (a customer's own token) or auth.Public (no token).
	Permission string
	handle     handler
}

// Routes lists every API route. Tests walk it to prove that no route answers
// without a token holding its permission.
func (a *API) Routes() []Route {
	return []Route{
		{"POST /v1/store/register", auth.Public, a.register()},
		{"POST /v1/store/confirm", auth.Public, a.confirm()},
		{"POST /v1/store/token", auth.Public, a.login()},
		{"POST /v1/store/token/refresh", auth.Public, a.refresh()},
		{"POST /v1/store/password-reset", auth.Public, a.requestPasswordReset()},
		{"POST /v1/store/password", auth.Public, a.setPassword()},
		{"GET /v1/store/oidc/providers", auth.Public, a.listOIDCChoices},
		{"GET /v1/store/oidc/{provider}/authorize", auth.Public, a.authorizeOIDC},
		{"POST /v1/store/oidc/{provider}/callback", auth.Public, a.oidcCallback()},
		{"POST /v1/store/oidc/{provider}/token-exchange", auth.Public, a.oidcTokenExchange()},
		{"POST /v1/store/logout", auth.Customer, a.logout},
		{"GET /v1/store/me", auth.Customer, a.getMe},
		{"PATCH /v1/store/me", auth.Customer, a.updateMe()},
		{"GET /v1/store/me/addresses", auth.Customer, a.listAddresses(selfOwner)},
		{"POST /v1/store/me/addresses", auth.Customer, a.createAddress(selfOwner)},
		{"PATCH /v1/store/me/addresses/{aid}", auth.Customer, a.updateAddress(selfOwner)},
		{"DELETE /v1/store/me/addresses/{aid}", auth.Customer, a.deleteAddress(selfOwner)},
		{"POST /v1/store/me/email-change", auth.Customer, a.requestEmailChange()},
		{"POST /v1/store/me/email-change/confirm", auth.Customer, a.confirmEmailChange()},
		{"POST /v1/store/me/deletion-request", auth.Customer, a.requestDeletion()},
		{"POST /v1/store/me/delete", auth.Customer, a.deleteMe()},
		{"GET /v1/store/me/orders", auth.Customer, a.listOrders(selfOwner)},
		{"GET /v1/store/me/data-export", auth.Customer, a.myDataExport},
		{"GET /v1/store/me/identities", auth.Customer, a.listMyIdentities},
		{"DELETE /v1/store/me/identities/{id}", auth.Customer, a.deleteMyIdentity},
		{"GET /v1/store/me/consent/{channel}", auth.Customer, a.getMyConsent},
		{"PUT /v1/store/me/consent/{channel}", auth.Customer, a.setMyConsent()},
		{"POST /v1/store/consent/confirm", auth.Public, a.confirmConsent()},
		{"POST /v1/orders", auth.ManageOrders, a.recordOrder},
		{"POST /v1/orders/{id}/transfer-requests", auth.ManageOrders, a.requestTransfer},
		{"DELETE /v1/orders/{id}/transfer-requests", auth.ManageOrders, a.cancelTransfer},
		{"POST /v1/store/orders/{id}/transfer/accept", auth.Public, a.decideTransfer(true)},
		{"POST /v1/store/orders/{id}/transfer/decline", auth.Public, a.decideTransfer(false)},
		{"GET /v1/customers/{id}/orders", auth.ManageUsers, a.listOrders(pathOwner)},
		{"POST /v1/customers", auth.ManageUsers, a.createCustomer},
		{"GET /v1/customers", auth.ManageUsers, a.listCustomers},
		{"GET /v1/customers/export", auth.ManageUsers, a.exportCustomers},
		{"GET /v1/customers/{id}", auth.ManageUsers, a.getCustomer},
		{"PATCH /v1/customers/{id}", auth.ManageUsers, a.updateCustomer},
		{"DELETE /v1/customers/{id}", auth.ManageUsers, a.deleteCustomer},
		{"POST /v1/customers/{id}/anonymize", auth.ManageUsers, a.anonymizeCustomer},
		{"GET /v1/customers/{id}/history", auth.ManageUsers, a.customerHistory},
		{"GET /v1/customers/{id}/data-export", auth.ManageUsers, a.customerDataExport},
		{"POST /v1/customers/{id}/merge", auth.ManageUsers, a.mergeCustomer},
		{"GET /v1/customers/{id}/merge-preview", auth.ManageUsers, a.mergePreview},
		{"GET /v1/customers/{id}/duplicates", auth.ManageUsers, a.customerDuplicates},
		{"GET /v1/customer-duplicates", auth.ManageUsers, a.allDuplicates},
		{"POST /v1/customer-duplicates/dismissals", auth.ManageUsers, a.dismissDuplicate},
		{"PUT /v1/customers/{id}/consent/{channel}", auth.ManageUsers, a.setConsent()},
		{"PATCH /v1/customers/{id}/metadata", auth.ManageUsers, a.updateMetadata(false)},
		{"PATCH /v1/customers/{id}/private-metadata", auth.ManageUsers, a.updateMetadata(true)},
		{"POST /v1/customers/{id}/notes", auth.ManageUsers, a.addNote},
		{"GET /v1/customers/{id}/notes", auth.ManageUsers, a.listNotes},
		{"POST /v1/customers/bulk-delete", auth.ManageUsers, a.bulkDelete},
		{"POST /v1/customers/bulk-update", auth.ManageUsers, a.bulkUpdate},
		{"GET /v1/customers/{id}/addresses", auth.ManageUsers, a.listAddresses(pathOwner)},
		{"POST /v1/customers/{id}/addresses", auth.ManageUsers, a.createAddress(pathOwner)},
		{"PATCH /v1/customers/{id}/addresses/{aid}", auth.ManageUsers, a.updateAddress(pathOwner)},
		{"DELETE /v1/customers/{id}/addresses/{aid}", auth.ManageUsers, a.deleteAddress(pathOwner)},
		{importRoute, auth.ManageUsers, a.startImport},
		{"GET /v1/import-jobs/{id}", auth.ManageUsers, a.getImportJob},
		{"GET /v1/import-jobs/{id}/errors", auth.ManageUsers, a.listImportErrors},
		{"GET /v1/settings/address-form", auth.ManageSettings, a.getAddressForm},
		{"PUT /v1/settings/address-form", auth.ManageSettings, a.putAddressForm},
		{"GET /v1/settings/oidc-providers", auth.ManageSettings, a.listOIDCProviders},
		{"POST /v1/settings/oidc-providers", auth.ManageSettings, a.createOIDCProvider},
		{"GET /v1/settings/oidc-providers/{provider}", auth.ManageSettings, a.getOIDCProvider},
		{"PATCH /v1/settings/oidc-providers/{provider}", auth.ManageSettings, a.updateOIDCProvider},
		{"DELETE /v1/settings/oidc-providers/{provider}", auth.ManageSettings, a.deleteOIDCProvider},
		{"GET /v1/settings/customer-attributes", auth.ManageSettings, a.listAttributeDefinitions},
		{"POST /v1/settings/customer-attributes", auth.ManageSettings, a.defineAttribute()},
		{"GET /v1/settings/customer-attributes/{key}", auth.ManageSettings, a.getAttributeDefinition},
		{"PATCH /v1/settings/customer-attributes/{key}", auth.ManageSettings, a.updateAttribute()},
		{"DELETE /v1/settings/customer-attributes/{key}", auth.ManageSettings, a.deleteAttribute},
		{"POST /v1/customer-groups", auth.ManageUsers, a.createGroup},
		{"GET /v1/customer-groups", auth.ManageUsers, a.listGroups},
		{"GET /v1/customer-groups/{id}", auth.ManageUsers, a.getGroup},
		{"PATCH /v1/customer-groups/{id}", auth.ManageUsers, a.updateGroup},
		{"DELETE /v1/customer-groups/{id}", auth.ManageUsers, a.deleteGroup},
		{"POST /v1/customer-groups/{id}/customers", auth.ManageUsers, a.changeGroupMembers},
		{"POST /v1/webhooks", auth.ManageApps, a.createWebhook},
		{"GET /v1/webhooks", auth.ManageApps, a.listWebhooks},
		{"GET /v1/webhooks/{id}", auth.ManageApps, a.getWebhook()},
		{"PATCH /v1/webhooks/{id}", auth.ManageApps, a.updateWebhook()},
		{"DELETE /v1/webhooks/{id}", auth.ManageApps, a.deleteWebhook()},
		{"POST /v1/webhooks/{id}/rotate-secret", auth.ManageApps, a.rotateWebhookSecret()},
		{"POST /v1/webhooks/{id}/ping", auth.ManageApps, a.pingWebhook()},
		{"GET /v1/webhooks/{id}/deliveries", auth.ManageApps, a.listWebhookDeliveries},
		{"POST /v1/webhooks/{id}/deliveries/{did}/retry", auth.ManageApps, a.retryWebhookDelivery()},
	}
}

// Handler returns the root handler.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.Routes() {
		mux.Handle(rt.Pattern, a.metrics.instrument(rt.Pattern, tracing.Route(rt.Pattern, a.authenticated(rt))))
	}
	for _, p := range ops.Paths {
		mux.Handle(p, a.ops)
	}
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(a.openAPI)
	})
	mux.HandleFunc("GET "+events.SchemaPath+"{file}", a.serveSchema)
	return tracing.HTTP(a.withRequestContext(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			w = &missWriter{ResponseWriter: w, r: r, log: a.log}
		}
		mux.ServeHTTP(w, r)
	})))
}

// missWriter turns the mux's plain-text answers for unknown paths (404) and
// methods (405) into problem details, so that every error has one shape.
type missWriter struct {
	http.ResponseWriter
	r       *http.Request
	log     *zap.Logger
	swallow bool // the mux's own text body is dropped
}

func (m *missWriter) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		m.swallow = true
		writeProblem(m.ResponseWriter, m.r, m.log, problem.Input(code, "", problem.CodeNoRoute, "no route has this path"))
	case http.StatusMethodNotAllowed:
		m.swallow = true
		writeProblem(m.ResponseWriter, m.r, m.log, problem.Input(code, "", problem.CodeNoRoute,
			"this path does not take %s; it takes %s", m.r.Method, m.Header().Get("Allow")))
	default:
		m.ResponseWriter.WriteHeader(code)
	}
}

func (m *missWriter) Write(b []byte) (int, error) {
	if m.swallow {
		return len(b), nil
	}
	return m.ResponseWriter.Write(b)
}

// authenticated checks the bearer token and the route's permission, then runs
// the handler and renders its error, if any, as a problem. Public routes
// run without looking at any token.
func (a *API) authenticated(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.Permission == auth.Public {
			if err := rt.handle(w, r, auth.Principal{}); err != nil {
				writeProblem(w, r, a.log, err)
			}
			return
		}
		token, ok := bearerToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="customerbus"`)
			writeProblem(w, r, a.log, problem.Input(http.StatusUnauthorized, "Authorization", problem.CodeUnauthorized, "a bearer token is required"))
			return
		}
		p, err := a.tokens.Authenticate(r.Context(), token)
		if errors.Is(err, auth.ErrInvalidToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="customerbus", error="invalid_token"`)
			writeProblem(w, r, a.log, problem.Input(http.StatusUnauthorized, "Authorization", problem.CodeUnauthorized, "the bearer token is not valid"))
			return
		}
		if err != nil {
			writeProblem(w, r, a.log, err)
			return
		}
		if !p.Has(rt.Permission) {
			need := "the " + rt.Permission + " permission"
			if rt.Permission == auth.Customer {
				need = "a customer's own token"
			}
			writeProblem(w, r, a.log, problem.Input(http.StatusForbidden, "Authorization", problem.CodeForbidden, "this route needs %s", need))
			return
		}
		a.run(w, r, p, rt)
	})
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

type ctxKey int

const (
	requestIDKey ctxKey = iota
	traceParentKey
)

// withRequestContext gives every request an id and a W3C trace context (its
// span's when tracing is on, else the caller's, or a new trace), and turns a
// panic into a 500 problem.
func (a *API) withRequestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			id = randomHex(16)
		}
		tp := tracing.TraceParent(r.Context())
		if tp == "" {
			tp = r.Header.Get("traceparent")
		}
		if !events.ValidTraceParent(tp) {
			tp = events.NewTraceParent()
		}
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		ctx = context.WithValue(ctx, traceParentKey, tp)
		w.Header().Set("X-Request-Id", id)
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				tracing.Logger(ctx, a.log).Error("panic in handler", zap.String("request_id", id), zap.Any("panic", v), zap.Stack("stack"))
				writeProblem(w, r, a.log, errors.New("panic"))
			}
		}()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func requestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

func traceParent(ctx context.Context) string {
	s, _ := ctx.Value(traceParentKey).(string)
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
