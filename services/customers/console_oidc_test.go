package customers_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/db/gen"
)

// consoleProvider configures an identity provider through the API, named
// name (its issuer is not reached: nothing here signs in with it).
func (s *system) consoleProvider(name string) string {
	s.t.Helper()
	id := "op-" + randomSuffix()
	s.as(s.token, http.MethodPost, "/v1/settings/oidc-providers", map[string]any{
		"id": id, "display_name": name, "issuer_url": "https://" + id + ".example.com", "client_id": "shop",
		"client_secret": "secret-" + id, "redirect_urls": []string{shopCallback},
	}).expectStatus(s.t, http.StatusCreated)
	return id
}

// linkIdentity stores an identity of the customer at the provider, as a
// first sign-in links one (through sqlc, as the store does), and returns
// its id.
func (s *system) linkIdentity(customerID, provider, subject, email string) string {
	s.t.Helper()
	id := uuid.Must(uuid.NewV7())
	if err := gen.New(s.pool).InsertCustomerIdentity(context.Background(), gen.InsertCustomerIdentityParams{
		ID: id, CustomerID: uuid.MustParse(customerID), ProviderID: provider, Issuer: "https://" + provider + ".example.com",
		Subject: subject, Email: email, CreatedAt: time.Now(),
	}); err != nil {
		s.t.Fatal(err)
	}
	return id.String()
}

