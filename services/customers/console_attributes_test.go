package customers_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
)

// A staff user defines, edits and deletes customer attributes in a real
// browser, each read back through GET /v1/settings/customer-attributes,
// and sets a customer's values in the Edit form (typed inputs, a refused
// value beside its input), read back through GET /v1/customers/{id}.
func TestConsoleCustomerAttributesInABrowser(t *testing.T) {
	s := newSystem(t)
	who := s.newStaff("MANAGE_USERS", "MANAGE_SETTINGS")
	c := s.createCustomer(map[string]any{"email": "attrs-" + randomSuffix() + "@example.com", "first_name": "Lin"})
	ctx := newChromium(t)
	admin := s.api.URL + "/admin/"
	consoleLogin(t, ctx, admin, who)
	type definition struct {
		Key      string       `json:"key"`
		Label    string       `json:"label"`
		Type     string       `json:"type"`
		Max      *json.Number `json:"max"`
		Values   []string     `json:"values"`
		Required bool         `json:"required"`
		Indexed  bool         `json:"indexed"`
	}
	definitions := func() map[string]definition {
		t.Helper()
		var out struct{ Attributes []definition }
		s.do(http.MethodGet, "/v1/settings/customer-attributes", nil, &out)
		m := map[string]definition{}
		for _, d := range out.Attributes {
			m[d.Key] = d
		}
		return m
	}

	run(t, ctx, "define an enum without values",
		chromedp.Navigate(admin+"settings/customer-attributes"), chromedp.WaitVisible(chromedp.CSS(`#f-key`)),
		chromedp.SendKeys(chromedp.CSS(`#f-key`), "tier"), chromedp.SendKeys(chromedp.CSS(`#f-label`), "Loyalty tier"),
		chromedp.SetValue(chromedp.CSS(`#f-type`), "enum"),
		chromedp.Click(`//button[normalize-space()="Define attribute"]`), chromedp.WaitVisible(chromedp.CSS(`#f-values-error`)))
	if got := value(t, ctx, "the typed label", chromedp.Value(chromedp.CSS(`#f-label`))); got != "Loyalty tier" {
		t.Fatalf("the failed define lost the label: %q", got)
	}
	screenshot(t, ctx, "attribute-error")
	run(t, ctx, "give it values",
		chromedp.SetValue(chromedp.CSS(`#f-values`), "bronze\nsilver\ngold"), chromedp.Click(chromedp.CSS(`input[name="indexed"]`)),
		chromedp.Click(`//button[normalize-space()="Define attribute"]`), chromedp.WaitVisible(flash("Loyalty tier defined")))
	run(t, ctx, "define an integer",
		chromedp.SendKeys(chromedp.CSS(`#f-key`), "seats"), chromedp.SendKeys(chromedp.CSS(`#f-label`), "Seats"),
		chromedp.SetValue(chromedp.CSS(`#f-type`), "integer"), chromedp.SendKeys(chromedp.CSS(`#f-max`), "500"),
		chromedp.Click(`//button[normalize-space()="Define attribute"]`), chromedp.WaitVisible(flash("Seats defined")))
	screenshot(t, ctx, "attributes")
	defs := definitions()
	if d := defs["tier"]; d.Type != "enum" || len(d.Values) != 3 || !d.Indexed || d.Label != "Loyalty tier" {
		t.Fatalf("tier after Define: %+v", d)
	}
	if d := defs["seats"]; d.Type != "integer" || d.Max == nil || d.Max.String() != "500" {
		t.Fatalf("seats after Define: %+v", d)
	}
	run(t, ctx, "edit seats",
		chromedp.Click(chromedp.CSS(`#attribute-seats a[href$="/seats"]`)), chromedp.WaitVisible(chromedp.CSS(`#f-label`)),
		chromedp.SetValue(chromedp.CSS(`#f-label`), "Licensed seats"), chromedp.SetValue(chromedp.CSS(`#f-max`), "100"),
		chromedp.Click(`//button[normalize-space()="Save attribute"]`), chromedp.WaitVisible(flash("Licensed seats saved")))
	if d := definitions()["seats"]; d.Label != "Licensed seats" || d.Max == nil || d.Max.String() != "100" {
		t.Fatalf("seats after the edit: %+v", d)
	}

	run(t, ctx, "set the customer's attributes, one out of range",
		chromedp.Navigate(admin+"customers/"+c.ID+"/edit"), chromedp.WaitVisible(chromedp.CSS(`#f-attr-seats`)),
		chromedp.SetValue(chromedp.CSS(`#f-attr-tier`), "silver"), chromedp.SendKeys(chromedp.CSS(`#f-attr-seats`), "250"),
		chromedp.Click(`//button[normalize-space()="Save"]`), chromedp.WaitVisible(chromedp.CSS(`#f-attr-seats-error`)))
	if got := value(t, ctx, "the chosen tier", chromedp.Value(chromedp.CSS(`#f-attr-tier`))); got != "silver" {
		t.Fatalf("the failed edit lost the tier: %q", got)
	}
	screenshot(t, ctx, "customer-attributes-error")
	var got struct{ Attributes map[string]json.RawMessage }
	readBack := func() {
		t.Helper()
		got.Attributes = nil // decoding into a map adds to it
		s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	}
	readBack()
	if len(got.Attributes) != 0 {
		t.Fatalf("the refused edit stored attributes: %s", got.Attributes)
	}
	run(t, ctx, "correct it",
		chromedp.SetValue(chromedp.CSS(`#f-attr-seats`), "42"), chromedp.Click(`//button[normalize-space()="Save"]`),
		chromedp.WaitVisible(flash("Profile saved")), chromedp.WaitVisible(`//dl[@aria-labelledby="attributes-h"]/dd[normalize-space()="42"]`))
	screenshot(t, ctx, "customer-attributes")
	readBack()
	if string(got.Attributes["tier"]) != `"silver"` || string(got.Attributes["seats"]) != `42` {
		t.Fatalf("attributes after Save: %s", got.Attributes)
	}

	run(t, ctx, "delete seats, refused while the customer holds a value",
		chromedp.Navigate(admin+"settings/customer-attributes/seats/delete"), chromedp.WaitVisible(`//h1[contains(., "Delete the attribute Licensed seats")]`),
		chromedp.Click(`//button[normalize-space()="Delete attribute"]`), chromedp.WaitVisible(`//p[@class="alert" and contains(., "remove the values")]`))
	screenshot(t, ctx, "attribute-delete-refused")
	if _, ok := definitions()["seats"]; !ok {
		t.Fatal("the refused delete deleted seats")
	}
	run(t, ctx, "remove the value",
		chromedp.Navigate(admin+"customers/"+c.ID+"/edit"), chromedp.WaitVisible(chromedp.CSS(`#f-attr-seats`)),
		chromedp.SetValue(chromedp.CSS(`#f-attr-seats`), ""), chromedp.Click(`//button[normalize-space()="Save"]`), chromedp.WaitVisible(flash("Profile saved")))
	readBack()
	if _, held := got.Attributes["seats"]; held {
		t.Fatalf("attributes after emptying seats: %s", got.Attributes)
	}
	run(t, ctx, "delete seats, confirming",
		chromedp.Navigate(admin+"settings/customer-attributes/seats/delete"), chromedp.WaitVisible(`//h1[contains(., "Delete the attribute")]`),
		chromedp.Click(`//button[normalize-space()="Delete attribute"]`), chromedp.WaitVisible(flash("Licensed seats deleted")))
	if _, ok := definitions()["seats"]; ok {
		t.Fatal("seats is still defined after the confirmed delete")
	}
	readBack()
	if len(got.Attributes) != 1 || string(got.Attributes["tier"]) != `"silver"` {
		t.Fatalf("attributes after removing seats: %s", got.Attributes)
	}
}
