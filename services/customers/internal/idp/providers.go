// Package idp signs customers in with OpenID Connect identity providers:
// the providers staff configure, the authorization code flow (PKCE, state
// and nonce) a storefront starts and completes, and the exchange of an ID
// token a native app obtained itself. The ID tokens are checked by
// github.com/coreos/go-oidc (issuer, audience, expiry, signature against
// the provider's published keys, fetched again when it rotates them); who
// the person is, and which customer that makes, is decided by
// customer.SignInWithIdentity.
package idp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Refusals (problem.For gives each its status and code).
var (
	ErrProviderNotFound = errors.New("identity provider not found")
	ErrProviderExists   = errors.New("identity provider id already in use")
	ErrTooMany          = errors.New("too many identity providers")
)

// Limits of a provider's settings.
const (
	MaxProviders    = 50
	MaxRedirectURLs = 20
	MaxScopes       = 20
	MaxURLLength    = 2000
	maxText         = 255
)

// DefaultScopes are asked for when staff name none: openid, and the
// claims a sign-in needs (email, email_verified) and can use (names).
var DefaultScopes = []string{"openid", "email", "profile"}

// Provider is an identity provider's settings, the client secret included.
type Provider struct {
	// ID names the provider in the storefront's URLs (/v1/store/oidc/{id}/…).
	ID          string
	DisplayName string
	// IssuerURL is the issuer's identifier: discovery is read from
	// IssuerURL + /.well-known/openid-configuration, and ID tokens must
	// name it as iss.
	IssuerURL string
	ClientID  string
	// ClientSecret authenticates us at the token endpoint; write-only in
	// the API. Empty for a public client (PKCE alone).
	ClientSecret string
	Scopes       []string
	// RedirectURLs are the storefront pages the provider may send the
	// browser back to (each registered at the provider too).
	RedirectURLs []string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// View is the provider as staff read it: never its secret, only whether
// it has one.
type View struct {
	ID              string    `json:"id"`
	DisplayName     string    `json:"display_name"`
	IssuerURL       string    `json:"issuer_url"`
	ClientID        string    `json:"client_id"`
	HasClientSecret bool      `json:"has_client_secret"`
	Scopes          []string  `json:"scopes"`
	RedirectURLs    []string  `json:"redirect_urls"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// View is the provider without its secret.
func (p Provider) View() View {
	return View{
		ID: p.ID, DisplayName: p.DisplayName, IssuerURL: p.IssuerURL, ClientID: p.ClientID,
		HasClientSecret: p.ClientSecret != "", Scopes: p.Scopes, RedirectURLs: p.RedirectURLs,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

// Choice is the provider as a storefront lists it, to offer a button.
type Choice struct {
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
}

// ProviderInput creates a provider (id, display_name, issuer_url,
// client_id and redirect_urls required) or changes one (absent fields
// stay; id cannot change).
type ProviderInput struct {
	ID           *string  `json:"id"`
	DisplayName  *string  `json:"display_name"`
	IssuerURL    *string  `json:"issuer_url"`
	ClientID     *string  `json:"client_id"`
	ClientSecret *string  `json:"client_secret"`
	Scopes       []string `json:"scopes"`
	RedirectURLs []string `json:"redirect_urls"`
}

var (
	providerID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
	scopeToken = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]{1,100}$`) // RFC 6749, 3.3
)

// apply checks the input and applies it to p.
func (in ProviderInput) apply(c *customer.Checks, p Provider, creating bool) Provider {
	required := func(field string, v *string) {
		if creating && v == nil {
			c.Fail(field, customer.CodeRequired, "%s is required", field)
		}
	}
	required("id", in.ID)
	required("display_name", in.DisplayName)
	required("issuer_url", in.IssuerURL)
	required("client_id", in.ClientID)
	if in.ID != nil {
		switch {
		case !creating && *in.ID != p.ID:
			c.Fail("id", customer.CodeInvalid, "a provider's id cannot change; create another provider instead")
		case !providerID.MatchString(*in.ID):
			c.Fail("id", customer.CodeInvalid, "id must be 1 to 40 lowercase letters, digits or hyphens, starting with a letter or digit")
		}
		p.ID = *in.ID
	}
	if in.DisplayName != nil {
		p.DisplayName = c.RequiredText("display_name", *in.DisplayName, 100)
	}
	if in.IssuerURL != nil {
		p.IssuerURL = strings.TrimSuffix(strings.TrimSpace(*in.IssuerURL), "/")
		checkURL(c, "issuer_url", p.IssuerURL)
	}
	if in.ClientID != nil {
		p.ClientID = c.RequiredText("client_id", *in.ClientID, maxText)
	}
	if in.ClientSecret != nil {
		p.ClientSecret = c.Text("client_secret", *in.ClientSecret, maxText)
	}
	if in.Scopes != nil || creating {
		p.Scopes = scopes(c, in.Scopes)
	}
	if in.RedirectURLs != nil || creating {
		p.RedirectURLs = redirectURLs(c, in.RedirectURLs)
	}
	return p
}

