package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/idp"
)

// The OpenID Connect providers customers sign in with, as the API's
// /v1/settings/oidc-providers. The client secret is write-only here too:
// no page renders it, not even a failed form's (its input is always empty).

const providersPath = Prefix + "/settings/identity-providers"

func providerPath(id string) string { return providersPath + "/" + url.PathEscape(id) }

// providerFields are the form's inputs, named as the API's fields.
var providerFields = []string{"id", "display_name", "issuer_url", "client_id", "client_secret", "scopes", "redirect_urls"}

type providersPage struct {
	Providers []idp.View
	New       providerForm
}

// providerForm is what the provider-fields template renders: the form,
// and the provider it edits (nil when adding one).
type providerForm struct {
	Form     form
	Provider *idp.View
	Defaults string // the scopes asked for when none are named
}

func newProviderForm(f form, pr *idp.View) providerForm {
	return providerForm{Form: f, Provider: pr, Defaults: strings.Join(idp.DefaultScopes, " ")}
}

func (c *Console) listProviders(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return c.providersPage(w, r, p, http.StatusOK, newForm(nil))
}

func (c *Console) providersPage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form) error {
	ps, err := c.IdentityProviders.Providers(r.Context())
	if err != nil {
		return err
	}
	views := make([]idp.View, len(ps))
	for i, pr := range ps {
		views[i] = pr.View()
	}
	c.render(w, r, status, "providers", view{Title: "Identity providers", Nav: "settings", Staff: p, Form: f,
		Data: providersPage{Providers: views, New: newProviderForm(f, nil)}})
	return nil
}

// providerInput reads the form as the API's input. Scopes are typed
// space- or comma-separated, redirect URLs one a line (or space-separated:
// a URL has no spaces); an empty secret is left out, which keeps the
// stored one when editing, unless "Remove the client secret" is ticked.
func providerInput(f form) idp.ProviderInput {
	text := func(name string) *string { v := f.Get(name); return &v }
	in := idp.ProviderInput{
		DisplayName: text("display_name"), IssuerURL: text("issuer_url"), ClientID: text("client_id"),
		Scopes:       strings.FieldsFunc(f.Get("scopes"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }),
		RedirectURLs: strings.Fields(f.Get("redirect_urls")),
	}
	if in.Scopes == nil {
		in.Scopes = []string{} // the defaults, not "unchanged"
	}
	if in.RedirectURLs == nil {
		in.RedirectURLs = []string{} // refused as required, not "unchanged"
	}
	switch secret := f.Values.Get("client_secret"); {
	case secret != "":
		in.ClientSecret = &secret
	case f.Checked("remove_client_secret"):
		in.ClientSecret = &secret
	}
	return in
}

func (c *Console) createProvider(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	in, id := providerInput(f), f.Get("id")
	in.ID = &id
	created, err := c.IdentityProviders.CreateProvider(r.Context(), in)
	if err != nil {
		return showAgain(f, err, func(status int, f form) error { return c.providersPage(w, r, p, status, f) }, providerFields...)
	}
	return done(w, r, providersPath, "Identity provider "+created.DisplayName+" added: storefronts can offer it now.")
}

// editProvider shows the provider's settings to change, the secret's
// input empty (an empty one keeps the stored secret).
func (c *Console) editProvider(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	pr, err := c.IdentityProviders.Provider(r.Context(), r.PathValue("provider"))
	if err != nil {
		return err
	}
	f := newForm(url.Values{
		"display_name": {pr.DisplayName}, "issuer_url": {pr.IssuerURL}, "client_id": {pr.ClientID},
		"scopes": {strings.Join(pr.Scopes, " ")}, "redirect_urls": {strings.Join(pr.RedirectURLs, "\n")},
	})
	return c.providerEditPage(w, r, p, http.StatusOK, f, pr.View())
}

func (c *Console) providerEditPage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form, pr idp.View) error {
	c.render(w, r, status, "provider", view{Title: "Edit " + pr.DisplayName, Nav: "settings", Staff: p, Form: f, Data: newProviderForm(f, &pr)})
	return nil
}

func (c *Console) updateProvider(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id := r.PathValue("provider")
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	updated, err := c.IdentityProviders.UpdateProvider(r.Context(), id, providerInput(f))
	if err != nil {
		return showAgain(f, err, func(status int, f form) error {
			cur, err := c.IdentityProviders.Provider(r.Context(), id)
			if err != nil {
				return err
			}
			return c.providerEditPage(w, r, p, status, f, cur.View())
		}, providerFields...)
	}
	return done(w, r, providersPath, "Identity provider "+updated.DisplayName+" saved.")
}

// confirmDeleteProvider asks before deleting the provider.
func (c *Console) confirmDeleteProvider(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	pr, err := c.IdentityProviders.Provider(r.Context(), r.PathValue("provider"))
	if err != nil {
		return err
	}
	c.confirmPage(w, r, p, "settings", http.StatusOK, newForm(nil), confirmation{
		Title: "Delete the identity provider " + pr.DisplayName + "?",
		Explain: []string{
			"Customers can no longer sign in with it, and the storefront stops offering it. The identities linked through it are deleted with it: their customers stay, and sign in with a password (a password reset sets one) or another provider.",
			"This cannot be undone; adding it again links each customer anew, by a verified email, at their next sign-in.",
		},
		Action: providerPath(pr.ID) + "/delete", Button: "Delete identity provider", Cancel: providerPath(pr.ID),
		Crumbs: []crumb{{Prefix + "/settings", "Settings"}, {providersPath, "Identity providers"}, {providerPath(pr.ID), pr.DisplayName}},
	})
	return nil
}

func (c *Console) deleteProvider(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	pr, err := c.IdentityProviders.Provider(r.Context(), r.PathValue("provider"))
	if err != nil {
		return err
	}
	if err := c.IdentityProviders.DeleteProvider(r.Context(), pr.ID); err != nil {
		return err
	}
	return done(w, r, providersPath, "Identity provider "+pr.DisplayName+" deleted, with the identities linked through it.")
}
