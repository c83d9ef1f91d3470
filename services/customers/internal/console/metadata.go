package console

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// metadataRow is one key/value row of a metadata editor.
type metadataRow struct{ Key, Value string }

// metadataRows are the stored keys, sorted, and one empty row to add to.
func metadataRows(m map[string]string) []metadataRow {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rows := make([]metadataRow, 0, len(keys)+1)
	for _, k := range keys {
		rows = append(rows, metadataRow{k, m[k]})
	}
	return append(rows, metadataRow{})
}

// submittedRows are the rows of a submitted editor, in their order.
func submittedRows(f form) []metadataRow {
	keys, values := f.Values["key"], f.Values["value"]
	rows := make([]metadataRow, len(keys))
	for i, k := range keys {
		rows[i].Key = k
		if i < len(values) {
			rows[i].Value = values[i]
		}
	}
	return rows
}

// saveMetadata saves an editor's rows, or, for its row buttons (action
// "insert:i", "delete:i"), shows the editor again with a row inserted
// below row i or row i taken out, unsaved: the editor works without
// JavaScript. Saving sets every row with a key and removes the keys the
// page showed (original) that no row has any more.
func (c *Console) saveMetadata(private bool) handler {
	editor := "metadata"
	if private {
		editor = "private_metadata"
	}
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, f, err := postedTo(r)
		if err != nil {
			return err
		}
		rows := submittedRows(f)
		if verb, at, ok := strings.Cut(f.Get("action"), ":"); ok {
			i, err := strconv.Atoi(at)
			if err != nil || i < 0 || i >= len(rows) {
				return customer.FieldErr("action", customer.CodeInvalid, "no such row")
			}
			switch verb {
			case "insert":
				rows = slices.Insert(rows, i+1, metadataRow{})
			case "delete":
				rows = slices.Delete(rows, i, i+1)
			}
			setRows(&f, rows)
			f.Message = "Not saved yet: press Save to keep the changes."
			return c.customerPage(w, r, p, id, http.StatusOK, editor, f)
		}
		in := customer.MetadataInput{Set: map[string]string{}}
		for _, row := range rows {
			if k := strings.TrimSpace(row.Key); k != "" {
				in.Set[k] = row.Value
			}
		}
		for _, k := range f.Values["original"] {
			if _, kept := in.Set[k]; !kept {
				in.Remove = append(in.Remove, k)
			}
		}
		if len(in.Set) == 0 && len(in.Remove) == 0 {
			return done(w, r, customerPath(id)+"#"+editor, "Nothing to save.")
		}
		if _, err := c.Customers.UpdateMetadata(r.Context(), origin(p), id, private, in); err != nil {
			return showAgain(f, err, c.customerPageOf(w, r, p, id, editor))
		}
		return done(w, r, customerPath(id)+"#"+editor, "Metadata saved.")
	}
}

func setRows(f *form, rows []metadataRow) {
	f.Values["key"], f.Values["value"] = nil, nil
	for _, row := range rows {
		f.Values["key"] = append(f.Values["key"], row.Key)
		f.Values["value"] = append(f.Values["value"], row.Value)
	}
}
