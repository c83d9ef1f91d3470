package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/idempotency"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// IdempotencyKeys keeps the answers of POSTs sent with an Idempotency-Key.
type IdempotencyKeys interface {
	Claim(ctx context.Context, owner, key string, fingerprint []byte) (*idempotency.Response, error)
	Finish(ctx context.Context, owner, key string, r idempotency.Response) error
	Release(ctx context.Context, owner, key string) error
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
	if r.Method != http.MethodPost || key == "" || a.keys == nil || rt.Pattern == importRoute {
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
	kept, err := a.keys.Claim(r.Context(), owner, key, idempotency.Fingerprint(r.Method, r.URL.RequestURI(), body))
	switch {
	case errors.Is(err, idempotency.ErrReused):
		writeProblem(w, r, a.log, problem.Input(http.StatusUnprocessableEntity, idempotencyHeader, codeKeyReused,
			"this %s was used for another request; use a new key for a new request", idempotencyHeader))
		return
	case errors.Is(err, idempotency.ErrInProgress):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, a.log, problem.Input(http.StatusConflict, idempotencyHeader, codeKeyInUse,
			"the first request with this %s has not finished; retry in a moment", idempotencyHeader))
		return
	case err != nil:
		writeProblem(w, r, a.log, err)
		return
	case kept != nil:
		if kept.ContentType != "" {
			w.Header().Set("Content-Type", kept.ContentType)
		}
		if kept.Location != "" {
			w.Header().Set("Location", kept.Location)
		}
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(kept.Status)
		_, _ = w.Write(kept.Body)
		return
	}
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	if err := rt.handle(rec, r, p); err != nil {
		writeProblem(rec, r, a.log, err)
	}
	// The answer is kept even when the client has gone: its retry needs it.
	ctx := context.WithoutCancel(r.Context())
	// Server failures and rate limits are not kept: a retry may succeed.
	if rec.status >= 500 || rec.status == http.StatusTooManyRequests {
		err = a.keys.Release(ctx, owner, key)
	} else {
		err = a.keys.Finish(ctx, owner, key, idempotency.Response{
			Status: rec.status, ContentType: rec.Header().Get("Content-Type"), Location: rec.Header().Get("Location"), Body: rec.body.Bytes(),
		})
	}
	if err != nil {
		a.log.Error("idempotency key not saved", zap.String("request_id", requestID(r.Context())), zap.Error(err))
	}
}

// recorder passes an answer on and keeps a copy.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
