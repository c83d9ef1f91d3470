package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/customerbus/customerbus/events/tracing"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

func writeProblem(w http.ResponseWriter, r *http.Request, log *zap.Logger, err error) {
	p := problem.For(err)
	p.RequestID = requestID(r.Context())
	if p.Status >= 500 {
		tracing.Logger(r.Context(), log).Error("request failed", zap.String("request_id", p.RequestID),
			zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	}
	var rl *customer.RateLimitedError
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(rl.RetryAfter.Seconds()+0.999))))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeAnswer answers status with out as JSON, or with no body when out is nil.
func writeAnswer(w http.ResponseWriter, status int, out any) {
	if out == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, out)
}

// writePage answers one page of a list: the items under key, and the cursor
// of the next page (null on the last).
func writePage[T any](w http.ResponseWriter, key string, items []T, nextCursor string) {
	var next *string
	if nextCursor != "" {
		next = &nextCursor
	}
	writeJSON(w, http.StatusOK, map[string]any{key: items, "next_cursor": next})
}
