package console

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// form is a submitted form as the page shows it again: the values as typed,
// so that nothing is lost on a failed submit, and the use case's errors by
// field, shown beside their inputs.
type form struct {
	Values  url.Values
	Errors  map[string]string
	Message string // an error of no one field
}

func newForm(values url.Values) form {
	if values == nil {
		values = url.Values{}
	}
	return form{Values: values, Errors: map[string]string{}}
}

// Get is the value typed in a field, trimmed.
func (f form) Get(name string) string { return strings.TrimSpace(f.Values.Get(name)) }

// Checked reports whether a checkbox was ticked.
func (f form) Checked(name string) bool { return f.Values.Get(name) != "" }

// Err is the error to show beside a field.
func (f form) Err(name string) string { return f.Errors[name] }

// failed puts a use case's error on the form, each field's error beside
// the input of that name among shown, any other in the form's message, and
// tells the status to answer with; an error no form can show (a server
// fault) is returned instead.
func (f *form) failed(err error, shown ...string) (int, error) {
	d := problem.For(err)
	if d.Status >= 500 {
		return 0, err
	}
	var other []string
	for _, e := range d.Errors {
		// An item of a list (redirect_urls[1]) is shown beside the list's input.
		field, _, _ := strings.Cut(e.Field, "[")
		if slices.Contains(shown, field) && f.Errors[field] == "" {
			f.Errors[field] = e.Message
		} else {
			other = append(other, e.Message)
		}
	}
	switch {
	case len(d.Errors) == 0 && d.Detail != "":
		other = append(other, d.Detail)
	case len(d.Errors) == 0:
		other = append(other, d.Title)
	case len(other) == 0:
		other = append(other, "Please correct the fields marked below.")
	}
	f.Message = strings.Join(other, " ")
	return d.Status, nil
}

// showAgain shows a failed form again on its page, the use case's errors
// beside the fields among shown, with the status they answer; an error no
// form can show (a server fault) is returned instead.
func showAgain(f form, err error, page func(status int, f form) error, shown ...string) error {
	status, err := f.failed(err, shown...)
	if err != nil {
		return err
	}
	return page(status, f)
}

// parseForm reads a posted form; a body that cannot be read is a 400.
func parseForm(r *http.Request) (form, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return form{}, problem.Input(http.StatusBadRequest, "", "malformed", "the form could not be read")
	}
	return newForm(r.PostForm), nil
}

// postedTo reads the customer id of the path and the form posted to it.
func postedTo(r *http.Request) (uuid.UUID, form, error) {
	id, err := pathUUID(r, "id")
	if err != nil {
		return uuid.Nil, form{}, err
	}
	f, err := parseForm(r)
	return id, f, err
}

// optional is a form field as an optional input: nil when left empty.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

