package imports

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// File formats.
const (
	FormatCSV    = "csv"
	FormatNDJSON = "ndjson"
)

// FileError is a problem of the whole file (its header, its quoting): no row
// after it can be read, so the job fails with it.
type FileError struct {
	Row     int64 // the customer's row, 0 for the header
	Column  string
	Code    string
	Message string
}

func (e *FileError) Error() string {
	return fmt.Sprintf("row %d, column %q: %s", e.Row, e.Column, e.Message)
}

// RowError is one row's problem: that row is skipped (or, with
// on_error=reject_all, the file refused), the rows after it are read.
type RowError struct {
	Row    int64
	Errors []customer.FieldError
}

func (e *RowError) Error() string { return fmt.Sprintf("row %d: %v", e.Row, e.Errors) }

// maxColumnName bounds a header's names, so an error can name the column.
const maxColumnName = 100

// rows reads the customers of a file one at a time, never the whole file.
type rows interface {
	// next returns the next row and its number (1 is the first customer;
	// a CSV file's header is not counted): io.EOF at the end, a *RowError
	// for a row that cannot be read (next reads on after it), a *FileError
	// for a file that cannot be read further.
	next() (customer.ImportRow, int64, error)
}

// Row and file limits.
const (
	// MaxRowBytes bounds one row (a CSV record, an NDJSON line).
	MaxRowBytes = 1 << 20
	// CodeUnknownColumn and the others name what is wrong with a file.
	CodeUnknownColumn   = "unknown_column"
	CodeDuplicateColumn = "duplicate_column"
	CodeEmptyFile       = "empty_file"
	CodeRowTooLarge     = "row_too_large"
	CodeColumnCount     = "column_count"
	CodeSyntax          = "malformed"
)

func newRows(format string, r io.Reader) (rows, error) {
	switch format {
	case FormatCSV:
		return newCSVRows(&rowLimit{r: r})
	case FormatNDJSON:
		return newNDJSONRows(r) // its scanner bounds a line itself
	}
	return nil, fmt.Errorf("imports: no format %q", format)
}

// rowLimit fails a read that has gone MaxRowBytes (plus a reader's buffer)
// past the last row's start, so one endless row cannot fill the memory.
type rowLimit struct {
	r     io.Reader
	since int
}

var errRowTooLarge = errors.New("row too large")

func (l *rowLimit) Read(p []byte) (int, error) {
	if l.since > MaxRowBytes+bufio.MaxScanTokenSize {
		return 0, errRowTooLarge
	}
	n, err := l.r.Read(p)
	l.since += n
	return n, err
}

func (l *rowLimit) rowDone() { l.since = 0 }

// csvRows reads RFC 4180 CSV with a header row naming the columns.
type csvRows struct {
	cr      *csv.Reader
	limit   *rowLimit
	columns []column
	row     int64
}

// column is what a CSV column sets on a row.
type column struct {
	name string
	set  func(row *customer.ImportRow, cell string) error
}

func newCSVRows(l *rowLimit) (rows, error) {
	br := bufio.NewReader(l)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3) // a UTF-8 byte order mark, as spreadsheets write it
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	header, err := cr.Read()
	switch {
	case errors.Is(err, io.EOF):
		return nil, &FileError{Code: CodeEmptyFile, Message: "the file is empty; it needs a header row and a row per customer"}
	case err != nil:
		return nil, csvFileError(0, err)
	}
	l.rowDone()
	c := &csvRows{cr: cr, limit: l}
	seen := map[string]bool{}
	for i, name := range header {
		if !utf8.ValidString(name) {
			return nil, &FileError{Column: fmt.Sprintf("#%d", i+1), Code: customer.CodeInvalid, Message: "the header is not valid UTF-8"}
		}
		name = strings.TrimSpace(name)
		if len(name) > maxColumnName {
			return nil, &FileError{Column: fmt.Sprintf("#%d", i+1), Code: CodeUnknownColumn, Message: fmt.Sprintf("column %d's name is longer than %d bytes: not a column of customers", i+1, maxColumnName)}
		}
		if seen[name] {
			return nil, &FileError{Column: name, Code: CodeDuplicateColumn, Message: fmt.Sprintf("the column %q appears twice in the header", name)}
		}
		seen[name] = true
		col, ok := csvColumn(name)
		if !ok {
			return nil, &FileError{Column: name, Code: CodeUnknownColumn, Message: fmt.Sprintf("%q is not a column of customers (see the import file format)", name)}
		}
		c.columns = append(c.columns, col)
	}
	cr.FieldsPerRecord = len(header)
	return c, nil
}

