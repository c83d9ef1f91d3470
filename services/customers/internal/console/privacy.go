package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/jsonview"
)

// consentFields are the inputs of a consent form, named as the API's.
var consentFields = []string{"state", "opt_in_level", "collected_from"}

// consentEditor is one channel's consent as the customer page shows and
// edits it.
type consentEditor struct {
	Channel string
	Title   string
	Consent customer.Consent
	Form    form
	// States are those staff may set; pending is the state of a confirmed
	// opt-in waiting for its confirmation, which only the email's link ends.
	States []string
	Levels []string
}

// consentEditors are the customer's consents, each with its form: the
// failed one as typed, the others as stored.
func consentEditors(v view) []consentEditor {
	cu := v.Data.(customerPage).Customer
	var out []consentEditor
	for _, ch := range customer.ConsentChannels {
		e := consentEditor{Channel: ch, Title: "Email", Consent: cu.EmailConsent,
			States: []string{customer.ConsentSubscribed, customer.ConsentUnsubscribed, customer.ConsentNotSubscribed},
			Levels: []string{customer.OptInSingle, customer.OptInConfirmed}}
		if ch == customer.ChannelSMS {
			e.Title, e.Consent, e.Levels = "SMS", cu.SMSConsent, []string{customer.OptInSingle}
		}
		e.Form = newForm(url.Values{"state": {e.Consent.State}, "opt_in_level": {e.Consent.OptInLevel}})
		if v.Form.Get("editor") == "consent-"+ch {
			e.Form = v.Form
		}
		out = append(out, e)
	}
	return out
}

// setConsent is the API's PUT /v1/customers/{id}/consent/{channel}. A
// confirmed opt-in to email sends the customer the confirmation email,
// linking to the storefront.
func (c *Console) setConsent(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, f, err := postedTo(r)
	if err != nil {
		return err
	}
	channel := r.PathValue("channel")
	in := customer.ConsentInput{State: f.Get("state"), OptInLevel: f.Get("opt_in_level"), CollectedFrom: f.Get("collected_from")}
	if in.State == customer.ConsentSubscribed && in.OptInLevel == customer.OptInConfirmed {
		in.EmailLink = customer.EmailLink{RedirectURL: c.Settings.StorefrontURL + "/confirm-consent", Channel: c.Settings.Channel}
	}
	cu, err := c.Customers.SetConsent(r.Context(), origin(p), id, channel, in, false)
	if err != nil {
		return showAgain(f, err, c.customerPageOf(w, r, p, id, "consent-"+channel), consentFields...)
	}
	msg := "Consent saved."
	if cu.EmailConsent.State == customer.ConsentPending && channel == customer.ChannelEmail {
		msg = "Consent pending: the customer was emailed to confirm it."
	}
	return done(w, r, customerPath(id)+"#consent", msg)
}

// dataExport downloads the API's GET /v1/customers/{id}/data-export.
func (c *Console) dataExport(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := pathUUID(r, "id")
	if err != nil {
		return err
	}
	d, err := c.Customers.DataExport(r.Context(), id)
	if err != nil {
		return err
	}
	jsonview.WriteDataExport(w, d, true)
	return nil
}

// customerAction is a change of a customer that cannot be undone, done
// once its email is typed, as Medusa asks before a deletion.
type customerAction struct {
	path, title, button string
	explain             []string
	// run does it; to and msg are the page to go to and what it says.
	run func(c *Console, r *http.Request, p auth.Principal, cu customer.Customer) (to, msg string, err error)
}

var deletion = customerAction{
	path: "delete", title: "Delete %s?", button: "Delete customer",
	explain: []string{"The customer, their addresses and notes are deleted for good; their orders stay, without an owner. This cannot be undone."},
	run: func(c *Console, r *http.Request, p auth.Principal, cu customer.Customer) (string, string, error) {
		return Prefix + "/customers", "Customer " + cu.Email + " deleted.", c.Customers.Delete(r.Context(), origin(p), cu.ID)
	},
}

var anonymization = customerAction{
	path: "anonymize", title: "Anonymize %s?", button: "Anonymize customer",
	explain: []string{
		"Every piece of the customer's personal data is erased: name, email, phone, addresses, notes, metadata, consents, and their copies in the event stream. Their orders stay, with the anonymous customer.",
		"Use it for a request to be forgotten. This cannot be undone.",
	},
	run: func(c *Console, r *http.Request, p auth.Principal, cu customer.Customer) (string, string, error) {
		_, err := c.Customers.Anonymize(r.Context(), origin(p), cu.ID)
		return customerPath(cu.ID), "Customer anonymized: their personal data is erased.", err
	},
}

// confirmation is a page asking to confirm what cannot be undone: a click
// on its button, or (Typed) the customer's email typed first.
type confirmation struct {
	Title   string
	Explain []string
	Action  string // where the form posts
	Button  string
	Cancel  string // the page to go back to
	Crumbs  []crumb
	Typed   string
}

type crumb struct{ Href, Label string }

func (c *Console) confirmPage(w http.ResponseWriter, r *http.Request, p auth.Principal, nav string, status int, f form, cf confirmation) {
	c.render(w, r, status, "confirm", view{Title: cf.Title, Nav: nav, Staff: p, Form: f, Data: cf})
}

func (a customerAction) confirmation(cu customer.Customer) confirmation {
	return confirmation{
		Title: strings.Replace(a.title, "%s", cu.Email, 1), Explain: a.explain, Button: a.button, Typed: cu.Email,
		Action: customerPath(cu.ID) + "/" + a.path, Cancel: customerPath(cu.ID),
		Crumbs: []crumb{{Prefix + "/customers", "Customers"}, {customerPath(cu.ID), cu.Email}},
	}
}

// confirmCustomer shows the action's confirmation page.
func (c *Console) confirmCustomer(a customerAction) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := pathUUID(r, "id")
		if err != nil {
			return err
		}
		cu, err := c.Customers.Get(r.Context(), id)
		if err != nil {
			return err
		}
		c.confirmPage(w, r, p, "customers", http.StatusOK, newForm(nil), a.confirmation(cu))
		return nil
	}
}

// runCustomer does the action once the customer's email is typed; another
// text shows the page again, with the error beside it.
func (c *Console) runCustomer(a customerAction) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, f, err := postedTo(r)
		if err != nil {
			return err
		}
		cu, err := c.Customers.Get(r.Context(), id)
		if err != nil {
			return err
		}
		if !strings.EqualFold(f.Get("confirm_email"), cu.Email) {
			f.Errors["confirm_email"] = "Type the customer's email, " + cu.Email + ", to confirm."
			c.confirmPage(w, r, p, "customers", http.StatusUnprocessableEntity, f, a.confirmation(cu))
			return nil
		}
		to, msg, err := a.run(c, r, p, cu)
		if err != nil {
			return err
		}
		return done(w, r, to, msg)
	}
}
