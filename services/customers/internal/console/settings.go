package console

import (
	"errors"
	"net/http"
	"slices"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

type settingsPage struct {
	Fields   []struct{ Name, Label string }
	Required []string
	Saved    bool // false while the defaults apply
}

func (c *Console) showSettings(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return c.settingsPage(w, r, p, http.StatusOK, newForm(nil), nil)
}

func (c *Console) settingsPage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form, required []string) error {
	current, err := c.Customers.AddressForm(r.Context())
	if err != nil {
		return err
	}
	if required == nil {
		required = current.RequiredFields
	}
	data := settingsPage{Fields: addressFields, Required: required, Saved: current.UpdatedAt != nil}
	c.render(w, r, status, "settings", view{Title: "Settings", Nav: "settings", Staff: p, Form: f, Data: data})
	return nil
}

// saveSettings saves the ticked fields as the required ones, as the API's
// PUT /v1/settings/address-form; country is added by the use case.
func (c *Console) saveSettings(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	required := append([]string{}, f.Values["required_fields"]...)
	if _, err := c.Customers.SaveAddressForm(r.Context(), customer.AddressFormInput{RequiredFields: required}); err != nil {
		return showAgain(f, err, func(status int, f form) error { return c.settingsPage(w, r, p, status, f, required) }, "required_fields")
	}
	return done(w, r, Prefix+"/settings", "Address form saved: the next address written is checked against it.")
}

// API tokens are listed, made and revoked by staff holding MANAGE_STAFF:
// a token can hold any permission, and granting permissions is what
// MANAGE_STAFF does (the API has no token routes; the CLI is the other way).

type tokensPage struct {
	Tokens      []auth.TokenInfo
	Permissions []string
}

func (c *Console) listTokens(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return c.tokensPage(w, r, p, http.StatusOK, newForm(nil))
}

func (c *Console) tokensPage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form) error {
	tokens, err := c.Tokens.List(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, status, "tokens", view{Title: "API tokens", Nav: "tokens", Staff: p, Form: f,
		Data: tokensPage{Tokens: tokens, Permissions: auth.AllPermissions}})
	return nil
}

// secretPage shows a secret the once it can be seen: right after it was
// made, never by a redirect (pages are not cached).
type secretPage struct {
	What, Secret, Hint, Back string
}

func (c *Console) createToken(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	perms := f.Values["permissions"]
	switch {
	case f.Get("name") == "":
		f.Errors["name"] = "Name the token after who or what uses it."
	case len(perms) == 0:
		f.Errors["permissions"] = "Tick at least one permission."
	}
	for _, perm := range perms {
		if !slices.Contains(auth.AllPermissions, perm) {
			f.Errors["permissions"] = "Unknown permission " + perm + "."
		}
	}
	if len(f.Errors) > 0 {
		f.Message = "Please correct the fields marked below."
		return c.tokensPage(w, r, p, http.StatusUnprocessableEntity, f)
	}
	kind := events.AuthServiceAccount
	if f.Checked("staff") {
		kind = events.AuthUser
	}
	token, _, err := c.Tokens.Create(r.Context(), f.Get("name"), kind, perms)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusCreated, "secret", view{Title: "Token " + f.Get("name") + " created", Nav: "tokens", Staff: p, Data: secretPage{
		What: "API token", Secret: token, Back: Prefix + "/tokens",
		Hint: "Send it as Authorization: Bearer <token>. Only its SHA-256 is kept: copy it now, it is not shown again.",
	}})
	return nil
}

func (c *Console) revokeToken(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := uuid.Parse(r.PathValue("tid"))
	if err == nil {
		err = c.Tokens.Revoke(r.Context(), id)
	}
	if errors.Is(err, auth.ErrInvalidToken) || err == nil {
		return done(w, r, Prefix+"/tokens", "Token revoked: it is refused from now on.")
	}
	return err
}