func (c *csvRows) next() (customer.ImportRow, int64, error) {
	record, err := c.cr.Read()
	c.limit.rowDone()
	if errors.Is(err, io.EOF) {
		return customer.ImportRow{}, 0, io.EOF
	}
	c.row++
	var pe *csv.ParseError
	if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
		return customer.ImportRow{}, c.row, &RowError{Row: c.row, Errors: []customer.FieldError{{Code: CodeColumnCount,
			Message: fmt.Sprintf("the row has %d columns, the header %d", len(record), len(c.columns))}}}
	}
	if err != nil {
		return customer.ImportRow{}, c.row, csvFileError(c.row, err)
	}
	row := customer.ImportRow{Given: map[string]bool{}}
	var errs []customer.FieldError
	for i, cell := range record {
		col := c.columns[i]
		if !utf8.ValidString(cell) {
			errs = append(errs, customer.FieldError{Field: col.name, Code: customer.CodeInvalid, Message: col.name + " must be valid UTF-8"})
			continue
		}
		if err := col.set(&row, cell); err != nil {
			errs = append(errs, customer.FieldError{Field: col.name, Code: customer.CodeInvalid, Message: err.Error()})
		}
	}
	if errs != nil {
		return customer.ImportRow{}, c.row, &RowError{Row: c.row, Errors: errs}
	}
	return row, c.row, nil
}

// csvFileError names the row and column of a CSV syntax error (an
// unbalanced quote, say), after which no row can be trusted.
func csvFileError(row int64, err error) error {
	if errors.Is(err, errRowTooLarge) {
		return &FileError{Row: row, Code: CodeRowTooLarge, Message: fmt.Sprintf("a row is longer than %d bytes", MaxRowBytes)}
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &FileError{Row: row, Column: fmt.Sprintf("#%d", pe.Column), Code: CodeSyntax,
			Message: fmt.Sprintf("line %d, character %d: %v", pe.Line, pe.Column, pe.Err)}
	}
	return &FileError{Row: row, Code: CodeSyntax, Message: err.Error()}
}

// csvColumn is the column a header names: a customer field, metadata.<key>,
// private_metadata.<key>, attributes.<key> (an empty cell is no value), or
// address.<field> of the one default address.
func csvColumn(name string) (column, bool) {
	if key, ok := strings.CutPrefix(name, "metadata."); ok && key != "" {
		return column{name, func(r *customer.ImportRow, v string) error {
			r.Given["metadata"] = true
			if v != "" {
				if r.Metadata == nil {
					r.Metadata = map[string]string{}
				}
				r.Metadata[key] = v
			}
			return nil
		}}, true
	}
	if key, ok := strings.CutPrefix(name, "attributes."); ok && key != "" {
		return column{name, func(r *customer.ImportRow, v string) error {
			r.Given["attributes"] = true
			if r.AttributeCells == nil {
				r.AttributeCells = map[string]string{}
			}
			r.AttributeCells[key] = v
			return nil
		}}, true
	}
	if key, ok := strings.CutPrefix(name, "private_metadata."); ok && key != "" {
		return column{name, func(r *customer.ImportRow, v string) error {
			r.Given["private_metadata"] = true
			if v != "" {
				if r.PrivateMetadata == nil {
					r.PrivateMetadata = map[string]string{}
				}
				r.PrivateMetadata[key] = v
			}
			return nil
		}}, true
	}
	if field, ok := strings.CutPrefix(name, "address."); ok {
		i := slices.IndexFunc(AddressColumns, func(c AddressColumn) bool { return c.Name == field })
		if i < 0 {
			return column{}, false
		}
		set := AddressColumns[i].set
		return column{name, func(r *customer.ImportRow, v string) error {
			if v == "" {
				return nil
			}
			if len(r.Addresses) == 0 {
				yes := true
				r.Addresses = []customer.ImportAddress{{AddressInput: customer.AddressInput{IsDefaultShipping: &yes, IsDefaultBilling: &yes}}}
				r.Given["addresses"] = true
			}
			set(&r.Addresses[0].AddressInput, v)
			return nil
		}}, true
	}
	set, ok := fieldColumns[name]
	if !ok {
		return column{}, false
	}
	return column{name, func(r *customer.ImportRow, v string) error {
		r.Given[name] = true
		return set(r, v)
	}}, true
}

