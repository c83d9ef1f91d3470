package httpapi

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// storeCustomer is the customer as the customer sees itself: no staff
// note, private metadata, groups or external reference.
type storeCustomer struct {
	ID           uuid.UUID         `json:"id"`
	Email        string            `json:"email"`
	FirstName    string            `json:"first_name"`
	LastName     string            `json:"last_name"`
	CompanyName  string            `json:"company_name"`
	Phone        *string           `json:"phone"`
	LanguageCode string            `json:"language_code"`
	Metadata     map[string]string `json:"metadata"`
	// Attributes are those of the customer's attributes that customers see.
	Attributes               map[string]json.RawMessage `json:"attributes"`
	HasAccount               bool                       `json:"has_account"`
	IsVerified               bool                       `json:"is_verified"`
	DefaultShippingAddressID *uuid.UUID                 `json:"default_shipping_address_id"`
	DefaultBillingAddressID  *uuid.UUID                 `json:"default_billing_address_id"`
	CreatedAt                time.Time                  `json:"created_at"`
	UpdatedAt                time.Time                  `json:"updated_at"`
}

// toStoreCustomer is c as it sees itself, with only the attributes
// definitions let customers see (visible, from VisibleAttributes).
func toStoreCustomer(c customer.Customer, visible customer.Attributes) storeCustomer {
	p := c.Public()
	return storeCustomer{Attributes: visible,
		ID: p.ID, Email: p.Email, FirstName: p.FirstName, LastName: p.LastName, CompanyName: p.CompanyName,
		Phone: p.Phone, LanguageCode: p.LanguageCode, Metadata: p.Metadata, HasAccount: p.HasAccount,
		IsVerified: p.IsVerified, DefaultShippingAddressID: p.DefaultShippingAddressID,
		DefaultBillingAddressID: p.DefaultBillingAddressID, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

// sessionResponse answers a login or refresh (OAuth 2.0 token response
// names, plus absolute expiry times and the customer).
type sessionResponse struct {
	AccessToken      string        `json:"access_token"`
	TokenType        string        `json:"token_type"`
	ExpiresIn        int64         `json:"expires_in"`
	ExpiresAt        time.Time     `json:"expires_at"`
	RefreshToken     string        `json:"refresh_token"`
	RefreshExpiresAt time.Time     `json:"refresh_expires_at"`
	Customer         storeCustomer `json:"customer"`
}

func toSessionResponse(s customer.Session, visible customer.Attributes) sessionResponse {
	return sessionResponse{
		AccessToken: s.AccessToken, TokenType: "Bearer",
		ExpiresIn: int64(time.Until(s.AccessExpiresAt).Round(time.Second) / time.Second), ExpiresAt: s.AccessExpiresAt,
		RefreshToken: s.RefreshToken, RefreshExpiresAt: s.RefreshExpiresAt, Customer: toStoreCustomer(s.Customer, visible),
	}
}

// ClientAddress is the caller's IP address, for rate limits: the
// connection's peer, unless the peer is a trusted proxy; then the nearest
// address in X-Forwarded-For that is not a trusted proxy, read from the
// right, since only what trusted proxies appended can be believed (a client
// can put anything on the left).
func (a *API) ClientAddress(r *http.Request) string {
	addr, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	client := addr.Addr().Unmap()
	if !a.trusted(client) {
		return client.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // not an address: believe nothing further left
		}
		client = hop.Unmap()
		if !a.trusted(client) {
			break
		}
	}
	return client.String()
}

func (a *API) trusted(ip netip.Addr) bool {
	for _, p := range a.trustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// bodyRoute is a storefront handler that decodes the body into an In, runs
// do and answers status with do's result as JSON, or with no body when it
// is nil. The answers hold tokens or personal data, so no cache may keep
// them (RFC 6749, 5.1).
func bodyRoute[In any](a *API, status int, do func(r *http.Request, p auth.Principal, in In) (any, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		w.Header().Set("Cache-Control", "no-store")
		var in In
		if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
			return err
		}
		out, err := do(r, p, in)
		if err != nil {
			return err
		}
		writeAnswer(w, status, out)
		return nil
	}
}

// me is the answer of a route that changed the caller: itself, as it sees itself.
func (a *API) me(r *http.Request) func(customer.Customer, error) (any, error) {
	return func(c customer.Customer, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		visible, err := a.customers.VisibleAttributes(r.Context(), c)
		if err != nil {
			return nil, err
		}
		return toStoreCustomer(c, visible), nil
	}
}

// noBody is the answer of a route that has nothing to say but its status.
func noBody(err error) (any, error) { return nil, err }

func (a *API) session(r *http.Request) func(customer.Session, error) (any, error) {
	return func(s customer.Session, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		visible, err := a.customers.VisibleAttributes(r.Context(), s.Customer)
		if err != nil {
			return nil, err
		}
		return toSessionResponse(s, visible), nil
	}
}

func (a *API) register() handler {
	return bodyRoute(a, http.StatusCreated, func(r *http.Request, p auth.Principal, in customer.RegisterInput) (any, error) {
		return a.me(r)(a.customers.Register(r.Context(), origin(r, p), in))
	})
}

func (a *API) confirm() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, p auth.Principal, in customer.TokenInput) (any, error) {
		return a.me(r)(a.customers.Confirm(r.Context(), origin(r, p), in))
	})
}

