package customers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshotDir keeps the console's screenshots, test artefacts to look at
// (var/ is not committed).
const screenshotDir = "../../var/screenshots"

// newChromium starts a headless Chromium of the test's own.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	// make test names the chromium it installed; a plain go test looks for
	// one, and skips without.
	path := os.Getenv("TEST_CHROMIUM")
	if path == "" {
		var err error
		if path, err = exec.LookPath("chromium"); err != nil {
			t.Skip("chromium is not installed (make test installs it)")
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Headless,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// run runs browser actions and fails the test with what it was doing.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	start := time.Now()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("browser: %s (%s)", what, time.Since(start).Round(time.Millisecond))
}

// value runs an action that reads something from the page.
func value[T any](t *testing.T, ctx context.Context, what string, read chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, read)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot saves the whole page under screenshotDir.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := value(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// flash selects the message a page shows after a form did its work: a step
// waits for its own, not for the one the page before showed.
func flash(text string) string {
	return `//p[contains(@class, "flash") and contains(., "` + text + `")]`
}

// consoleLogin opens the console and logs in, on the customers list.
func consoleLogin(t *testing.T, ctx context.Context, admin string, who staffLogin) {
	t.Helper()
	run(t, ctx, "open the console", chromedp.Navigate(admin), chromedp.WaitVisible(chromedp.CSS(`#f-email`)))
	screenshot(t, ctx, "login")
	run(t, ctx, "log in",
		chromedp.SendKeys(chromedp.CSS(`#f-email`), who.email), chromedp.SendKeys(chromedp.CSS(`#f-password`), who.password),
		chromedp.Submit(chromedp.CSS(`#f-password`)), chromedp.WaitVisible(chromedp.CSS(`a[href="/admin/customers/new"]`)))
}

// A staff user works on a customer in the console, in a real browser; each
// change is read back through the API, the set-password email from the
// SMTP server.
func TestConsoleInABrowser(t *testing.T) {
	m := newMailSystem(t)
	who := m.newStaff("MANAGE_USERS")
	ctx := newChromium(t)
	admin := m.api.URL + "/admin/"
	email := "browser-" + randomSuffix() + "@example.com"

	consoleLogin(t, ctx, admin, who)

	run(t, ctx, "create a customer",
		chromedp.Click(chromedp.CSS(`a[href="/admin/customers/new"]`)), chromedp.WaitVisible(chromedp.CSS(`#f-first_name`)),
		chromedp.SendKeys(chromedp.CSS(`#f-first_name`), "Grace"), chromedp.SendKeys(chromedp.CSS(`#f-last_name`), "Hopper"),
		chromedp.SendKeys(chromedp.CSS(`#f-email`), "not an email"),
		chromedp.SetValue(chromedp.CSS(`#f-redirect_url`), shopURL), chromedp.SetValue(chromedp.CSS(`#f-channel`), "web"),
		chromedp.Click(chromedp.CSS(`form button.primary`)), chromedp.WaitVisible(chromedp.CSS(`#f-email-error`)))
	// The failed submit kept what was typed.
	first := value(t, ctx, "read back the form", chromedp.Value(chromedp.CSS(`#f-first_name`)))
	if first != "Grace" {
		t.Fatalf("the failed submit lost the first name: %q", first)
	}
	screenshot(t, ctx, "create-customer-error")
	run(t, ctx, "correct the email",
		chromedp.SetValue(chromedp.CSS(`#f-email`), email), chromedp.Click(chromedp.CSS(`form button.primary`)), chromedp.WaitVisible(flash("Customer created")))
	m.mailTo(1, email) // the set-password email

	run(t, ctx, "search and open",
		chromedp.Navigate(admin+"customers"), chromedp.WaitVisible(chromedp.CSS(`#f-q`)),
		chromedp.SendKeys(chromedp.CSS(`#f-q`), "Hopper"), chromedp.Submit(chromedp.CSS(`#f-q`)),
		// The page of the search, not the one before it.
		chromedp.WaitVisible(chromedp.CSS(`#f-q[value="Hopper"]`)),
		chromedp.WaitVisible(`//td[contains(., "`+email+`")]`))
	screenshot(t, ctx, "customers")
	run(t, ctx, "open the customer", chromedp.Click(`//a[contains(., "Grace Hopper")]`), chromedp.WaitVisible(chromedp.CSS(`#profile-h`)))
	path := value(t, ctx, "read the path", chromedp.Evaluate[string](`location.pathname`))
	id := strings.TrimPrefix(path, "/admin/customers/")

	run(t, ctx, "edit",
		chromedp.Click(chromedp.CSS(`a[href$="/edit"]`)), chromedp.WaitVisible(chromedp.CSS(`#f-last_name`)),
		chromedp.SetValue(chromedp.CSS(`#f-last_name`), "Murray Hopper"), chromedp.SetValue(chromedp.CSS(`#f-company_name`), "US Navy"),
		chromedp.Click(chromedp.CSS(`form button.primary`)), chromedp.WaitVisible(flash("Profile saved")))
	var c customerJSON
	m.do(http.MethodGet, "/v1/customers/"+id, nil, &c)
	if c.LastName != "Murray Hopper" || c.CompanyName != "US Navy" {
		t.Fatalf("after the edit: %+v", c)
	}

	run(t, ctx, "add an address",
		chromedp.Click(chromedp.CSS(`a[href$="/addresses/new"]`)), chromedp.WaitVisible(chromedp.CSS(`#f-street_address_1`)),
		chromedp.SendKeys(chromedp.CSS(`#f-first_name`), "Grace"), chromedp.SendKeys(chromedp.CSS(`#f-last_name`), "Hopper"),
		chromedp.SendKeys(chromedp.CSS(`#f-street_address_1`), "Unter den Linden 1"), chromedp.SendKeys(chromedp.CSS(`#f-city`), "Berlin"),
		chromedp.SendKeys(chromedp.CSS(`#f-postal_code`), "10117"), chromedp.SendKeys(chromedp.CSS(`#f-country`), "DE"),
		chromedp.Click(chromedp.CSS(`input[name="default_shipping"]`)),
		chromedp.Click(chromedp.CSS(`form button.primary`)), chromedp.WaitVisible(flash("Address saved")))
	run(t, ctx, "make it the default billing address",
		chromedp.Click(`//button[contains(., "Make default billing")]`),
		chromedp.WaitVisible(flash("Default billing address set")))
	m.do(http.MethodGet, "/v1/customers/"+id, nil, &c)
	if c.DefaultShipping == nil || c.DefaultBilling == nil || *c.DefaultShipping != *c.DefaultBilling {
		t.Fatalf("defaults after the address: %v %v", c.DefaultShipping, c.DefaultBilling)
	}

	run(t, ctx, "add metadata rows",
		chromedp.SendKeys(chromedp.CSS(`#metadata-key-0`), "tier"), chromedp.SendKeys(chromedp.CSS(`#metadata-value-0`), "gold"),
		chromedp.Click(chromedp.CSS(`#metadata button[value="insert:0"]`)), chromedp.WaitVisible(chromedp.CSS(`#metadata-key-1`)),
		chromedp.SendKeys(chromedp.CSS(`#metadata-key-1`), "source"), chromedp.SendKeys(chromedp.CSS(`#metadata-value-1`), "fair"),
		chromedp.Click(chromedp.CSS(`#metadata button.button`)), chromedp.WaitVisible(flash("Metadata saved")))
	m.do(http.MethodGet, "/v1/customers/"+id, nil, &c)
	if c.Metadata["tier"] != "gold" || c.Metadata["source"] != "fair" || len(c.Metadata) != 2 {
		t.Fatalf("metadata: %v", c.Metadata)
	}

	run(t, ctx, "add a note",
		chromedp.SendKeys(chromedp.CSS(`#f-text`), "Prefers email."), chromedp.Click(chromedp.CSS(`#notes button`)), chromedp.WaitVisible(flash("Note added")))
	var notes struct {
		Notes []struct {
			Text   string `json:"text"`
			Author struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			} `json:"author"`
		} `json:"notes"`
	}
	m.do(http.MethodGet, "/v1/customers/"+id+"/notes", nil, &notes)
	if len(notes.Notes) != 1 || notes.Notes[0].Text != "Prefers email." || notes.Notes[0].Author.ID != who.id {
		t.Fatalf("notes: %+v (staff user %s)", notes.Notes, who.id)
	}

	run(t, ctx, "deactivate",
		chromedp.Click(`//button[normalize-space()="Deactivate"]`),
		chromedp.WaitVisible(`//button[normalize-space()="Activate"]`))
	m.do(http.MethodGet, "/v1/customers/"+id, nil, &c)
	if c.IsActive {
		t.Fatal("still active after Deactivate")
	}
	screenshot(t, ctx, "customer")

	// Every change the console made has the staff user as its actor.
	var history struct {
		Entries []struct {
			Type  string `json:"type"`
			Kind  string `json:"kind"`
			Actor struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			} `json:"actor"`
		} `json:"entries"`
	}
	m.do(http.MethodGet, "/v1/customers/"+id+"/history", nil, &history)
	if len(history.Entries) < 6 {
		t.Fatalf("history: %+v", history.Entries)
	}
	for _, e := range history.Entries {
		if e.Actor.Type != "user" || e.Actor.ID != who.id {
			t.Errorf("%s by %+v, want the staff user %s", e.Type, e.Actor, who.id)
		}
	}

	run(t, ctx, "delete, typing a wrong email first",
		chromedp.Click(chromedp.CSS(`a.button.danger[href$="/delete"]`)), chromedp.WaitVisible(chromedp.CSS(`#f-confirm_email`)),
		chromedp.SendKeys(chromedp.CSS(`#f-confirm_email`), "someone@example.com"), chromedp.Click(chromedp.CSS(`button.danger`)),
		chromedp.WaitVisible(chromedp.CSS(`#f-confirm_email-error`)))
	if resp := m.do(http.MethodGet, "/v1/customers/"+id, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("deleted on a wrong email: %d", resp.StatusCode)
	}
	screenshot(t, ctx, "delete-customer")
	run(t, ctx, "delete",
		chromedp.SetValue(chromedp.CSS(`#f-confirm_email`), email), chromedp.Click(chromedp.CSS(`button.danger`)),
		chromedp.WaitVisible(flash("deleted")))
	if resp := m.do(http.MethodGet, "/v1/customers/"+id, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("after Delete: %d", resp.StatusCode)
	}
}