// fieldColumns set a customer field from its cell; an empty cell is the
// field's empty value (null for phone and external_reference).
var fieldColumns = map[string]func(r *customer.ImportRow, v string) error{
	"id":           func(r *customer.ImportRow, v string) error { r.ID = nonEmpty(v); return nil },
	"email":        func(r *customer.ImportRow, v string) error { r.Email = v; return nil },
	"first_name":   func(r *customer.ImportRow, v string) error { r.FirstName = v; return nil },
	"last_name":    func(r *customer.ImportRow, v string) error { r.LastName = v; return nil },
	"company_name": func(r *customer.ImportRow, v string) error { r.CompanyName = v; return nil },
	"phone":        func(r *customer.ImportRow, v string) error { r.Phone = nonEmpty(v); return nil },
	"note":         func(r *customer.ImportRow, v string) error { r.Note = v; return nil },
	"is_active": func(r *customer.ImportRow, v string) (err error) {
		r.IsActive, err = boolCell("is_active", v)
		return err
	},
	"language_code":      func(r *customer.ImportRow, v string) error { r.LanguageCode = v; return nil },
	"external_reference": func(r *customer.ImportRow, v string) error { r.ExternalReference = nonEmpty(v); return nil },
	"is_verified": func(r *customer.ImportRow, v string) (err error) {
		r.IsVerified, err = boolCell("is_verified", v)
		return err
	},
	"created_at": func(r *customer.ImportRow, v string) error {
		if v == "" {
			return nil
		}
		t, err := customer.ParseTime(v)
		if err != nil {
			return fmt.Errorf("created_at must be an RFC 3339 time, like 2026-01-31T09:30:00Z")
		}
		r.CreatedAt = &t
		return nil
	},
	"groups": func(r *customer.ImportRow, v string) error {
		if v != "" {
			r.Groups = strings.Split(v, ";")
		}
		return nil
	},
	"password_hash": func(r *customer.ImportRow, v string) error { r.PasswordHash = nonEmpty(v); return nil },
	"redirect_url":  func(r *customer.ImportRow, v string) error { r.RedirectURL = v; return nil },
	"channel":       func(r *customer.ImportRow, v string) error { r.Channel = v; return nil },
	// Read-only columns of an export: accepted, and ignored.
	"updated_at":                  ignore,
	"version":                     ignore,
	"has_account":                 ignore,
	"number_of_orders":            ignore,
	"is_anonymized":               ignore,
	"last_order_at":               ignore,
	"default_shipping_address_id": ignore,
	"default_billing_address_id":  ignore,
}

func ignore(*customer.ImportRow, string) error { return nil }

// AddressColumn is a CSV column of a customer's default address: its name
// after "address.", how an import reads it and how an export writes it.
type AddressColumn struct {
	Name string
	set  func(a *customer.AddressInput, v string)
	Get  func(a customer.Address) string
}