func (a *API) setPassword() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, p auth.Principal, in customer.SetPasswordInput) (any, error) {
		return a.me(r)(a.customers.SetPassword(r.Context(), origin(r, p), in))
	})
}

func (a *API) requestPasswordReset() handler {
	return bodyRoute(a, http.StatusAccepted, func(r *http.Request, p auth.Principal, in customer.PasswordResetInput) (any, error) {
		return noBody(a.customers.RequestPasswordReset(r.Context(), origin(r, p), in))
	})
}

func (a *API) login() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, _ auth.Principal, in customer.LoginInput) (any, error) {
		s, err := a.customers.Login(r.Context(), in, a.ClientAddress(r))
		a.metrics.countSignIn(methodPassword, err)
		return a.session(r)(s, err)
	})
}

func (a *API) refresh() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, _ auth.Principal, in customer.RefreshInput) (any, error) {
		return a.session(r)(a.customers.Refresh(r.Context(), in))
	})
}

// logoutInput: by default the token of the request ends; all ends every
// session of the customer.
type logoutInput struct {
	All bool `json:"all"`
}

func (a *API) logout(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in logoutInput
	if r.ContentLength != 0 { // the body is optional
		if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
			return err
		}
	}
	if err := a.customers.Logout(r.Context(), p.CustomerID, p.TokenID, in.All); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) getMe(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	c, err := a.customers.Get(r.Context(), p.CustomerID)
	if err != nil {
		return err
	}
	visible, err := a.customers.VisibleAttributes(r.Context(), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toStoreCustomer(c, visible))
	return nil
}

func (a *API) updateMe() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, p auth.Principal, in customer.ProfileInput) (any, error) {
		return a.me(r)(a.customers.UpdateProfile(r.Context(), origin(r, p), p.CustomerID, in))
	})
}

func (a *API) requestEmailChange() handler {
	return bodyRoute(a, http.StatusAccepted, func(r *http.Request, p auth.Principal, in customer.EmailChangeInput) (any, error) {
		return noBody(a.customers.RequestEmailChange(r.Context(), origin(r, p), p.CustomerID, in, a.ClientAddress(r)))
	})
}

func (a *API) confirmEmailChange() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, p auth.Principal, in customer.TokenInput) (any, error) {
		return a.me(r)(a.customers.ConfirmEmailChange(r.Context(), origin(r, p), p.CustomerID, in))
	})
}

func (a *API) requestDeletion() handler {
	return bodyRoute(a, http.StatusAccepted, func(r *http.Request, p auth.Principal, in customer.EmailLink) (any, error) {
		return noBody(a.customers.RequestDeletion(r.Context(), origin(r, p), p.CustomerID, in))
	})
}

func (a *API) deleteMe() handler {
	return bodyRoute(a, http.StatusNoContent, func(r *http.Request, p auth.Principal, in customer.TokenInput) (any, error) {
		return noBody(a.customers.DeleteWithToken(r.Context(), origin(r, p), p.CustomerID, in))
	})
}
