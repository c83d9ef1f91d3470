package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Typed custom attributes: their definitions under Settings (the API's
// /v1/settings/customer-attributes), and a customer's values in the
// customer's forms (the API's attributes of a customer).

const attributesPath = Prefix + "/settings/customer-attributes"

func attributePath(key string) string { return attributesPath + "/" + url.PathEscape(key) }

// definitionFields are the definition form's inputs, named as the API's fields.
var definitionFields = []string{"key", "label", "type", "max_length", "pattern", "min", "max", "values", "required", "storefront", "visible_to_customer", "indexed"}

// definitionFlags are the definition's checkboxes.
var definitionFlags = []struct{ Name, Label string }{
	{"required", "Required: every customer has a value"},
	{"visible_to_customer", "Visible to the customer in their profile"},
	{"storefront", "Customers may set it on the storefront (visible too)"},
	{"indexed", "Indexed: the customers list can filter on it"},
}

type attributesPage struct {
	Definitions []customer.AttributeDefinition
	New         definitionForm
}

// definitionForm is what the definition-fields template renders.
type definitionForm struct {
	Form  form
	Key   string // the definition edited; "" when defining one
	Types []string
	Flags []struct{ Name, Label string }
}

func newDefinitionForm(f form, key string) definitionForm {
	return definitionForm{Form: f, Key: key, Types: customer.AttributeTypes, Flags: definitionFlags}
}

func (c *Console) listAttributes(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return c.attributesPage(w, r, p, http.StatusOK, newForm(url.Values{"type": {customer.AttrString}}))
}

func (c *Console) attributesPage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form) error {
	defs, err := c.Customers.AttributeDefinitions(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, status, "attributes", view{Title: "Customer attributes", Nav: "settings", Staff: p, Form: f,
		Data: attributesPage{Definitions: defs, New: newDefinitionForm(f, "")}})
	return nil
}

// definitionInput reads the form as the API's input, every field given
// (an empty one clears its rule): values one a line.
func definitionInput(f form) (customer.AttributeDefinitionInput, error) {
	text := func(name string) *string { v := f.Get(name); return &v }
	flag := func(name string) *bool { v := f.Checked(name); return &v }
	in := customer.AttributeDefinitionInput{
		Label: text("label"), Type: text("type"),
		Pattern:  customer.Nullable[string]{Set: true, Value: optional(f.Get("pattern"))},
		Required: flag("required"), Storefront: flag("storefront"), VisibleToCustomer: flag("visible_to_customer"), Indexed: flag("indexed"),
	}
	for _, bound := range []struct {
		name string
		dst  *customer.Nullable[json.Number]
	}{{"min", &in.Min}, {"max", &in.Max}} {
		*bound.dst = customer.Nullable[json.Number]{Set: true}
		if v := f.Get(bound.name); v != "" {
			n := json.Number(v) // the use case checks it is a number of the type
			bound.dst.Value = &n
		}
	}
	in.MaxLength = customer.Nullable[int]{Set: true}
	if v := f.Get("max_length"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return in, customer.FieldErr("max_length", customer.CodeInvalid, "max_length must be a whole number")
		}
		in.MaxLength.Value = &n
	}
	values := []string{}
	for _, line := range strings.Split(f.Get("values"), "\n") {
		if v := strings.TrimSpace(line); v != "" {
			values = append(values, v)
		}
	}
	in.Values = &values
	return in, nil
}

func (c *Console) defineAttribute(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	in, err := definitionInput(f)
	if err == nil {
		key := f.Get("key")
		in.Key = &key
		var d customer.AttributeDefinition
		if d, err = c.Customers.DefineAttribute(r.Context(), origin(p), in); err == nil {
			return done(w, r, attributesPath, "Attribute "+d.Label+" defined.")
		}
	}
	return showAgain(f, err, func(status int, f form) error { return c.attributesPage(w, r, p, status, f) }, definitionFields...)
}

func (c *Console) editAttribute(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	d, err := c.Customers.AttributeDefinition(r.Context(), r.PathValue("key"))
	if err != nil {
		return err
	}
	f := newForm(url.Values{"label": {d.Label}, "type": {d.Type}, "pattern": {deref(d.Pattern)}, "values": {strings.Join(d.Values, "\n")}})
	if d.MaxLength != nil {
		f.Values.Set("max_length", strconv.Itoa(*d.MaxLength))
	}
	for name, n := range map[string]*json.Number{"min": d.Min, "max": d.Max} {
		if n != nil {
			f.Values.Set(name, n.String())
		}
	}
	for name, on := range map[string]bool{"required": d.Required, "storefront": d.Storefront, "visible_to_customer": d.VisibleToCustomer, "indexed": d.Indexed} {
		if on {
			f.Values.Set(name, "on")
		}
	}
	return c.attributeEditPage(w, r, p, http.StatusOK, f, d)
}