// AddressColumns are the default address's columns, in file order.
var AddressColumns = []AddressColumn{
	{"first_name", func(a *customer.AddressInput, v string) { a.FirstName = &v }, func(a customer.Address) string { return a.FirstName }},
	{"last_name", func(a *customer.AddressInput, v string) { a.LastName = &v }, func(a customer.Address) string { return a.LastName }},
	{"company_name", func(a *customer.AddressInput, v string) { a.CompanyName = &v }, func(a customer.Address) string { return a.CompanyName }},
	{"street_address_1", func(a *customer.AddressInput, v string) { a.StreetAddress1 = &v }, func(a customer.Address) string { return a.StreetAddress1 }},
	{"street_address_2", func(a *customer.AddressInput, v string) { a.StreetAddress2 = &v }, func(a customer.Address) string { return a.StreetAddress2 }},
	{"city", func(a *customer.AddressInput, v string) { a.City = &v }, func(a customer.Address) string { return a.City }},
	{"city_area", func(a *customer.AddressInput, v string) { a.CityArea = &v }, func(a customer.Address) string { return a.CityArea }},
	{"postal_code", func(a *customer.AddressInput, v string) { a.PostalCode = &v }, func(a customer.Address) string { return a.PostalCode }},
	{"country", func(a *customer.AddressInput, v string) { a.Country = &v }, func(a customer.Address) string { return a.Country }},
	{"country_area", func(a *customer.AddressInput, v string) { a.CountryArea = &v }, func(a customer.Address) string { return a.CountryArea }},
	{"phone", func(a *customer.AddressInput, v string) { a.Phone = customer.Nullable[string]{Set: true, Value: &v} }, func(a customer.Address) string {
		if a.Phone == nil {
			return ""
		}
		return *a.Phone
	}},
}

func nonEmpty(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

func boolCell(name, v string) (*bool, error) {
	switch strings.ToLower(v) {
	case "":
		return nil, nil
	case "true":
		t := true
		return &t, nil
	case "false":
		f := false
		return &f, nil
	}
	return nil, fmt.Errorf("%s must be true or false", name)
}

// ndjsonRows reads one JSON object per line, strictly, as POST
// /v1/customers reads its body.
type ndjsonRows struct {
	sc  *bufio.Scanner
	row int64
}

func newNDJSONRows(r io.Reader) (rows, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxRowBytes)
	return &ndjsonRows{sc: sc}, nil
}

func (n *ndjsonRows) next() (customer.ImportRow, int64, error) {
	for n.sc.Scan() {
		line := bytes.TrimSpace(n.sc.Bytes())
		if n.row == 0 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(line) == 0 {
			continue // a blank line, at the end say
		}
		n.row++
		var row customer.ImportRow
		if err := problem.DecodeJSON(line, MaxRowBytes, &row); err != nil {
			return row, n.row, &RowError{Row: n.row, Errors: problem.For(err).Errors}
		}
		var keys map[string]json.RawMessage
		_ = json.Unmarshal(line, &keys) // it decoded above
		row.Given = make(map[string]bool, len(keys))
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			row.Given[k] = true
		}
		return row, n.row, nil
	}
	switch err := n.sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return customer.ImportRow{}, n.row + 1, &FileError{Row: n.row + 1, Code: CodeRowTooLarge, Message: fmt.Sprintf("a line is longer than %d bytes", MaxRowBytes)}
	case err != nil:
		return customer.ImportRow{}, n.row + 1, &FileError{Row: n.row + 1, Code: CodeSyntax, Message: err.Error()}
	}
	if n.row == 0 {
		return customer.ImportRow{}, 0, &FileError{Code: CodeEmptyFile, Message: "the file is empty; it needs a line per customer"}
	}
	return customer.ImportRow{}, 0, io.EOF
}
