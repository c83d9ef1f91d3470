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

// customersPath is a customer's page.
func customerPath(id uuid.UUID) string { return Prefix + "/customers/" + id.String() }

// listFilters are the list's query parameters; they are the API's (see
// listquery), so the search box is the API's q.
var listFilters = []string{"q", "is_active", "has_account", "is_verified", "group_id",
	"created_after", "created_before", "number_of_orders_min", "number_of_orders_max", "order", "cursor"}

type listPage struct {
	Page   customer.Page
	Groups []customer.Group
	Orders []string
	// Next links to the next page. A whole URL, since html/template would
	// escape a query string's = and & after a "?" in the template.
	Next string
	// First links to the first page of the same filters, past it.
	First string
}

func (c *Console) listCustomers(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f := newForm(r.URL.Query())
	qs := url.Values{}
	for _, name := range listFilters {
		v := f.Get(name)
		if v == "" {
			continue
		}
		// Date inputs give a day; the API takes an instant.
		if strings.HasPrefix(name, "created_") && len(v) == len("2006-01-02") {
			v += "T00:00:00Z"
		}
		qs.Set(name, v)
	}
	data := listPage{Orders: customer.Orders}
	groups, err := c.Customers.ListGroups(r.Context(), "", customer.MaxLimit, "")
	if err != nil {
		return err
	}
	data.Groups = groups.Groups
	in, err := listquery.Customers(qs)
	if err == nil {
		in.Limit = 25
		data.Page, err = c.Customers.List(r.Context(), in)
	}
	status := http.StatusOK
	if err != nil {
		if status, err = f.failed(err, listFilters...); err != nil {
			return err
		}
	}
	if data.Page.NextCursor != "" {
		data.Next = Prefix + "/customers?" + pageQuery(f.Values, data.Page.NextCursor)
	}
	if f.Get("cursor") != "" {
		data.First = Prefix + "/customers"
		if qs := pageQuery(f.Values, ""); qs != "" {
			data.First += "?" + qs
		}
	}
	c.render(w, r, status, "customers", view{Title: "Customers", Nav: "customers", Staff: p, Form: f, Data: data})
	return nil
}

// pageQuery is the list's query string with another cursor; "" is the
// first page's.
func pageQuery(filters url.Values, cursor string) string {
	q := url.Values{}
	for k, v := range filters {
		q[k] = v
	}
	q.Del("cursor")
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return q.Encode()
}

// profileFields are the inputs of the profile, named as the API's fields.
var profileFields = []string{"email", "first_name", "last_name", "company_name", "phone", "note", "language_code"}

type newCustomerPage struct {
	Groups     []customer.Group
	Attributes []attributeInput
}

// customerEditPage is the Edit form of a customer.
type customerEditPage struct {
	customer.Customer
	Attributes []attributeInput
}

func (c *Console) newCustomer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f := newForm(url.Values{"redirect_url": {c.Settings.StorefrontURL + "/set-password"}, "channel": {c.Settings.Channel}, "send_password_email": {"on"}})
	return c.customerForm(w, r, p, http.StatusOK, f)
}

func (c *Console) customerForm(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form) error {
	groups, err := c.Customers.ListGroups(r.Context(), "", customer.MaxLimit, "")
	if err != nil {
		return err
	}
	defs, err := c.Customers.AttributeDefinitions(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, status, "customer_new", view{Title: "Create customer", Nav: "customers", Staff: p, Form: f,
		Data: newCustomerPage{Groups: groups.Groups, Attributes: attributeInputs(defs, f)}})
	return nil
}

