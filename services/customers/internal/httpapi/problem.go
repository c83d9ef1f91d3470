package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Problem is an RFC 9457 problem details body with the contract's field errors.
type Problem struct {
	Type      string                `json:"type"`
	Title     string                `json:"title"`
	Status    int                   `json:"status"`
	Detail    string                `json:"detail,omitempty"`
	RequestID string                `json:"request_id,omitempty"`
	Errors    []customer.FieldError `json:"errors"`
}

// Error codes used only at the HTTP edge; field codes live in package customer.
const (
	codeUnauthorized  = "unauthorized"
	codeForbidden     = "forbidden"
	codeTooLarge      = "too_large"
	codeUnknownField  = "unknown_field"
	codeInvalidType   = "invalid_type"
	codeMediaType     = "unsupported_media_type"
	codeInternalError = "internal_error"
	codeNoRoute       = "no_route"
	codeBadLogin      = "invalid_credentials"
	codeInactive      = "inactive"
	codeUnverified    = "unverified"
	codeRateLimited   = "rate_limited"
)

const problemTypeBase = "https://customerbus.dev/problems/"

// inputError is bad input found at the edge (body, query, path), before the domain.
type inputError struct {
	status int
	errs   []customer.FieldError
}

func (e *inputError) Error() string { return fmt.Sprintf("bad input: %v", e.errs) }

func badInput(status int, field, code, format string, args ...any) error {
	return &inputError{status: status, errs: []customer.FieldError{{Field: field, Code: code, Message: fmt.Sprintf(format, args...)}}}
}

// ProblemFor is the one place where errors become HTTP statuses and codes;
// bus commands are rejected with the same problems.
func ProblemFor(err error) Problem {
	var ie *inputError
	var ve *customer.ValidationError
	var ce *customer.ConflictError
	var rl *customer.RateLimitedError
	switch {
	case errors.As(err, &ie):
		return newProblem(ie.status, ie.errs)
	case errors.As(err, &ve):
		return newProblem(http.StatusBadRequest, ve.Errors)
	case errors.As(err, &ce):
		return newProblem(http.StatusConflict, []customer.FieldError{ce.FieldError})
	case errors.As(err, &rl):
		return newProblem(http.StatusTooManyRequests,
			[]customer.FieldError{{Code: codeRateLimited, Message: rl.Error()}})
	case errors.Is(err, customer.ErrOrderNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "id", Code: customer.CodeNotFound, Message: "no order has this id"}})
	case errors.Is(err, customer.ErrTransferNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "id", Code: customer.CodeNotFound, Message: "the order has no open transfer request"}})
	case errors.Is(err, customer.ErrTransferPending):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "id", Code: "transfer_pending", Message: "the order has an open transfer request; cancel it first"}})
	case errors.Is(err, customer.ErrTokenInvalid):
		return newProblem(http.StatusBadRequest,
			[]customer.FieldError{{Field: "token", Code: customer.CodeInvalid, Message: "this link is not valid; check that it was copied whole, or ask for a new email"}})
	case errors.Is(err, customer.ErrSessionInvalid):
		return newProblem(http.StatusUnauthorized,
			[]customer.FieldError{{Field: "refresh_token", Code: customer.CodeInvalid, Message: "the refresh token is not valid: unknown, used already or expired; log in again"}})
	case errors.Is(err, customer.ErrBadCredentials):
		return newProblem(http.StatusUnauthorized,
			[]customer.FieldError{{Code: codeBadLogin, Message: "the email or the password is wrong"}})
	case errors.Is(err, customer.ErrInactive):
		return newProblem(http.StatusForbidden,
			[]customer.FieldError{{Code: codeInactive, Message: "this account is deactivated"}})
	case errors.Is(err, customer.ErrUnverified):
		return newProblem(http.StatusForbidden,
			[]customer.FieldError{{Code: codeUnverified, Message: "confirm the email address first, with the link sent to it"}})
	case errors.Is(err, customer.ErrNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "id", Code: customer.CodeNotFound, Message: "no customer has this id"}})
	case errors.Is(err, customer.ErrAddressNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "aid", Code: customer.CodeNotFound, Message: "the customer has no address with this id"}})
	case errors.Is(err, customer.ErrGroupNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "id", Code: customer.CodeNotFound, Message: "no customer group has this id"}})
	case errors.Is(err, customer.ErrGroupNameTaken):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "name", Code: customer.CodeUnique, Message: "a customer group with this name already exists"}})
	case errors.Is(err, customer.ErrEmailTaken):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "email", Code: customer.CodeUnique, Message: "a customer with this email already exists"}})
	case errors.Is(err, customer.ErrExternalRefUsed):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "external_reference", Code: customer.CodeUnique, Message: "a customer with this external reference already exists"}})
	default:
		return newProblem(http.StatusInternalServerError,
			[]customer.FieldError{{Code: codeInternalError, Message: "the server failed to handle the request; it has been logged"}})
	}
}

func newProblem(status int, errs []customer.FieldError) Problem {
	code := "error"
	if len(errs) > 0 {
		code = errs[0].Code
	}
	return Problem{Type: problemTypeBase + code, Title: http.StatusText(status), Status: status, Errors: errs}
}

func writeProblem(w http.ResponseWriter, r *http.Request, log *zap.Logger, err error) {
	p := ProblemFor(err)
	p.RequestID = requestID(r.Context())
	if p.Status >= 500 {
		log.Error("request failed", zap.String("request_id", p.RequestID),
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

// writePage answers one page of a list: the items under key, and the cursor
// of the next page (null on the last).
func writePage[T any](w http.ResponseWriter, key string, items []T, nextCursor string) {
	var next *string
	if nextCursor != "" {
		next = &nextCursor
	}
	writeJSON(w, http.StatusOK, map[string]any{key: items, "next_cursor": next})
}