func (c *Console) attributeEditPage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form, d customer.AttributeDefinition) error {
	c.render(w, r, status, "attribute", view{Title: "Edit " + d.Label, Nav: "settings", Staff: p, Form: f,
		Data: struct {
			Definition customer.AttributeDefinition
			Edit       definitionForm
		}{d, newDefinitionForm(f, d.Key)}})
	return nil
}

func (c *Console) updateAttribute(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	key := r.PathValue("key")
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	in, err := definitionInput(f)
	if err == nil {
		var d customer.AttributeDefinition
		if d, err = c.Customers.UpdateAttribute(r.Context(), origin(p), key, in); err == nil {
			return done(w, r, attributesPath, "Attribute "+d.Label+" saved.")
		}
	}
	return showAgain(f, err, func(status int, f form) error {
		d, err := c.Customers.AttributeDefinition(r.Context(), key)
		if err != nil {
			return err
		}
		return c.attributeEditPage(w, r, p, status, f, d)
	}, definitionFields...)
}

// confirmDeleteAttribute asks before deleting the definition.
func (c *Console) confirmDeleteAttribute(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	d, err := c.Customers.AttributeDefinition(r.Context(), r.PathValue("key"))
	if err != nil {
		return err
	}
	c.confirmPage(w, r, p, "settings", http.StatusOK, newForm(nil), attributeDeletion(d))
	return nil
}

func attributeDeletion(d customer.AttributeDefinition) confirmation {
	return confirmation{
		Title:   "Delete the attribute " + d.Label + "?",
		Explain: []string{"It is refused while customers hold a value of it: remove their values first. This cannot be undone."},
		Action:  attributePath(d.Key) + "/delete", Button: "Delete attribute", Cancel: attributePath(d.Key),
		Crumbs: []crumb{{Prefix + "/settings", "Settings"}, {attributesPath, "Customer attributes"}, {attributePath(d.Key), d.Label}},
	}
}

// deleteAttribute deletes the definition; a refusal (customers hold
// values) is shown on the confirmation page.
func (c *Console) deleteAttribute(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	d, err := c.Customers.AttributeDefinition(r.Context(), r.PathValue("key"))
	if err != nil {
		return err
	}
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	if err := c.Customers.DeleteAttribute(r.Context(), origin(p), d.Key); err != nil {
		return showAgain(f, err, func(status int, f form) error {
			c.confirmPage(w, r, p, "settings", status, f, attributeDeletion(d))
			return nil
		})
	}
	return done(w, r, attributesPath, "Attribute "+d.Label+" deleted.")
}

// A customer's values, in the create and edit forms: one input a
// definition, named attributes.<key> (the API's error fields), typed by
// the definition (see the attribute-fields template).

// attributeInput is a definition's input in a customer's form.
type attributeInput struct {
	customer.AttributeDefinition
	Form form
}

// Name is the input's name, and the field of its errors.
func (a attributeInput) Name() string { return "attributes." + a.Key }

// Value is what the input holds.
func (a attributeInput) Value() string { return a.Form.Get(a.Name()) }

// Error is the use case's error of the value.
func (a attributeInput) Error() string { return a.Form.Err(a.Name()) }

func attributeInputs(defs []customer.AttributeDefinition, f form) []attributeInput {
	out := make([]attributeInput, len(defs))
	for i, d := range defs {
		out[i] = attributeInput{AttributeDefinition: d, Form: f}
	}
	return out
}

// attributeFieldNames are the error fields of the definitions' inputs.
func attributeFieldNames(defs []customer.AttributeDefinition) []string {
	out := make([]string, len(defs))
	for i, d := range defs {
		out[i] = "attributes." + d.Key
	}
	return out
}

// setAttributeValues puts the stored values in the form, as its inputs show them.
func setAttributeValues(f form, stored customer.Attributes) {
	for k, v := range stored {
		f.Values.Set("attributes."+k, customer.AttributeCell(v))
	}
}

// attributesOf reads the form's attribute inputs as the use case's input
// (each typed as its definition, an empty one null): those that differ
// from stored, so that an edit touching none never fails because of a
// value stored before its definition narrowed.
func attributesOf(defs []customer.AttributeDefinition, f form, stored customer.Attributes) map[string]json.RawMessage {
	cells := map[string]string{}
	byKey := customer.Definitions{}
	for _, d := range defs {
		byKey[d.Key] = d
		v, held := f.Get("attributes."+d.Key), stored[d.Key]
		if held == nil && v == "" || held != nil && v == customer.AttributeCell(held) {
			continue
		}
		cells[d.Key] = v
	}
	return customer.AttributeCells(byKey, cells)
}

// attributeRows are the customer's values as the customer's page lists
// them, by the definitions' labels.
func (c *Console) attributeRows(ctx context.Context, stored customer.Attributes) ([]attributeRow, error) {
	defs, err := c.Customers.AttributeDefinitions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]attributeRow, len(defs))
	for i, d := range defs {
		out[i] = attributeRow{Label: d.Label, Type: d.Type}
		if v := stored[d.Key]; v != nil {
			out[i].Value = customer.AttributeCell(v)
		}
	}
	return out, nil
}

type attributeRow struct{ Label, Type, Value string }