func (c *Console) createCustomer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	defs, err := c.Customers.AttributeDefinitions(r.Context())
	if err != nil {
		return err
	}
	in := customer.CreateInput{
		Email: f.Get("email"), FirstName: f.Get("first_name"), LastName: f.Get("last_name"),
		CompanyName: f.Get("company_name"), Phone: optional(f.Get("phone")), Note: f.Get("note"),
		LanguageCode: f.Get("language_code"), Groups: f.Values["groups"], Attributes: attributesOf(defs, f, nil),
	}
	if f.Checked("send_password_email") {
		in.EmailLink = customer.EmailLink{RedirectURL: f.Get("redirect_url"), Channel: f.Get("channel")}
	}
	created, err := c.Customers.Create(r.Context(), origin(p), in)
	if err != nil {
		return showAgain(f, err, func(status int, f form) error { return c.customerForm(w, r, p, status, f) },
			append(append(profileFields, "groups", "redirect_url", "channel"), attributeFieldNames(defs)...)...)
	}
	msg := "Customer created."
	if in.EmailLink.Given() {
		msg = "Customer created; the set-password email is on its way."
	}
	return done(w, r, customerPath(created.ID), msg)
}

// customerPage is everything the customer's page shows.
type customerPage struct {
	Customer  customer.Customer
	Addresses []customer.Address
	Notes     []customer.Note
	History   []historyRow
	Groups    map[uuid.UUID]string
	// Others are the groups the customer is not in, to add them to.
	Others []customer.Group
	Orders []customerOrder
	// OlderOrders links to the page of older orders; NewestOrders, past
	// the first, back to the first. Whole URLs, as the list's.
	OlderOrders, NewestOrders string
	// Duplicates are the customers that may be the same person.
	Duplicates []merge.Duplicate
	// Metadata editors, as key/value rows.
	Metadata, PrivateMetadata []metadataRow
	// Identities are the customer's accounts at identity providers, which
	// sign them in; HasPassword tells whether a password does too.
	Identities  []signInMethod
	HasPassword bool
	// Attributes are the customer's values of every defined attribute.
	Attributes []attributeRow
}

func (c *Console) showCustomer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathUUID(r, "id")
	if err != nil {
		return err
	}
	return c.customerPage(w, r, p, id, http.StatusOK, "", form{})
}

// customerPageOf shows the customer's page with a failed form of it
// (editor names the one).
func (c *Console) customerPageOf(w http.ResponseWriter, r *http.Request, p auth.Principal, id uuid.UUID, editor string) func(int, form) error {
	return func(status int, f form) error { return c.customerPage(w, r, p, id, status, editor, f) }
}

// customerPage renders a customer's page; a failed form of it (editor
// names the one) is shown again with its values and errors.
func (c *Console) customerPage(w http.ResponseWriter, r *http.Request, p auth.Principal, id uuid.UUID, status int, editor string, failed form) error {
	ctx := r.Context()
	cu, err := c.Customers.Get(ctx, id)
	if err != nil {
		return err
	}
	data := customerPage{Customer: cu, Groups: map[uuid.UUID]string{}}
	addresses, err := c.Customers.ListAddresses(ctx, id, customer.MaxLimit, "")
	if err != nil {
		return err
	}
	data.Addresses = addresses.Addresses
	notes, err := c.Customers.ListNotes(ctx, id, customer.MaxLimit, "")
	if err != nil {
		return err
	}
	data.Notes = notes.Notes
	history, err := c.Customers.History(ctx, id, 50, "")
	if err != nil {
		return err
	}
	if data.History, err = c.historyRows(ctx, cu, history.Entries); err != nil {
		return err
	}
	groups, err := c.Customers.ListGroups(ctx, "", customer.MaxLimit, "")
	if err != nil {
		return err
	}
	for _, g := range groups.Groups {
		data.Groups[g.ID] = g.Name
		if !slices.Contains(cu.Groups, g.ID) {
			data.Others = append(data.Others, g)
		}
	}
	cursor := r.URL.Query().Get("orders")
	var next string
	if data.Orders, next, err = c.customerOrders(r, id, ordersShown, cursor); err != nil {
		return err
	}
	if next != "" {
		data.OlderOrders = customerPath(id) + "?" + url.Values{"orders": {next}}.Encode() + "#orders"
	}
	if cursor != "" {
		data.NewestOrders = customerPath(id) + "#orders"
	}
	dups, err := c.Merges.Duplicates(ctx, id, merge.DuplicatesInput{Limit: duplicatesShown})
	if err != nil {
		return err
	}
	data.Duplicates = dups.Duplicates
	data.Metadata, data.PrivateMetadata = metadataRows(cu.Metadata), metadataRows(cu.PrivateMetadata)
	if data.Identities, err = c.signInMethods(ctx, id); err != nil {
		return err
	}
	data.HasPassword = cu.PasswordHash != ""
	if data.Attributes, err = c.attributeRows(ctx, cu.Attributes); err != nil {
		return err
	}
	switch editor {
	case "metadata":
		data.Metadata = submittedRows(failed)
	case "private_metadata":
		data.PrivateMetadata = submittedRows(failed)
	}
	v := view{Title: displayName(cu), Nav: "customers", Staff: p, Data: data, Form: failed}
	if editor == "" {
		v.Form = newForm(nil)
	}
	v.Form.Values.Set("editor", editor)
	c.render(w, r, status, "customer", v)
	return nil
}

