// Package problem turns errors into RFC 9457 problem details, the one error
// shape of both transports: HTTP answers them, and a refused bus command's
// command.rejected carries the problem HTTP would have answered. It also
// decodes JSON bodies strictly, so both transports refuse bad input alike.
package problem

import (
	"errors"
	"fmt"
	"github.com/google/uuid"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/idp"
	"github.com/customerbus/customerbus/services/customers/internal/merge"
	"github.com/customerbus/customerbus/services/customers/internal/order"
	"github.com/customerbus/customerbus/services/customers/internal/staff"
	"github.com/customerbus/customerbus/services/customers/internal/webhook"
)

// Details is an RFC 9457 problem details body with the contract's field errors.
type Details struct {
	Type      string                `json:"type"`
	Title     string                `json:"title"`
	Status    int                   `json:"status"`
	Detail    string                `json:"detail,omitempty"`
	RequestID string                `json:"request_id,omitempty"`
	Errors    []customer.FieldError `json:"errors"`
	// MergedInto names the customer that an id no longer found was merged
	// into: the caller can go on with it.
	MergedInto *uuid.UUID `json:"merged_into,omitempty"`
	// AffectedCustomers is how many customers' values refused an attribute
	// definition change.
	AffectedCustomers *int64 `json:"affected_customers,omitempty"`
}

// Error codes of the edges (HTTP and the bus); field codes of the domain
// live in package customer.
const (
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden"
	CodeTooLarge      = "too_large"
	CodeUnknownField  = "unknown_field"
	CodeInvalidType   = "invalid_type"
	CodeMediaType     = "unsupported_media_type"
	CodeInternalError = "internal_error"
	CodeNoRoute       = "no_route"
	CodeBadLogin      = "invalid_credentials"
	CodeInactive      = "inactive"
	CodeUnverified    = "unverified"
	CodeRateLimited   = "rate_limited"
	// Merges.
	CodeMerged       = "merged"
	CodeSameCustomer = "same_customer"
	CodeMergeRunning = "merge_in_progress"
	CodeTransferOpen = "transfer_open"
	// Webhooks.
	CodeWebhookInactive = "webhook_inactive"
	CodePayloadGone     = "payload_gone"
	CodeTooManyWebhooks = "too_many_webhooks"
	// Sign-in with identity providers.
	CodeEmailNotVerified  = "email_not_verified"
	CodeUserinfoSubject   = "userinfo_subject_mismatch"
	CodeLastSignInMethod  = "last_sign_in_method"
	CodeCodeRejected      = "code_rejected"
	CodeProviderDown      = "provider_unavailable"
	CodeTooManyProviders  = "too_many_providers"
	CodeRedirectForbidden = "redirect_not_allowed"
)

const problemTypeBase = "https://customerbus.dev/problems/"

// inputError is bad input found at an edge (body, query, path, message), before the domain.
type inputError struct {
	status int
	errs   []customer.FieldError
}

func (e *inputError) Error() string { return fmt.Sprintf("bad input: %v", e.errs) }

// Input is bad input found at an edge, answered with status and one field error.
func Input(status int, field, code, format string, args ...any) error {
	return &inputError{status: status, errs: []customer.FieldError{{Field: field, Code: code, Message: fmt.Sprintf(format, args...)}}}
}

