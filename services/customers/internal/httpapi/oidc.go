package httpapi

import (
	"net/http"
	"strings"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/idp"
	"github.com/customerbus/customerbus/services/customers/internal/jsonview"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// Staff's settings of the identity providers (MANAGE_SETTINGS).

func (a *API) listOIDCProviders(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	ps, err := a.providers.Providers(r.Context())
	if err != nil {
		return err
	}
	out := make([]idp.View, len(ps))
	for i, p := range ps {
		out[i] = p.View()
	}
	writeJSON(w, http.StatusOK, map[string]any{"oidc_providers": out})
	return nil
}

func (a *API) createOIDCProvider(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	var in idp.ProviderInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	p, err := a.providers.CreateProvider(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/settings/oidc-providers/"+p.ID)
	writeJSON(w, http.StatusCreated, p.View())
	return nil
}

func (a *API) getOIDCProvider(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	p, err := a.providers.Provider(r.Context(), r.PathValue("provider"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p.View())
	return nil
}

func (a *API) updateOIDCProvider(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	var in idp.ProviderInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	p, err := a.providers.UpdateProvider(r.Context(), r.PathValue("provider"), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p.View())
	return nil
}

func (a *API) deleteOIDCProvider(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	if err := a.providers.DeleteProvider(r.Context(), r.PathValue("provider")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// The storefront's sign-in (public).

func (a *API) listOIDCChoices(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	cs, err := a.providers.Choices(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"providers": cs})
	return nil
}

// authorizeOIDC begins a sign-in. A storefront's script asks for JSON (the
// default) and sends the browser to authorization_url itself, keeping
// state to compare with the callback's; a plain link (a browser asking
// for text/html) is redirected there at once (302).
func (a *API) authorizeOIDC(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q := r.URL.Query()
	for k := range q {
		if k != "redirect_url" {
			return problem.Input(http.StatusBadRequest, k, problem.CodeUnknownField, "%s is not a known query parameter", k)
		}
	}
	out, err := a.providers.Authorize(r.Context(), idp.AuthorizeInput{Provider: r.PathValue("provider"), RedirectURL: q.Get("redirect_url"), Client: a.ClientAddress(r)})
	a.metrics.countSignIn(methodOIDC, err)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	if wantsHTML(r) {
		http.Redirect(w, r, out.AuthorizationURL, http.StatusFound)
		return nil
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// wantsHTML: the request is a browser following a link, which lists
// text/html among what it accepts (a script's fetch does not, by default).
func wantsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		media, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(media), "text/html") {
			return true
		}
	}
	return false
}

func (a *API) oidcCallback() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, p auth.Principal, in idp.CallbackInput) (any, error) {
		s, err := a.providers.Callback(r.Context(), origin(r, p), r.PathValue("provider"), in, a.ClientAddress(r))
		a.metrics.countSignIn(methodOIDC, err)
		return a.session(r)(s, err)
	})
}

func (a *API) oidcTokenExchange() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, p auth.Principal, in idp.ExchangeInput) (any, error) {
		s, err := a.providers.Exchange(r.Context(), origin(r, p), r.PathValue("provider"), in, a.ClientAddress(r))
		a.metrics.countSignIn(methodOIDC, err)
		return a.session(r)(s, err)
	})
}

// The customer's own identities.

func (a *API) listMyIdentities(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ids, err := a.customers.Identities(r.Context(), p.CustomerID)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"identities": jsonview.NewIdentities(ids)})
	return nil
}

func (a *API) deleteMyIdentity(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathUUID(r, "id", customer.ErrIdentityNotFound)
	if err != nil {
		return err
	}
	if err := a.customers.RemoveIdentity(r.Context(), p.CustomerID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
