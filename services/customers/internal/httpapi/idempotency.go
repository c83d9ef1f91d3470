package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/idempotency"
	"github.com/customerbus/customerbus/services/customers/internal/idp"
	"github.com/customerbus/customerbus/services/customers/internal/merge"
	"github.com/customerbus/customerbus/services/customers/internal/order"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
	"github.com/customerbus/customerbus/services/customers/internal/webhook"
)

// IdempotencyKeys runs POSTs sent with an Idempotency-Key once per key.
type IdempotencyKeys interface {
	Run(ctx context.Context, owner, key string, fingerprint []byte, fn func(tx pgx.Tx) idempotency.Response) (idempotency.Response, bool, error)
}

// UseCases are the use cases on one database: the pool, or the transaction
// of a request with an Idempotency-Key.
type UseCases struct {
	Customers *customer.Service
	Orders    *order.Service
	Merges    *merge.Service
	Webhooks  *webhook.Service
	// IdentityProviders: their settings and the sign-ins with them.
	IdentityProviders *idp.Service
}

const (
	idempotencyHeader = "Idempotency-Key"
	maxIdempotencyKey = 255
	codeKeyReused     = "idempotency_key_reused"
	codeKeyInUse      = "idempotency_key_in_use"
)

// run serves an authenticated request. A POST with an Idempotency-Key runs
// once per key and caller: a repeat gets the first answer again, marked
// Idempotent-Replayed, unless the first failed on the server's side.
func (a *API) run(w http.ResponseWriter, r *http.Request, p auth.Principal, rt Route) {
	key := r.Header.Get(idempotencyHeader)
	if r.Method != http.MethodPost || key == "" || a.keys == nil || a.useCasesIn == nil || rt.Pattern == importRoute {
		if err := rt.handle(w, r, p); err != nil {
			writeProblem(w, r, a.log, err)
		}
		return
	}
	if len(key) > maxIdempotencyKey || !printableASCII(key) {
		writeProblem(w, r, a.log, problem.Input(http.StatusBadRequest, idempotencyHeader, "invalid",
			"%s must be 1 to %d printable ASCII characters", idempotencyHeader, maxIdempotencyKey))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxBodyBytes))
	if err != nil {
		writeProblem(w, r, a.log, problem.BodyError(err, a.maxBodyBytes))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	owner := "token:" + p.TokenID.String()
	if p.IsCustomer() { // a customer's retry may come with a refreshed token
		owner = "customer:" + p.CustomerID.String()
	}
	// The route runs in the key's transaction, its answer held until that
	// commits: a client never sees an answer whose change did not commit.
	var held *heldAnswer
	answer, replayed, err := a.keys.Run(r.Context(), owner, key, idempotency.Fingerprint(r.Method, r.URL.RequestURI(), body),
		func(tx pgx.Tx) idempotency.Response {
			held = newHeldAnswer()
			in := a.on(a.useCasesIn(tx))
			if err := in.route(rt.Pattern).handle(held, r, p); err != nil {
				writeProblem(held, r, a.log, err)
			}
			return held.response()
		})
	switch {
	case errors.Is(err, idempotency.ErrReused):
		writeProblem(w, r, a.log, problem.Input(http.StatusUnprocessableEntity, idempotencyHeader, codeKeyReused,
			"this %s was used for another request; use a new key for a new request", idempotencyHeader))
	case errors.Is(err, idempotency.ErrInProgress):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, a.log, problem.Input(http.StatusConflict, idempotencyHeader, codeKeyInUse,
			"the first request with this %s has not finished; retry in a moment", idempotencyHeader))
	case err != nil:
		// Nothing committed (the answer would have committed with the
		// change): a retry runs afresh.
		writeProblem(w, r, a.log, err)
	case replayed:
		if answer.ContentType != "" {
			w.Header().Set("Content-Type", answer.ContentType)
		}
		if answer.Location != "" {
			w.Header().Set("Location", answer.Location)
		}
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(answer.Status)
		_, _ = w.Write(answer.Body)
	default:
		held.writeTo(w)
	}
}

// on is the API with its use cases on another database; the rest is shared.
func (a *API) on(u UseCases) *API {
	in := *a
	in.customers, in.orders, in.merges, in.webhooks, in.providers = u.Customers, u.Orders, u.Merges, u.Webhooks, u.IdentityProviders
	return &in
}

// route is the route of the pattern, its handler bound to a.
func (a *API) route(pattern string) Route {
	for _, rt := range a.Routes() {
		if rt.Pattern == pattern {
			return rt
		}
	}
	panic("httpapi: no route " + pattern) // the caller got the pattern from Routes
}

// heldAnswer is an answer written in full before any of it goes to the
// client.
type heldAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newHeldAnswer() *heldAnswer { return &heldAnswer{header: http.Header{}, status: http.StatusOK} }

func (h *heldAnswer) Header() http.Header         { return h.header }
func (h *heldAnswer) WriteHeader(code int)        { h.status = code }
func (h *heldAnswer) Write(b []byte) (int, error) { return h.body.Write(b) }

func (h *heldAnswer) response() idempotency.Response {
	return idempotency.Response{Status: h.status, ContentType: h.header.Get("Content-Type"), Location: h.header.Get("Location"), Body: h.body.Bytes()}
}

// writeTo sends the answer to the client.
func (h *heldAnswer) writeTo(w http.ResponseWriter) {
	for k, vs := range h.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(h.status)
	_, _ = w.Write(h.body.Bytes())
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