var funcs = template.FuncMap{
	"date": func(t time.Time) string { return t.Local().Format("2 Jan 2006, 15:04") },
	"day":  func(t time.Time) string { return t.Local().Format("2006-01-02") },
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"has": func(perms []string, p string) bool {
		for _, q := range perms {
			if q == p {
				return true
			}
		}
		return false
	},
	"deref0": func(id *uuid.UUID) string {
		if id == nil {
			return ""
		}
		return id.String()
	},
	"inc": func(i int) int { return i + 1 },
	// plural is "1 order", "2 orders".
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.Itoa(n) + " " + many
	},
	"count": func(n *int64) string {
		if *n == 1 {
			return "1 customer"
		}
		return strconv.FormatInt(*n, 10) + " customers"
	},
	"lower":   strings.ToLower,
	"trimmed": strings.TrimSpace,
	"blank":   func() form { return newForm(url.Values{}) },
	"editor": func(v view, name, title, hint string, rows []metadataRow, stored map[string]string) metadataEditor {
		e := metadataEditor{Name: name, Title: title, Hint: hint, Path: strings.ReplaceAll(name, "_", "-"), Rows: rows, Form: newForm(url.Values{})}
		e.CustomerID = v.Data.(customerPage).Customer.ID
		for _, row := range metadataRows(stored) {
			if row.Key != "" {
				e.Stored = append(e.Stored, row.Key)
			}
		}
		if v.Form.Get("editor") == name {
			e.Form = v.Form
		}
		return e
	},
	"consentEditors": consentEditors,
	"percent":        func(f float64) string { return strconv.Itoa(int(f*100+0.5)) + "%" },
	"label":          func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	"eventLabel":     eventLabel,
	"sortLabel":      sortLabel,
	// field renders the label, input and error of a text field.
	"field": func(f form, name, label, typ string, attrs ...string) template.HTML {
		return textField(f, name, label, typ, attrs...)
	},
	// rowField is field in one of several forms of a page, told apart by row.
	"rowField": func(f form, row, name, label, typ string, attrs ...string) template.HTML {
		return textFieldID(f, "f-"+row+"-"+name, name, label, typ, attrs...)
	},
	"permissionsOf": func(f form, perms []string, legend string) permissionsField {
		return permissionsField{Form: f, Permissions: perms, Legend: legend}
	},
	"groupForm": func(g customer.Group) form {
		return newForm(url.Values{"name": {g.Name}, "description": {g.Description}})
	},
}

// metadataEditor is what the metadata template renders.
type metadataEditor struct {
	Name, Title, Hint, Path string
	CustomerID              uuid.UUID
	Rows                    []metadataRow
	Stored                  []string // the keys as stored, to tell removed ones
	Form                    form
}

// eventLabel reads an event type as a sentence: customer.note_added is
// "Note added".
func eventLabel(typ string) string {
	_, what, _ := strings.Cut(typ, ".")
	if what == "" {
		what = typ
	}
	what = strings.ReplaceAll(what, "_", " ")
	if what == "" {
		return typ
	}
	return strings.ToUpper(what[:1]) + what[1:]
}

var sortLabels = map[string]string{
	"-created_at": "Newest first", "created_at": "Oldest first", "email": "Email, A–Z", "-email": "Email, Z–A",
	"last_name": "Last name, A–Z", "-last_name": "Last name, Z–A", "number_of_orders": "Fewest orders", "-number_of_orders": "Most orders",
}

func sortLabel(order string) string {
	if l, ok := sortLabels[order]; ok {
		return l
	}
	return order
}

// textField is a labelled input with its error beside it, described for
// screen readers by aria-describedby.
func textField(f form, name, label, typ string, attrs ...string) template.HTML {
	return textFieldID(f, "f-"+name, name, label, typ, attrs...)
}

// textFieldID is textField with its own id, for a page of several forms
// of the same fields.
func textFieldID(f form, id, name, label, typ string, attrs ...string) template.HTML {
	var b strings.Builder
	esc := template.HTMLEscapeString
	b.WriteString(`<div class="field">`)
	b.WriteString(`<label for="` + esc(id) + `">` + esc(label) + `</label>`)
	b.WriteString(`<input id="` + esc(id) + `" name="` + esc(name) + `" type="` + esc(typ) + `" value="` + esc(f.Get(name)) + `"`)
	for _, a := range attrs {
		k, v, _ := strings.Cut(a, "=")
		b.WriteString(" " + esc(k))
		if v != "" {
			b.WriteString(`="` + esc(v) + `"`)
		}
	}
	if e := f.Err(name); e != "" {
		b.WriteString(` aria-invalid="true" aria-describedby="` + esc(id) + `-error">`)
		b.WriteString(`<p class="error" id="` + esc(id) + `-error">` + esc(e) + `</p>`)
	} else {
		b.WriteString(`>`)
	}
	b.WriteString(`</div>`)
	return template.HTML(b.String())
}

// permissionsField is the checkboxes of permissions the permissions
// template renders.
type permissionsField struct {
	Form        form
	Permissions []string
	Legend      string
}