func displayName(c customer.Customer) string {
	if name := strings.TrimSpace(c.FirstName + " " + c.LastName); name != "" {
		return name
	}
	return c.Email
}

func (c *Console) editCustomer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathUUID(r, "id")
	if err != nil {
		return err
	}
	cu, err := c.Customers.Get(r.Context(), id)
	if err != nil {
		return err
	}
	f := newForm(url.Values{
		"email": {cu.Email}, "first_name": {cu.FirstName}, "last_name": {cu.LastName}, "company_name": {cu.CompanyName},
		"phone": {deref(cu.Phone)}, "note": {cu.Note}, "language_code": {cu.LanguageCode},
	})
	setAttributeValues(f, cu.Attributes)
	return c.customerEditPage(w, r, p, http.StatusOK, f, cu)
}

func (c *Console) customerEditPage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form, cu customer.Customer) error {
	defs, err := c.Customers.AttributeDefinitions(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, status, "customer_edit", view{Title: "Edit " + displayName(cu), Nav: "customers", Staff: p, Form: f,
		Data: customerEditPage{Customer: cu, Attributes: attributeInputs(defs, f)}})
	return nil
}

func (c *Console) updateCustomer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, f, err := postedTo(r)
	if err != nil {
		return err
	}
	cu, err := c.Customers.Get(r.Context(), id)
	if err != nil {
		return err
	}
	defs, err := c.Customers.AttributeDefinitions(r.Context())
	if err != nil {
		return err
	}
	field := func(name string) *string { v := f.Get(name); return &v }
	in := customer.UpdateInput{
		Email: field("email"), FirstName: field("first_name"), LastName: field("last_name"),
		CompanyName: field("company_name"), Note: field("note"), LanguageCode: field("language_code"),
		Phone:      customer.Nullable[string]{Set: true, Value: optional(f.Get("phone"))},
		Attributes: attributesOf(defs, f, cu.Attributes),
	}
	if _, err := c.Customers.Update(r.Context(), origin(p), id, in); err != nil {
		return showAgain(f, err, func(status int, f form) error { return c.customerEditPage(w, r, p, status, f, cu) },
			append(profileFields, attributeFieldNames(defs)...)...)
	}
	return done(w, r, customerPath(id), "Profile saved.")
}

func (c *Console) setActive(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, f, err := postedTo(r)
	if err != nil {
		return err
	}
	active := f.Get("active") == "true"
	if _, err := c.Customers.Update(r.Context(), origin(p), id, customer.UpdateInput{IsActive: &active}); err != nil {
		return err
	}
	msg := "Customer deactivated: they can no longer log in."
	if active {
		msg = "Customer activated."
	}
	return done(w, r, customerPath(id), msg)
}

func (c *Console) addNote(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, f, err := postedTo(r)
	if err != nil {
		return err
	}
	if _, err := c.Customers.AddNote(r.Context(), origin(p), id, customer.NoteInput{Text: f.Get("text")}); err != nil {
		return showAgain(f, err, c.customerPageOf(w, r, p, id, "notes"), "text")
	}
	return done(w, r, customerPath(id)+"#notes", "Note added.")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