// A staff user puts a customer in a group and out again, and transfers
// their order to another customer, who gets it once the owner accepts from
// the approval email's link; each change is read back through the API,
// the database or the email.
func TestConsoleOrdersAndGroupsInABrowser(t *testing.T) {
	m := newMailSystem(t)
	who := m.newStaff("MANAGE_USERS", "MANAGE_ORDERS")
	ann, bob := m.newShopper(), m.newShopper() // mails 1 and 2: their verifications
	ord := m.recordOrder(orderBody(&ann.ID, time.Now().Add(-time.Hour)))
	vip := m.createGroup("VIP " + randomSuffix())
	ctx := newChromium(t)
	admin := m.api.URL + "/admin/"
	annPage := admin + "customers/" + ann.ID
	groups := func() []string {
		var c customerJSON
		m.do(http.MethodGet, "/v1/customers/"+ann.ID, nil, &c)
		return c.Groups
	}
	consoleLogin(t, ctx, admin, who)

	run(t, ctx, "add to a group",
		chromedp.Navigate(annPage), chromedp.WaitVisible(chromedp.CSS(`#groups-h`)),
		chromedp.SetValue(chromedp.CSS(`#f-group_id`), vip.ID), chromedp.Click(`//section[@id="groups"]//button[normalize-space()="Add"]`),
		chromedp.WaitVisible(flash("Added to the group")))
	if g := groups(); len(g) != 1 || g[0] != vip.ID {
		t.Fatalf("groups after Add: %v, want [%s]", g, vip.ID)
	}

	run(t, ctx, "search the new owner",
		chromedp.Click(`//a[contains(., "Transfer ownership")]`), chromedp.WaitVisible(chromedp.CSS(`#f-q`)),
		chromedp.SendKeys(chromedp.CSS(`#f-q`), bob.Email), chromedp.Submit(chromedp.CSS(`#f-q`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="customer_id"][value="`+bob.ID+`"]`)))
	screenshot(t, ctx, "transfer")
	run(t, ctx, "request the transfer",
		chromedp.Click(chromedp.CSS(`input[name="customer_id"][value="`+bob.ID+`"]`)),
		chromedp.Click(`//button[normalize-space()="Request transfer"]`),
		chromedp.WaitVisible(flash("Transfer of order "+ord.Number+" requested")),
		chromedp.WaitVisible(`//tr[contains(., "`+ord.Number+`")]//span[contains(., "Transfer pending")]`))
	screenshot(t, ctx, "customer-orders")
	if mail := m.smtp.WaitMails(3)[2]; mail.Rcpt != ann.Email || !strings.Contains(mail.Text, "action=accept") {
		t.Fatalf("mail 3 to %s, want the approval email to %s:\n%s", mail.Rcpt, ann.Email, mail.Text)
	}
	run(t, ctx, "cancel it", chromedp.Click(`//button[contains(., "Cancel transfer")]`), chromedp.WaitVisible(flash("cancelled")))
	var status string
	if err := m.pool.QueryRow(context.Background(), `SELECT status FROM order_transfer_requests WHERE order_id = $1`, ord.ID).Scan(&status); err != nil || status != "cancelled" {
		t.Fatalf("the request after Cancel: %q, %v", status, err)
	}

	run(t, ctx, "transfer again, to an email typed",
		chromedp.Click(`//a[contains(., "Transfer ownership")]`), chromedp.WaitVisible(chromedp.CSS(`#f-email`)),
		chromedp.SendKeys(chromedp.CSS(`#f-email`), "nobody-"+randomSuffix()+"@example.com"),
		chromedp.Click(`//section[@aria-labelledby="email-h"]//button`), chromedp.WaitVisible(chromedp.CSS(`#f-email-error`)),
		chromedp.SetValue(chromedp.CSS(`#f-email`), bob.Email),
		chromedp.Click(`//section[@aria-labelledby="email-h"]//button`), chromedp.WaitVisible(flash("requested")))
	mail := m.smtp.WaitMails(4)[3]
	var accept *url.URL
	for _, l := range strings.Fields(mail.Text) {
		if u, err := url.Parse(l); err == nil && u.Query().Get("action") == "accept" {
			accept = u
		}
	}
	if mail.Rcpt != ann.Email || accept == nil || accept.Query().Get("order_id") != ord.ID {
		t.Fatalf("approval mail to %s, accept link %v:\n%s", mail.Rcpt, accept, mail.Text)
	}
	m.public(http.MethodPost, "/v1/store/orders/"+ord.ID+"/transfer/accept", map[string]any{
		"token": accept.Query().Get("token"), "redirect_url": shopURL, "channel": "web",
	}).expectStatus(t, http.StatusOK)
	var bobs struct{ Orders []orderJSON }
	m.as(bob.AccessToken, http.MethodGet, "/v1/store/me/orders", nil).decode(t, &bobs)
	if len(bobs.Orders) != 1 || bobs.Orders[0].ID != ord.ID {
		t.Fatalf("Bob's orders after the accept: %+v", bobs.Orders)
	}
	run(t, ctx, "the order left Ann's page",
		chromedp.Navigate(annPage), chromedp.WaitVisible(`//section[@id="orders"]//td[contains(., "No orders yet")]`))

	run(t, ctx, "remove from the group",
		chromedp.Click(`//section[@id="groups"]//button[contains(., "Remove")]`), chromedp.WaitVisible(flash("Removed from the group")))
	if g := groups(); len(g) != 0 {
		t.Fatalf("groups after Remove: %v", g)
	}
}

// A staff user runs the groups, API tokens, webhooks and settings pages;
// each change is read back through the API.
func TestConsoleAdminPagesInABrowser(t *testing.T) {
	s := newSystem(t)
	who := s.newStaff("MANAGE_USERS", "MANAGE_SETTINGS", "MANAGE_APPS", "MANAGE_STAFF")
	ctx := newChromium(t)
	admin := s.api.URL + "/admin/"
	consoleLogin(t, ctx, admin, who)
	name := "Wholesale " + randomSuffix()

	run(t, ctx, "create a group",
		chromedp.Navigate(admin+"groups"), chromedp.WaitVisible(chromedp.CSS(`#f-name`)),
		chromedp.SendKeys(chromedp.CSS(`#f-name`), name), chromedp.SendKeys(chromedp.CSS(`#f-description`), "Trade customers"),
		chromedp.Click(`//button[normalize-space()="Create group"]`), chromedp.WaitVisible(flash("Group "+name+" created")))
	var groups struct {
		CustomerGroups []groupJSON `json:"customer_groups"`
	}
	s.do(http.MethodGet, "/v1/customer-groups", nil, &groups)
	var g groupJSON
	for _, x := range groups.CustomerGroups {
		if x.Name == name {
			g = x
		}
	}
	if g.ID == "" || g.Description != "Trade customers" {
		t.Fatalf("no group %q after Create: %+v", name, groups.CustomerGroups)
	}
	run(t, ctx, "rename it",
		chromedp.SetValue(chromedp.CSS(`#f-g`+g.ID+`-name`), name+" EU"),
		chromedp.Click(chromedp.CSS(`#group-`+g.ID+` button.button`)), chromedp.WaitVisible(flash("saved")))
	screenshot(t, ctx, "groups")
	s.do(http.MethodGet, "/v1/customer-groups/"+g.ID, nil, &g)
	if g.Name != name+" EU" {
		t.Fatalf("group after the rename: %+v", g)
	}
	run(t, ctx, "delete it, confirming",
		chromedp.Click(chromedp.CSS(`#group-`+g.ID+` a.danger`)), chromedp.WaitVisible(`//h1[contains(., "Delete the group")]`))
	screenshot(t, ctx, "group-delete")
	if resp := s.do(http.MethodGet, "/v1/customer-groups/"+g.ID, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("group deleted before the confirmation: %d", resp.StatusCode)
	}
	run(t, ctx, "confirm", chromedp.Click(`//button[normalize-space()="Delete group"]`), chromedp.WaitVisible(flash("deleted")))
	if resp := s.do(http.MethodGet, "/v1/customer-groups/"+g.ID, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("group after Delete: %d", resp.StatusCode)
	}

	run(t, ctx, "create an API token",
		chromedp.Navigate(admin+"tokens"), chromedp.WaitVisible(chromedp.CSS(`#f-name`)),
		chromedp.SendKeys(chromedp.CSS(`#f-name`), "erp"), chromedp.Click(chromedp.CSS(`input[value="MANAGE_USERS"]`)),
		chromedp.Click(`//button[normalize-space()="Create token"]`), chromedp.WaitVisible(chromedp.CSS(`#secret`)))
	screenshot(t, ctx, "token-created")
	token := value(t, ctx, "read the token", chromedp.Value(chromedp.CSS(`#secret`)))
	if resp := s.doWith(token, http.MethodGet, "/v1/customers", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the new token: %d", resp.StatusCode)
	}
	if resp := s.doWith(token, http.MethodGet, "/v1/settings/address-form", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the new token beyond its permission: %d", resp.StatusCode)
	}
	run(t, ctx, "revoke it",
		chromedp.Click(`//a[contains(., "I have copied it")]`), chromedp.WaitVisible(`//td[contains(., "erp")]`))
	screenshot(t, ctx, "tokens")
	run(t, ctx, "revoke it",
		chromedp.Click(`//tr[td[contains(., "erp")]]//button[contains(., "Revoke")]`), chromedp.WaitVisible(flash("revoked")))
	if resp := s.doWith(token, http.MethodGet, "/v1/customers", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the revoked token: %d", resp.StatusCode)
	}

	hookURL := "https://hooks.example.com/" + randomSuffix()
	run(t, ctx, "create a webhook",
		chromedp.Navigate(admin+"webhooks"), chromedp.WaitVisible(chromedp.CSS(`#f-url`)),
		chromedp.SendKeys(chromedp.CSS(`#f-url`), hookURL), chromedp.SendKeys(chromedp.CSS(`#f-event_types`), "customer.*, order.recorded"),
		chromedp.Click(`//button[normalize-space()="Create webhook"]`), chromedp.WaitVisible(chromedp.CSS(`#secret`)))
	secret := value(t, ctx, "read the secret", chromedp.Value(chromedp.CSS(`#secret`)))
	var hooks struct {
		Webhooks []struct {
			ID         string   `json:"id"`
			URL        string   `json:"url"`
			EventTypes []string `json:"event_types"`
			IsActive   bool     `json:"is_active"`
		} `json:"webhooks"`
	}
	s.do(http.MethodGet, "/v1/webhooks", nil, &hooks)
	if len(hooks.Webhooks) != 1 || hooks.Webhooks[0].URL != hookURL || len(hooks.Webhooks[0].EventTypes) != 2 || secret == "" {
		t.Fatalf("webhooks after Create: %+v (secret %q)", hooks.Webhooks, secret)
	}
	hookID := hooks.Webhooks[0].ID
	run(t, ctx, "open it and ping it",
		chromedp.Click(`//a[contains(., "I have copied it")]`), chromedp.WaitVisible(chromedp.CSS(`#deliveries-h`)),
		chromedp.Click(`//button[normalize-space()="Ping"]`), chromedp.WaitVisible(flash("Ping queued")),
		chromedp.WaitVisible(`//section[@id="deliveries"]//td[contains(., "webhook.ping")]`))
	var deliveries struct {
		Deliveries []struct {
			ID        string `json:"id"`
			EventType string `json:"event_type"`
		} `json:"deliveries"`
	}
	s.do(http.MethodGet, "/v1/webhooks/"+hookID+"/deliveries", nil, &deliveries)
	if len(deliveries.Deliveries) != 1 || deliveries.Deliveries[0].EventType != "webhook.ping" {
		t.Fatalf("deliveries after Ping: %+v", deliveries.Deliveries)
	}
	// The ping failed for good (no endpoint answers in this test); Retry
	// makes it due again.
	did := deliveries.Deliveries[0].ID
	if _, err := s.pool.Exec(context.Background(), `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = now() + interval '1 day' WHERE id = $1`, did); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "retry the delivery",
		chromedp.Reload(), chromedp.WaitVisible(`//span[normalize-space()="Failed"]`),
		chromedp.Click(`//section[@id="deliveries"]//button[contains(., "Retry")]`), chromedp.WaitVisible(flash("queued again")))
	var due bool
	var status string
	if err := s.pool.QueryRow(context.Background(), `SELECT status, next_attempt_at <= now() FROM webhook_deliveries WHERE id = $1`, did).Scan(&status, &due); err != nil || status != "pending" || !due {
		t.Fatalf("the delivery after Retry: %q, due %v, %v", status, due, err)
	}
	screenshot(t, ctx, "webhook-deliveries")
	run(t, ctx, "deactivate it",
		chromedp.Click(`//button[normalize-space()="Deactivate"]`), chromedp.WaitVisible(flash("deactivated")))
	screenshot(t, ctx, "webhook")
	s.do(http.MethodGet, "/v1/webhooks", nil, &hooks)
	if hooks.Webhooks[0].IsActive {
		t.Fatal("the webhook is active after Deactivate")
	}
	run(t, ctx, "rotate its secret", chromedp.Click(`//button[normalize-space()="Rotate secret"]`), chromedp.WaitVisible(chromedp.CSS(`#secret`)))
	if rotated := value(t, ctx, "read the new secret", chromedp.Value(chromedp.CSS(`#secret`))); rotated == secret || rotated == "" {
		t.Fatalf("the rotated secret %q, the first %q", rotated, secret)
	}
	run(t, ctx, "back to the list", chromedp.Navigate(admin+"webhooks"), chromedp.WaitVisible(`//td[contains(., "`+hookURL+`")]`))
	screenshot(t, ctx, "webhooks")
	run(t, ctx, "delete it, confirming",
		chromedp.Navigate(admin+"webhooks/"+hookID), chromedp.WaitVisible(chromedp.CSS(`#deliveries-h`)),
		chromedp.Click(`//a[normalize-space()="Delete"]`), chromedp.WaitVisible(`//h1[contains(., "Delete the webhook")]`))
	if resp := s.do(http.MethodGet, "/v1/webhooks/"+hookID, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook deleted before the confirmation: %d", resp.StatusCode)
	}
	run(t, ctx, "confirm", chromedp.Click(`//button[normalize-space()="Delete webhook"]`), chromedp.WaitVisible(flash("Webhook deleted")))
	if resp := s.do(http.MethodGet, "/v1/webhooks/"+hookID, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("webhook after the confirmed Delete: %d", resp.StatusCode)
	}

	run(t, ctx, "require the phone in addresses",
		chromedp.Navigate(admin+"settings"), chromedp.WaitVisible(chromedp.CSS(`input[value="phone"]`)),
		chromedp.Click(chromedp.CSS(`input[value="phone"]`)), chromedp.Click(`//button[normalize-space()="Save address form"]`),
		chromedp.WaitVisible(flash("Address form saved")))
	screenshot(t, ctx, "settings")
	var form struct {
		RequiredFields []string `json:"required_fields"`
	}
	s.do(http.MethodGet, "/v1/settings/address-form", nil, &form)
	if !slices.Contains(form.RequiredFields, "phone") || !slices.Contains(form.RequiredFields, "country") {
		t.Fatalf("the address form after Save: %v", form.RequiredFields)
	}
}

