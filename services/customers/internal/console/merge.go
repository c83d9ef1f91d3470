package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/listquery"
	"github.com/customerbus/customerbus/services/customers/internal/merge"
)

// duplicatesShown is how many of a customer's likeliest duplicates their
// page lists.
const duplicatesShown = 10

// dismissDuplicate records that the customer and the other are not one
// person (the API's POST /v1/customer-duplicates/dismissals).
func (c *Console) dismissDuplicate(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, f, err := postedTo(r)
	if err != nil {
		return err
	}
	in := merge.DismissInput{CustomerIDs: []string{id.String(), f.Get("other_id")}}
	if err := c.Merges.Dismiss(r.Context(), origin(p), in); err != nil {
		return err
	}
	return done(w, r, customerPath(id)+"#duplicates", "Not the same person: the pair is not suggested again.")
}

// mergeField is one of customer.MergeFields on the merge page: the value
// of each customer, which one is kept, and the value after the merge.
type mergeField struct {
	Name, Label    string
	Target, Source string
	KeepSource     bool
	After          string
	Differ         bool
}

// mergePage chooses the customer to merge into this one and previews the
// merge.
type mergePage struct {
	Customer customer.Customer
	// Matches are what the search (q) found; Duplicates the suggestions.
	Matches    []customer.Customer
	Searched   bool
	Duplicates []merge.Duplicate
	// Source is the chosen customer, with the preview of the merge.
	Source  *customer.Customer
	Fields  []mergeField
	Preview *merge.Preview
	// Override is the form's choice, kept for the Merge button.
	Override url.Values
}

var mergeLabels = map[string]string{
	"email": "Email", "first_name": "First name", "last_name": "Last name", "phone": "Phone", "company_name": "Company",
	"default_shipping_address": "Default shipping address", "default_billing_address": "Default billing address", "note": "Note",
}

// mergeInput reads the chosen source and, for each field, whose value to
// keep (keep_<field>=source takes the source's).
func mergeInput(f form) merge.Input {
	in := merge.Input{SourceID: f.Get("source_id"), Override: map[string]string{}}
	for _, field := range customer.MergeFields {
		if f.Get("keep_"+field) == "source" {
			in.Override[field] = in.SourceID
		}
	}
	return in
}

func (c *Console) mergeForm(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return c.mergePage(w, r, p, http.StatusOK, newForm(r.URL.Query()))
}

// mergePage shows the chooser, and with a source chosen the preview: the
// API's merge-preview, the merge run and rolled back.
func (c *Console) mergePage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form) error {
	ctx := r.Context()
	id, err := pathUUID(r, "id")
	if err != nil {
		return err
	}
	cu, err := c.Customers.Get(ctx, id)
	if err != nil {
		return err
	}
	data := mergePage{Customer: cu, Override: url.Values{}}
	dups, err := c.Merges.Duplicates(ctx, id, merge.DuplicatesInput{Limit: duplicatesShown})
	if err != nil {
		return err
	}
	data.Duplicates = dups.Duplicates
	if q := f.Get("q"); q != "" {
		in, err := listquery.Customers(url.Values{"q": {q}})
		if err != nil {
			return err
		}
		in.Limit, data.Searched = 10, true
		found, err := c.Customers.List(ctx, in)
		if err != nil {
			return err
		}
		data.Matches = slices.DeleteFunc(found.Customers, func(m customer.Customer) bool { return m.ID == id })
	}
	// A merge that failed says why; its preview would say it again.
	if f.Get("source_id") != "" && f.Message == "" {
		in := mergeInput(f)
		pv, err := c.Merges.Preview(ctx, origin(p), id, in)
		if err != nil {
			if status, err = f.failed(err, "source_id"); err != nil {
				return err
			}
		} else {
			data.Preview, data.Source = &pv, &pv.Parties.Source
			if data.Fields, err = c.mergeFields(r, pv, in); err != nil {
				return err
			}
			for field := range in.Override {
				data.Override.Set("keep_"+field, "source")
			}
		}
	}
	c.render(w, r, status, "merge", view{Title: "Merge into " + displayName(cu), Nav: "customers", Staff: p, Form: f, Data: data})
	return nil
}

// mergeFields shows each merge field of both customers and after.
func (c *Console) mergeFields(r *http.Request, pv merge.Preview, in merge.Input) ([]mergeField, error) {
	addresses := map[uuid.UUID]string{}
	for _, owner := range []uuid.UUID{pv.Parties.Target.ID, pv.Parties.Source.ID} {
		page, err := c.Customers.ListAddresses(r.Context(), owner, customer.MaxLimit, "")
		if err != nil {
			return nil, err
		}
		for _, a := range page.Addresses {
			addresses[a.ID] = strings.Join(slices.DeleteFunc([]string{a.StreetAddress1, a.PostalCode + " " + a.City, a.Country}, func(s string) bool { return strings.TrimSpace(s) == "" }), ", ")
		}
	}
	value := func(cu customer.Customer, field string) string {
		switch field {
		case "email":
			return cu.Email
		case "first_name":
			return cu.FirstName
		case "last_name":
			return cu.LastName
		case "phone":
			return deref(cu.Phone)
		case "company_name":
			return cu.CompanyName
		case "default_shipping_address":
			if cu.DefaultShippingAddressID != nil {
				return addresses[*cu.DefaultShippingAddressID]
			}
		case "default_billing_address":
			if cu.DefaultBillingAddressID != nil {
				return addresses[*cu.DefaultBillingAddressID]
			}
		case "note":
			return cu.Note
		}
		return ""
	}
	out := make([]mergeField, len(customer.MergeFields))
	for i, name := range customer.MergeFields {
		t, s := value(pv.Parties.Target, name), value(pv.Parties.Source, name)
		out[i] = mergeField{Name: name, Label: mergeLabels[name], Target: t, Source: s, Differ: t != s,
			KeepSource: in.Override[name] != "", After: value(pv.Customer, name)}
	}
	return out, nil
}

// mergeCustomer merges the chosen customer into this one, keeping the
// values chosen on the preview.
func (c *Console) mergeCustomer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, f, err := postedTo(r)
	if err != nil {
		return err
	}
	in := mergeInput(f)
	if _, err := c.Merges.Merge(r.Context(), origin(p), id, in); err != nil {
		return showAgain(f, err, func(status int, f form) error {
			// The preview is shown again as it is now, with the error.
			f.Message = "The merge did not happen: " + f.Message
			return c.mergePage(w, r, p, status, f)
		}, "source_id")
	}
	return done(w, r, customerPath(id), "Customers merged: the other one's orders, addresses, notes and groups are this customer's now.")
}