// A staff user adds, edits and deletes an identity provider in a real
// browser, each change read back through the API (and the secret through
// the database, the one place it is kept); no console page renders the
// secret, not even a failed form that had it typed.
func TestConsoleIdentityProvidersInABrowser(t *testing.T) {
	s := newSystem(t)
	who := s.newStaff("MANAGE_USERS", "MANAGE_SETTINGS")
	ctx := newChromium(t)
	admin := s.api.URL + "/admin/"
	consoleLogin(t, ctx, admin, who)
	id, secret := "op-"+randomSuffix(), "console-secret-"+randomSuffix()
	// noSecret fails when the page shown has the secret anywhere in it.
	noSecret := func(what string) {
		t.Helper()
		if html := value(t, ctx, "read the page", chromedp.OuterHTML(chromedp.CSS(`html`))); strings.Contains(html, secret) {
			t.Fatalf("%s: the page shows the client secret", what)
		}
	}
	readBack := func() []providerJSON {
		t.Helper()
		var out struct {
			OIDCProviders []providerJSON `json:"oidc_providers"`
		}
		s.do(http.MethodGet, "/v1/settings/oidc-providers", nil, &out)
		return out.OIDCProviders
	}
	storedSecret := func() (v string) {
		t.Helper()
		if err := s.pool.QueryRow(context.Background(), `SELECT client_secret FROM oidc_providers WHERE id = $1`, id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	run(t, ctx, "add a provider with a plain-http issuer",
		chromedp.Navigate(admin+"settings"), chromedp.WaitVisible(`//nav[@class="tabs"]/a[normalize-space()="Identity providers"]`),
		chromedp.Click(`//nav[@class="tabs"]/a[normalize-space()="Identity providers"]`), chromedp.WaitVisible(chromedp.CSS(`#f-id`)),
		chromedp.SendKeys(chromedp.CSS(`#f-id`), id), chromedp.SendKeys(chromedp.CSS(`#f-display_name`), "Acme ID"),
		chromedp.SendKeys(chromedp.CSS(`#f-issuer_url`), "http://id.acme.example"), chromedp.SendKeys(chromedp.CSS(`#f-client_id`), "shop-client"),
		chromedp.SendKeys(chromedp.CSS(`#f-client_secret`), secret), chromedp.SendKeys(chromedp.CSS(`#f-scopes`), "email profile offline_access"),
		chromedp.SendKeys(chromedp.CSS(`#f-redirect_urls`), shopCallback),
		chromedp.Click(`//button[normalize-space()="Add provider"]`), chromedp.WaitVisible(chromedp.CSS(`#f-issuer_url-error`)))
	noSecret("the failed add")
	if got := value(t, ctx, "the typed name", chromedp.Value(chromedp.CSS(`#f-display_name`))); got != "Acme ID" {
		t.Fatalf("the failed add lost the display name: %q", got)
	}
	if got := value(t, ctx, "the secret's input", chromedp.Value(chromedp.CSS(`#f-client_secret`))); got != "" {
		t.Fatalf("the failed add shows the secret's input filled: %q", got)
	}
	screenshot(t, ctx, "identity-provider-error")
	if ps := readBack(); len(ps) != 0 {
		t.Fatalf("the refused add stored a provider: %+v", ps)
	}
	run(t, ctx, "correct the issuer",
		chromedp.SetValue(chromedp.CSS(`#f-issuer_url`), "https://id.acme.example/"), chromedp.SendKeys(chromedp.CSS(`#f-client_secret`), secret),
		chromedp.Click(`//button[normalize-space()="Add provider"]`), chromedp.WaitVisible(flash("Acme ID added")))
	noSecret("the list")
	screenshot(t, ctx, "identity-providers")
	ps := readBack()
	if len(ps) != 1 || ps[0].ID != id || ps[0].DisplayName != "Acme ID" || ps[0].IssuerURL != "https://id.acme.example" || ps[0].ClientID != "shop-client" ||
		!ps[0].HasClientSecret || !slices.Equal(ps[0].Scopes, []string{"openid", "email", "profile", "offline_access"}) || !slices.Equal(ps[0].RedirectURLs, []string{shopCallback}) {
		t.Fatalf("providers after Add: %+v", ps)
	}
	if got := storedSecret(); got != secret {
		t.Fatalf("stored secret %q, typed %q", got, secret)
	}

	second := "https://shop.example.com/de/account/oidc-callback"
	run(t, ctx, "edit it with a bad redirect URL",
		chromedp.Click(chromedp.CSS(`#provider-`+id+` a[href$="/`+id+`"]`)), chromedp.WaitVisible(chromedp.CSS(`#f-display_name`)),
		chromedp.SetValue(chromedp.CSS(`#f-display_name`), "Acme Login"),
		chromedp.SetValue(chromedp.CSS(`#f-redirect_urls`), shopCallback+"\nftp://shop.example.com/cb"),
		chromedp.Click(`//button[normalize-space()="Save provider"]`), chromedp.WaitVisible(chromedp.CSS(`#f-redirect_urls-error`)))
	noSecret("the failed edit")
	if got := value(t, ctx, "the typed name", chromedp.Value(chromedp.CSS(`#f-display_name`))); got != "Acme Login" {
		t.Fatalf("the failed edit lost the display name: %q", got)
	}
	screenshot(t, ctx, "identity-provider-edit-error")
	run(t, ctx, "correct it, the secret left empty",
		chromedp.SetValue(chromedp.CSS(`#f-redirect_urls`), shopCallback+"\n"+second),
		chromedp.Click(`//button[normalize-space()="Save provider"]`), chromedp.WaitVisible(flash("Acme Login saved")))
	ps = readBack()
	if len(ps) != 1 || ps[0].DisplayName != "Acme Login" || !slices.Equal(ps[0].RedirectURLs, []string{shopCallback, second}) ||
		!ps[0].HasClientSecret || ps[0].ClientID != "shop-client" || len(ps[0].Scopes) != 4 {
		t.Fatalf("providers after the edit: %+v", ps)
	}
	if got := storedSecret(); got != secret {
		t.Fatalf("the edit with an empty secret changed it to %q", got)
	}
	run(t, ctx, "open it again", chromedp.Click(chromedp.CSS(`#provider-`+id+` a[href$="/`+id+`"]`)), chromedp.WaitVisible(chromedp.CSS(`#f-client_secret-hint`)))
	noSecret("the edit page")
	screenshot(t, ctx, "identity-provider-edit")
	// The pages as served, not only as the browser keeps them.
	staff := s.browser()
	staff.login(who)
	for _, path := range []string{"/admin/settings/identity-providers", "/admin/settings/identity-providers/" + id, "/admin/settings/identity-providers/" + id + "/delete"} {
		if resp, body := staff.get(path); resp.StatusCode != http.StatusOK || strings.Contains(body, secret) {
			t.Fatalf("%s: status %d, the secret shown: %v", path, resp.StatusCode, strings.Contains(body, secret))
		}
	}

	run(t, ctx, "delete it, confirming",
		chromedp.Click(`//a[normalize-space()="Delete…"]`), chromedp.WaitVisible(`//h1[contains(., "Delete the identity provider Acme Login")]`))
	screenshot(t, ctx, "identity-provider-delete")
	if len(readBack()) != 1 {
		t.Fatal("the provider was deleted before the confirmation")
	}
	run(t, ctx, "confirm", chromedp.Click(`//button[normalize-space()="Delete identity provider"]`), chromedp.WaitVisible(flash("Acme Login deleted")),
		chromedp.WaitVisible(`//td[contains(., "No identity providers yet")]`))
	if ps := readBack(); len(ps) != 0 {
		t.Fatalf("providers after the confirmed delete: %+v", ps)
	}
	if resp := s.do(http.MethodGet, "/v1/settings/oidc-providers/"+id, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the deleted provider: %d", resp.StatusCode)
	}
}

// The customer's page lists the identities linked to the customer (the
// subject shortened) and removes one after a confirmation, read back
// through the API's data export; the last way in of a customer without a
// password is kept, the refusal shown in the section.
func TestConsoleCustomerSignInMethodsInABrowser(t *testing.T) {
	s := newSystem(t)
	who := s.newStaff("MANAGE_USERS")
	c := s.createCustomer(map[string]any{"email": "linked-" + randomSuffix() + "@example.com", "first_name": "Ada"})
	acme, globex := s.consoleProvider("Acme ID"), s.consoleProvider("Globex Login")
	subject := "248289761001-" + randomSuffix()
	first := s.linkIdentity(c.ID, acme, subject, "ada@acme.example")
	second := s.linkIdentity(c.ID, globex, "g-"+randomSuffix(), "ada@globex.example")
	exported := func() (ids []identityJSON) {
		t.Helper()
		var export struct{ Identities []identityJSON }
		s.do(http.MethodGet, "/v1/customers/"+c.ID+"/data-export", nil, &export)
		return export.Identities
	}
	ctx := newChromium(t)
	admin := s.api.URL + "/admin/"
	consoleLogin(t, ctx, admin, who)

	run(t, ctx, "open the customer",
		chromedp.Navigate(admin+"customers/"+c.ID), chromedp.WaitVisible(`//section[@id="sign-in"]//strong[normalize-space()="Acme ID"]`),
		chromedp.WaitVisible(`//section[@id="sign-in"]//strong[normalize-space()="Globex Login"]`))
	screenshot(t, ctx, "customer-sign-in")
	section := value(t, ctx, "read the section", chromedp.Text(chromedp.CSS(`#sign-in`)))
	if !strings.Contains(section, "ada@acme.example") || !strings.Contains(section, subject[:6]+"…") || strings.Contains(section, subject) ||
		!strings.Contains(section, "Password: None") {
		t.Fatalf("the sign-in methods: %q", section)
	}
	run(t, ctx, "remove Acme's, confirming",
		chromedp.Click(chromedp.CSS(`#identity-`+first+` a.danger`)), chromedp.WaitVisible(`//h1[contains(., "Remove the sign-in with Acme ID")]`))
	screenshot(t, ctx, "customer-sign-in-remove")
	if len(exported()) != 2 {
		t.Fatal("the identity was removed before the confirmation")
	}
	run(t, ctx, "confirm", chromedp.Click(`//button[normalize-space()="Remove sign-in method"]`), chromedp.WaitVisible(flash("Acme ID removed")))
	if ids := exported(); len(ids) != 1 || ids[0].ID != second {
		t.Fatalf("identities after Remove: %+v", ids)
	}
	run(t, ctx, "remove the last one",
		chromedp.Click(chromedp.CSS(`#identity-`+second+` a.danger`)), chromedp.WaitVisible(`//h1[contains(., "Remove the sign-in with Globex Login")]`),
		chromedp.Click(`//button[normalize-space()="Remove sign-in method"]`),
		chromedp.WaitVisible(`//section[@id="sign-in"]//p[@class="alert" and contains(., "only way to sign in")]`))
	screenshot(t, ctx, "customer-sign-in-refused")
	if ids := exported(); len(ids) != 1 || ids[0].ID != second {
		t.Fatalf("identities after the refused Remove: %+v", ids)
	}
}