// For is the one place where errors become HTTP statuses and codes; bus
// commands are rejected with the same problems.
func For(err error) Details {
	var ie *inputError
	var ve *customer.ValidationError
	var ce *customer.ConflictError
	var rl *customer.RateLimitedError
	var merged *customer.MergedError
	var broken *customer.ValuesBrokenError
	var source *merge.SourceNotFoundError
	var token *idp.TokenError
	switch {
	case errors.As(err, &source):
		p := newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "source_id", Code: customer.CodeNotFound, Message: "no customer has the source's id"}})
		if errors.As(err, &merged) {
			p.Errors[0] = customer.FieldError{Field: "source_id", Code: CodeMerged, Message: "the source was merged into " + merged.Into.String() + " already"}
			p.MergedInto = &merged.Into
		}
		return p
	case errors.As(err, &merged):
		p := newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "id", Code: CodeMerged, Message: "this customer was merged into " + merged.Into.String() + ", which has its orders, addresses and history now"}})
		p.MergedInto = &merged.Into
		return p
	case errors.Is(err, merge.ErrSameCustomer):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "source_id", Code: CodeSameCustomer, Message: "a customer cannot be merged into itself"}})
	case errors.Is(err, merge.ErrRunning):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "source_id", Code: CodeMergeRunning, Message: "another merge of one of these customers is running; try again when it is done"}})
	case errors.Is(err, merge.ErrTransferOpen):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "source_id", Code: CodeTransferOpen, Message: "one of the customers has an open order transfer; cancel it or let it end first"}})
	case errors.As(err, &broken):
		p := newProblem(http.StatusConflict, []customer.FieldError{broken.FieldError})
		p.AffectedCustomers = &broken.Affected
		return p
	case errors.Is(err, customer.ErrAttributeNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "key", Code: customer.CodeNotFound, Message: "no customer attribute has this key"}})
	case errors.Is(err, customer.ErrAttributeExists):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "key", Code: customer.CodeUnique, Message: "a customer attribute with this key is defined already"}})
	case errors.As(err, &ie):
		return newProblem(ie.status, ie.errs)
	case errors.As(err, &ve):
		return newProblem(http.StatusBadRequest, ve.Errors)
	case errors.As(err, &ce):
		return newProblem(http.StatusConflict, []customer.FieldError{ce.FieldError})
	case errors.As(err, &rl):
		return newProblem(http.StatusTooManyRequests,
			[]customer.FieldError{{Code: CodeRateLimited, Message: rl.Error()}})
	case errors.Is(err, order.ErrOrderNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "id", Code: customer.CodeNotFound, Message: "no order has this id"}})
	case errors.Is(err, order.ErrTransferNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "id", Code: customer.CodeNotFound, Message: "the order has no open transfer request"}})
	case errors.Is(err, order.ErrTransferPending):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "id", Code: "transfer_pending", Message: "the order has an open transfer request; cancel it first"}})
	case errors.Is(err, webhook.ErrNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "id", Code: customer.CodeNotFound, Message: "no webhook has this id"}})
	case errors.Is(err, webhook.ErrDeliveryNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "did", Code: customer.CodeNotFound, Message: "the webhook has no delivery with this id"}})
	case errors.Is(err, webhook.ErrInactive):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "id", Code: CodeWebhookInactive, Message: "the webhook is not active; set is_active to true first"}})
	case errors.Is(err, webhook.ErrPayloadGone):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "did", Code: CodePayloadGone, Message: "the delivery's event is no longer kept, so it cannot be sent again"}})
	case errors.Is(err, webhook.ErrTooMany):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Code: CodeTooManyWebhooks, Message: fmt.Sprintf("there are %d webhooks already, the most there may be; delete one first", webhook.MaxWebhooks)}})
	case errors.As(err, &token):
		msg := map[string]string{
			idp.ReasonExpired: "the ID token has expired; sign in at the provider again",
			idp.ReasonNonce:   "the ID token is not the one of this sign-in (its nonce differs); start the sign-in again",
			idp.ReasonAuthorizedParty: "the ID token was issued to another client of the provider (its azp is not this shop's client id, " +
				"or it names several audiences without an azp)",
		}[token.Reason]
		if token.Reason == idp.ReasonClaimsMissing {
			msg = token.Err.Error() // names the claims and where they were looked for
		}
		if msg == "" {
			msg = "the ID token is not valid: not signed by the provider's keys, or not issued by it for this shop"
		}
		return newProblem(http.StatusUnauthorized, []customer.FieldError{{Field: "id_token", Code: token.Reason, Message: msg}})
	case errors.Is(err, idp.ErrStateInvalid):
		return newProblem(http.StatusBadRequest,
			[]customer.FieldError{{Field: "state", Code: customer.CodeInvalid, Message: "no sign-in waits with this state: it is unknown, was used already or expired; start the sign-in again"}})
	case errors.Is(err, idp.ErrCodeRejected):
		return newProblem(http.StatusBadRequest,
			[]customer.FieldError{{Field: "code", Code: CodeCodeRejected, Message: "the identity provider refused the code (used already, expired or not of this sign-in); start the sign-in again"}})
	case errors.Is(err, idp.ErrUnavailable):
		return newProblem(http.StatusBadGateway,
			[]customer.FieldError{{Field: "provider", Code: CodeProviderDown, Message: "the identity provider could not be reached or gave an unusable answer; try again later"}})
	case errors.Is(err, idp.ErrUserinfoSubject):
		return newProblem(http.StatusBadGateway,
			[]customer.FieldError{{Field: "provider", Code: CodeUserinfoSubject, Message: "the identity provider's userinfo answer is about another person than its ID token, so it cannot be used; start the sign-in again"}})
	case errors.Is(err, idp.ErrRedirectNotAllowed):
		return newProblem(http.StatusBadRequest,
			[]customer.FieldError{{Field: "redirect_url", Code: CodeRedirectForbidden, Message: "redirect_url is not one of the provider's redirect_urls"}})
	case errors.Is(err, idp.ErrProviderNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "provider", Code: customer.CodeNotFound, Message: "no identity provider has this id"}})
	case errors.Is(err, idp.ErrProviderExists):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "id", Code: customer.CodeUnique, Message: "an identity provider with this id exists already"}})
	case errors.Is(err, idp.ErrTooMany):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Code: CodeTooManyProviders, Message: fmt.Sprintf("there are %d identity providers already, the most there may be; delete one first", idp.MaxProviders)}})
	case errors.Is(err, customer.ErrEmailNotVerified):
		return newProblem(http.StatusForbidden,
			[]customer.FieldError{{Field: "email_verified", Code: CodeEmailNotVerified, Message: "the identity provider does not say that this email address is verified, so the sign-in cannot be linked to an account; verify the address at the provider, or log in with your password"}})
	case errors.Is(err, customer.ErrLastSignInMethod):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "id", Code: CodeLastSignInMethod, Message: "this is the account's only way to sign in; set a password first (with a password reset), then remove it"}})
	case errors.Is(err, customer.ErrIdentityNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "id", Code: customer.CodeNotFound, Message: "the customer has no linked identity with this id"}})
	case errors.Is(err, customer.ErrTokenInvalid):
		return newProblem(http.StatusBadRequest,
			[]customer.FieldError{{Field: "token", Code: customer.CodeInvalid, Message: "this link is not valid; check that it was copied whole, or ask for a new email"}})
	case errors.Is(err, customer.ErrSessionInvalid):
		return newProblem(http.StatusUnauthorized,
			[]customer.FieldError{{Field: "refresh_token", Code: customer.CodeInvalid, Message: "the refresh token is not valid: unknown, used already or expired; log in again"}})
	case errors.Is(err, customer.ErrBadCredentials):
		return newProblem(http.StatusUnauthorized,
			[]customer.FieldError{{Code: CodeBadLogin, Message: "the email or the password is wrong"}})
	case errors.Is(err, customer.ErrInactive):
		return newProblem(http.StatusForbidden,
			[]customer.FieldError{{Code: CodeInactive, Message: "this account is deactivated"}})
	case errors.Is(err, customer.ErrUnverified):
		return newProblem(http.StatusForbidden,
			[]customer.FieldError{{Code: CodeUnverified, Message: "confirm the email address first, with the link sent to it"}})
	case errors.Is(err, customer.ErrAnonymized):
		return newProblem(http.StatusConflict,
			[]customer.FieldError{{Field: "id", Code: customer.CodeAnonymized, Message: "the customer is anonymized: its personal data was erased, and it cannot be changed"}})
	case errors.Is(err, customer.ErrNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "id", Code: customer.CodeNotFound, Message: "no customer has this id"}})
	case errors.Is(err, customer.ErrAddressNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "aid", Code: customer.CodeNotFound, Message: "the customer has no address with this id"}})
	case errors.Is(err, staff.ErrNotFound):
		return newProblem(http.StatusNotFound,
			[]customer.FieldError{{Field: "sid", Code: customer.CodeNotFound, Message: "no staff user has this id"}})
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
			[]customer.FieldError{{Code: CodeInternalError, Message: "the server failed to handle the request; it has been logged"}})
	}
}

func newProblem(status int, errs []customer.FieldError) Details {
	code := "error"
	if len(errs) > 0 {
		code = errs[0].Code
	}
	return Details{Type: problemTypeBase + code, Title: http.StatusText(status), Status: status, Errors: errs}
}

// Retryable reports whether a failure is ours and may pass if tried again
// (a 5xx that is not Permanent): a bus command or an import batch is then
// retried rather than refused.
func Retryable(err error) bool { return For(err).Status >= 500 && !Permanent(err) }

// Permanent reports whether a failure on our side would fail again however
// often it were retried: the database refused the data itself (a data
// exception, an integrity rule no check caught, a size limit), so a bus
// command or an import row is refused rather than retried forever.
// Anything else (a lost connection, a deadlock, code ahead of its
// migrations) may pass later.
func Permanent(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || len(pg.Code) < 2 {
		return false
	}
	switch pg.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}