// A staff user sets a customer's consents, downloads their data export,
// merges a duplicate into them after its preview, dismisses another, and
// anonymizes them, in a real browser; each change is read back through the
// API.
func TestConsoleCustomerPrivacyAndMergeInABrowser(t *testing.T) {
	s := newSystem(t)
	who := s.newStaff("MANAGE_USERS")
	phone := "+493011122233"
	ann := s.createCustomer(map[string]any{"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "phone": phone})
	dup := s.createCustomer(map[string]any{"email": "ann.lee@example.org", "first_name": "Annie", "last_name": "Lee", "phone": phone, "note": "from the shop"})
	other := s.createCustomer(map[string]any{"email": "a.lee@example.net", "first_name": "Andy", "last_name": "Lee", "phone": phone})
	ord := s.recordOrder(orderBody(&dup.ID, time.Now().Add(-time.Hour)))
	ctx := newChromium(t)
	admin := s.api.URL + "/admin/"
	annPage := admin + "customers/" + ann.ID
	consoleLogin(t, ctx, admin, who)
	get := func(id string) (c customerJSON) {
		s.do(http.MethodGet, "/v1/customers/"+id, nil, &c)
		return c
	}

	run(t, ctx, "subscribe to email",
		chromedp.Navigate(annPage), chromedp.WaitVisible(chromedp.CSS(`#consent-h`)),
		chromedp.SetValue(chromedp.CSS(`#f-email-state`), "subscribed"),
		chromedp.SendKeys(chromedp.CSS(`#f-email-collected_from`), "trade fair"),
		chromedp.Click(`//button[normalize-space()="Save Email consent"]`), chromedp.WaitVisible(flash("Consent saved")))
	var consents customerJSONWithConsent
	s.do(http.MethodGet, "/v1/customers/"+ann.ID, nil, &consents)
	if consents.Email.State != "subscribed" || consents.Email.OptInLevel != "single_opt_in" || consents.Email.CollectedFrom != "trade fair" {
		t.Fatalf("email consent after Save: %+v", consents.Email)
	}
	// A refused consent is shown beside its field, with what was typed.
	run(t, ctx, "a confirmed opt-in to SMS is refused",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#f-sms-opt_in_level').add(new Option('confirmed', 'confirmed_opt_in', true, true))`),
		chromedp.SetValue(chromedp.CSS(`#f-sms-state`), "subscribed"),
		chromedp.SendKeys(chromedp.CSS(`#f-sms-collected_from`), "phone call"),
		chromedp.Click(`//button[normalize-space()="Save SMS consent"]`), chromedp.WaitVisible(`//form[@id="consent-sms"]//p[@class="error"]`))
	if typed := value(t, ctx, "read back the form", chromedp.Value(chromedp.CSS(`#f-sms-collected_from`))); typed != "phone call" {
		t.Fatalf("the refused consent lost what was typed: %q", typed)
	}
	s.do(http.MethodGet, "/v1/customers/"+ann.ID, nil, &consents)
	if consents.SMS.State != "not_subscribed" {
		t.Fatalf("SMS consent after the refusal: %+v", consents.SMS)
	}

	// The download is the API's data export of the customer.
	run(t, ctx, "back to the page", chromedp.Navigate(annPage), chromedp.WaitVisible(`//a[contains(., "Download data export")]`))
	downloaded := value(t, ctx, "download the data export", chromedp.Evaluate[string](
		`fetch(document.querySelector("a[download]").href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	var fromConsole, fromAPI map[string]any
	if err := json.Unmarshal([]byte(downloaded), &fromConsole); err != nil {
		t.Fatalf("the download: %v: %.300s", err, downloaded)
	}
	s.do(http.MethodGet, "/v1/customers/"+ann.ID+"/data-export", nil, &fromAPI)
	delete(fromConsole, "exported_at")
	delete(fromAPI, "exported_at")
	if !reflect.DeepEqual(fromConsole, fromAPI) || fromConsole["customer"].(map[string]any)["email"] != ann.Email {
		t.Fatalf("the console's data export differs from the API's:\n%v\n%v", fromConsole, fromAPI)
	}

	run(t, ctx, "see the duplicates", chromedp.WaitVisible(`//section[@id="duplicates"]//a[contains(., "Annie Lee")]`))
	screenshot(t, ctx, "customer-privacy")
	run(t, ctx, "preview the merge, keeping the duplicate's first name",
		chromedp.Click(`//section[@id="duplicates"]//li[contains(., "`+dup.Email+`")]//a[contains(., "Merge into this customer")]`),
		chromedp.WaitVisible(chromedp.CSS(`#preview-h`)),
		chromedp.Click(chromedp.CSS(`input[name="keep_first_name"][value="source"]`)),
		chromedp.Click(`//button[normalize-space()="Preview again"]`),
		chromedp.WaitVisible(`//tr[th[normalize-space()="First name"]]/td[@class="after" and normalize-space()="Annie"]`),
		chromedp.WaitVisible(`//li[normalize-space()="1 order"]`))
	screenshot(t, ctx, "merge-preview")
	if c := get(ann.ID); c.FirstName != "Ann" || c.Version != ann.Version+1 {
		t.Fatalf("the preview wrote the target: %+v", c)
	}
	run(t, ctx, "merge", chromedp.Click(`//button[contains(., "into this customer")]`), chromedp.WaitVisible(flash("Customers merged")))
	if c := get(ann.ID); c.FirstName != "Annie" || c.LastName != "Lee" || c.Email != ann.Email {
		t.Fatalf("the target after the merge: %+v", c)
	}
	var orders struct{ Orders []orderJSON }
	s.do(http.MethodGet, "/v1/customers/"+ann.ID+"/orders", nil, &orders)
	if len(orders.Orders) != 1 || orders.Orders[0].ID != ord.ID {
		t.Fatalf("the target's orders after the merge: %+v", orders.Orders)
	}
	var list struct {
		Customers []customerJSON `json:"customers"`
	}
	s.do(http.MethodGet, "/v1/customers?email="+dup.Email, nil, &list)
	if len(list.Customers) != 0 {
		t.Fatalf("the merged customer is still listed: %+v", list.Customers)
	}

	run(t, ctx, "dismiss the other duplicate",
		chromedp.WaitVisible(`//section[@id="duplicates"]//a[contains(., "Andy Lee")]`),
		chromedp.Click(`//section[@id="duplicates"]//button[contains(., "Not the same person")]`), chromedp.WaitVisible(flash("Not the same person")))
	var dups struct {
		Duplicates []struct{ Customer customerJSON } `json:"duplicates"`
	}
	s.do(http.MethodGet, "/v1/customers/"+ann.ID+"/duplicates", nil, &dups)
	if len(dups.Duplicates) != 0 {
		t.Fatalf("duplicates after the dismissal of %s: %+v", other.ID, dups.Duplicates)
	}
	// The history names the staff user who made the changes.
	run(t, ctx, "the history names the staff user",
		chromedp.WaitVisible(`//section[@id="history"]//span[contains(., "staff: Sam Staff <`+who.email+`>")]`))

	run(t, ctx, "anonymize, typing a wrong email first",
		chromedp.Click(`//a[normalize-space()="Anonymize…"]`), chromedp.WaitVisible(chromedp.CSS(`#f-confirm_email`)),
		chromedp.SendKeys(chromedp.CSS(`#f-confirm_email`), dup.Email), chromedp.Click(chromedp.CSS(`button.danger`)),
		chromedp.WaitVisible(chromedp.CSS(`#f-confirm_email-error`)))
	screenshot(t, ctx, "anonymize-customer")
	if c := get(ann.ID); c.IsAnonymized {
		t.Fatal("anonymized on a wrong email")
	}
	run(t, ctx, "anonymize",
		chromedp.SetValue(chromedp.CSS(`#f-confirm_email`), ann.Email), chromedp.Click(chromedp.CSS(`button.danger`)),
		chromedp.WaitVisible(flash("anonymized")), chromedp.WaitVisible(`//span[contains(@class, "badge") and normalize-space()="Anonymized"]`))
	if c := get(ann.ID); !c.IsAnonymized || c.Email == ann.Email || c.FirstName != "" || c.Phone != nil {
		t.Fatalf("after Anonymize: %+v", c)
	}
}