// scopes are the scopes asked for, openid first and always there.
func scopes(c *customer.Checks, in []string) []string {
	if len(in) == 0 {
		return slices.Clone(DefaultScopes)
	}
	if len(in) > MaxScopes {
		c.Fail("scopes", customer.CodeTooMany, "at most %d scopes", MaxScopes)
		return nil
	}
	out := []string{"openid"}
	for i, s := range in {
		if !scopeToken.MatchString(s) {
			c.Fail("scopes", customer.CodeInvalid, "scopes[%d]: %q is not a scope (RFC 6749, 3.3)", i, s)
		} else if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func redirectURLs(c *customer.Checks, in []string) []string {
	switch {
	case len(in) == 0:
		c.Fail("redirect_urls", customer.CodeRequired, "redirect_urls is required: the storefront pages the provider may send the browser back to")
		return nil
	case len(in) > MaxRedirectURLs:
		c.Fail("redirect_urls", customer.CodeTooMany, "at most %d redirect_urls", MaxRedirectURLs)
		return nil
	}
	out := make([]string, 0, len(in))
	for i, u := range in {
		checkURL(c, fmt.Sprintf("redirect_urls[%d]", i), u)
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// checkURL requires an absolute https URL without a fragment (http only
// on the machine itself, for development): an issuer or a redirect over
// plain http would give codes and tokens to whoever is on the path.
func checkURL(c *customer.Checks, field, raw string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		c.Fail(field, customer.CodeRequired, "%s is required", field)
	case err != nil || u.Host == "" || u.Fragment != "" || u.User != nil || len(raw) > MaxURLLength:
		c.Fail(field, customer.CodeInvalid, "%s must be an absolute URL of at most %d characters, without a fragment or user info", field, MaxURLLength)
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback(u.Hostname()):
	default:
		c.Fail(field, customer.CodeInvalid, "%s must be an https URL (http only on localhost)", field)
	}
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CreateProvider adds a provider.
func (s *Service) CreateProvider(ctx context.Context, in ProviderInput) (Provider, error) {
	var c customer.Checks
	p := in.apply(&c, Provider{}, true)
	if err := c.Err(); err != nil {
		return Provider{}, err
	}
	p.CreatedAt = s.now()
	p.UpdatedAt = p.CreatedAt
	if err := s.store.CreateProvider(ctx, p, MaxProviders); err != nil {
		return Provider{}, err
	}
	return p, nil
}

// Provider reads one provider.
func (s *Service) Provider(ctx context.Context, id string) (Provider, error) {
	return s.store.GetProvider(ctx, id)
}

// Providers reads every provider, by id (there are MaxProviders at most).
func (s *Service) Providers(ctx context.Context) ([]Provider, error) {
	return s.store.ListProviders(ctx)
}

// Choices are the providers a storefront can offer.
func (s *Service) Choices(ctx context.Context) ([]Choice, error) {
	ps, err := s.store.ListProviders(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Choice, len(ps))
	for i, p := range ps {
		out[i] = Choice{ID: p.ID, DisplayName: p.DisplayName}
	}
	return out, nil
}

// UpdateProvider changes the fields present in the input.
func (s *Service) UpdateProvider(ctx context.Context, id string, in ProviderInput) (Provider, error) {
	return s.store.UpdateProvider(ctx, id, func(cur Provider) (*Provider, error) {
		var c customer.Checks
		next := in.apply(&c, cur, false)
		if err := c.Err(); err != nil {
			return nil, err
		}
		next.UpdatedAt = s.now()
		return &next, nil
	})
}

// DeleteProvider removes the provider, its open sign-ins and the
// identities linked through it: its accounts sign in no more.
func (s *Service) DeleteProvider(ctx context.Context, id string) error {
	return s.store.DeleteProvider(ctx, id)
}
