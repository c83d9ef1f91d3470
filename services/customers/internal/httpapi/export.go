package httpapi

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/events/tracing"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/imports"
	"github.com/customerbus/customerbus/services/customers/internal/listquery"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// The media types of an export (docs/staff-api.md, "Export and import files").
const (
	csvType    = "text/csv; charset=utf-8"
	ndjsonType = "application/x-ndjson"
)

// Trailers of an export: only a file whose answer ends with them, complete,
// is whole; a failure mid-stream cuts the connection before them.
const (
	trailerRows     = "X-Export-Rows"
	trailerComplete = "X-Export-Complete"
)

// exportWriteTimeout is how long writing one page of an export may take:
// the server's WriteTimeout bounds ordinary answers, not a file of a million
// customers, so each page moves the deadline on (and the read deadline is
// lifted, see begin).
const exportWriteTimeout = time.Minute

// exportFlushRows is how many rows an export writes between flushes (and
// write deadlines); exportBufferSize is what it buffers before the
// connection in between.
const (
	exportFlushRows  = 1_000
	exportBufferSize = 64 << 10
)

// exportField is a field of the customer in an export: a CSV column and an
// NDJSON key of the same name and value (as GET /v1/customers/{id} gives it).
type exportField struct {
	name string
	cell func(c *customer.Customer) string // the CSV cell, see cell
	json func(e *lineEncoder, c *customer.Customer)
}

// exportFields are the customer's own fields in file order; defaultFields of
// them are exported unless fields= chooses.
var (
	exportFields = []exportField{
		{"id", func(c *customer.Customer) string { return c.ID.String() }, func(e *lineEncoder, c *customer.Customer) { e.uuid(c.ID) }},
		{"email", func(c *customer.Customer) string { return c.Email }, func(e *lineEncoder, c *customer.Customer) { e.string(c.Email) }},
		{"first_name", func(c *customer.Customer) string { return c.FirstName }, func(e *lineEncoder, c *customer.Customer) { e.string(c.FirstName) }},
		{"last_name", func(c *customer.Customer) string { return c.LastName }, func(e *lineEncoder, c *customer.Customer) { e.string(c.LastName) }},
		{"company_name", func(c *customer.Customer) string { return c.CompanyName }, func(e *lineEncoder, c *customer.Customer) { e.string(c.CompanyName) }},
		{"phone", func(c *customer.Customer) string { return cell(c.Phone) }, func(e *lineEncoder, c *customer.Customer) { e.stringPtr(c.Phone) }},
		{"note", func(c *customer.Customer) string { return c.Note }, func(e *lineEncoder, c *customer.Customer) { e.string(c.Note) }},
		{"is_active", func(c *customer.Customer) string { return cell(c.IsActive) }, func(e *lineEncoder, c *customer.Customer) { e.bool(c.IsActive) }},
		{"language_code", func(c *customer.Customer) string { return c.LanguageCode }, func(e *lineEncoder, c *customer.Customer) { e.string(c.LanguageCode) }},
		{"external_reference", func(c *customer.Customer) string { return cell(c.ExternalReference) }, func(e *lineEncoder, c *customer.Customer) { e.stringPtr(c.ExternalReference) }},
		{"is_verified", func(c *customer.Customer) string { return cell(c.IsVerified) }, func(e *lineEncoder, c *customer.Customer) { e.bool(c.IsVerified) }},
		{"created_at", func(c *customer.Customer) string { return cell(c.CreatedAt) }, func(e *lineEncoder, c *customer.Customer) { e.time(c.CreatedAt) }},
		// Read-only: exported only when asked for.
		{"updated_at", func(c *customer.Customer) string { return cell(c.UpdatedAt) }, func(e *lineEncoder, c *customer.Customer) { e.time(c.UpdatedAt) }},
		{"version", func(c *customer.Customer) string { return cell(c.Version) }, func(e *lineEncoder, c *customer.Customer) { e.int(c.Version) }},
		{"has_account", func(c *customer.Customer) string { return cell(c.HasAccount) }, func(e *lineEncoder, c *customer.Customer) { e.bool(c.HasAccount) }},
		{"number_of_orders", func(c *customer.Customer) string { return cell(c.NumberOfOrders) }, func(e *lineEncoder, c *customer.Customer) { e.int(int64(c.NumberOfOrders)) }},
		{"last_order_at", func(c *customer.Customer) string { return cell(c.LastOrderAt) }, func(e *lineEncoder, c *customer.Customer) { e.timePtr(c.LastOrderAt) }},
		{"groups", func(c *customer.Customer) string { return cell(c.Groups) }, func(e *lineEncoder, c *customer.Customer) { e.uuids(c.Groups) }},
		{"is_anonymized", func(c *customer.Customer) string { return cell(c.IsAnonymized) }, func(e *lineEncoder, c *customer.Customer) { e.bool(c.IsAnonymized) }},
	}
	defaultFields = 12 // id … created_at
)

// Names of fields= that are not columns of their own.
const (
	fieldMetadata        = "metadata"
	fieldAttributes      = "attributes"
	fieldPrivateMetadata = "private_metadata"
	fieldAddresses       = "addresses"
)

// exportOptions is what an export writes, from format=, fields= and include=.
type exportOptions struct {
	csv        bool
	fields     []exportField // in file order
	metadata   bool
	attributes bool
	private    bool // include=private_metadata
	addresses  bool // include=addresses
}

// exportParams are the query parameters of an export besides the list's
// filters and order; pageParams are the list's that an export refuses.
var (
	exportParams = []string{"format", "fields", "include"}
	pageParams   = []string{"limit", "cursor", "count", "count_limit"}
)

func (a *API) exportCustomers(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	started := time.Now().UTC()
	qs := r.URL.Query()
	opts, err := parseExportOptions(qs, r.Header.Get("Accept"))
	if err != nil {
		return err
	}
	filters := url.Values{}
	for k, v := range qs {
		if slices.Contains(pageParams, k) {
			return problem.Input(http.StatusBadRequest, k, problem.CodeUnknownField, "an export is the whole result: %s does not apply", k)
		}
		if !slices.Contains(exportParams, k) {
			filters[k] = v
		}
	}
	in, err := listquery.Customers(filters)
	if err != nil {
		return err
	}
	ew := &exportWriter{w: w, rc: http.NewResponseController(w), opts: opts, started: started}
	err = a.customers.Export(r.Context(), customer.ExportInput{
		ListInput: in, Addresses: opts.addresses,
		MetadataKeys: opts.csv && opts.metadata, PrivateMetadataKeys: opts.csv && opts.private,
		AttributeKeys: opts.csv && opts.attributes,
	}, ew)
	if err == nil {
		err = ew.finish()
	}
	if err == nil {
		return nil
	}
	if !ew.headerSent {
		return err
	}
	// The answer has begun: it can no longer become a problem. Cutting the
	// connection (no last chunk, no trailers) tells the client the file is
	// not whole; ending it normally would make a cut file look complete.
	tracing.Logger(r.Context(), a.log).Error("export cut short", zap.String("request_id", requestID(r.Context())),
		zap.Int("rows", ew.rows), zap.Error(err))
	panic(http.ErrAbortHandler)
}

// parseExportOptions reads format= (else the Accept header; NDJSON by
// default), include= and fields=.
func parseExportOptions(qs url.Values, accept string) (exportOptions, error) {
	var o exportOptions
	switch f := qs.Get("format"); f {
	case "csv":
		o.csv = true
	case "ndjson":
	case "":
		o.csv = strings.Contains(accept, "text/csv") && !strings.Contains(accept, ndjsonType)
	default:
		return o, problem.Input(http.StatusBadRequest, "format", customer.CodeInvalid, "format must be csv or ndjson")
	}
	if v, ok := qs["include"]; ok {
		for name := range strings.SplitSeq(v[0], ",") {
			switch strings.TrimSpace(name) {
			case fieldPrivateMetadata:
				o.private = true
			case fieldAddresses:
				o.addresses = true
			default:
				return o, problem.Input(http.StatusBadRequest, "include", customer.CodeInvalid,
					"include is a comma-separated list of private_metadata and addresses; %q is neither", name)
			}
		}
	}
	v, chosen := qs["fields"]
	if !chosen {
		o.fields, o.metadata, o.attributes = exportFields[:defaultFields], true, true
		return o, nil
	}
	want := map[string]bool{}
	for name := range strings.SplitSeq(v[0], ",") {
		name = strings.TrimSpace(name)
		known := name == fieldMetadata || name == fieldAttributes || slices.ContainsFunc(exportFields, func(f exportField) bool { return f.name == name })
		switch {
		case name == fieldPrivateMetadata && !o.private, name == fieldAddresses && !o.addresses:
			return o, problem.Input(http.StatusBadRequest, "fields", customer.CodeInvalid,
				"%s is exported only with include=%s", name, name)
		case !known && name != fieldPrivateMetadata && name != fieldAddresses:
			return o, problem.Input(http.StatusBadRequest, "fields", customer.CodeInvalid,
				"fields: %q is not a field of an export (see docs/staff-api.md, Export and import files)", name)
		}
		want[name] = true
	}
	for _, f := range exportFields {
		if want[f.name] {
			o.fields = append(o.fields, f)
		}
	}
	o.metadata, o.attributes = want[fieldMetadata], want[fieldAttributes]
	return o, nil
}

// exportWriter writes an export as it is read, CSV or NDJSON. Nothing of the
// answer is sent before the first customer (or the CSV header), so an error
// found before it is still an ordinary problem.
type exportWriter struct {
	w          http.ResponseWriter
	rc         *http.ResponseController
	opts       exportOptions
	started    time.Time
	keys       customer.MetadataKeys
	buf        *bufio.Writer // before w: fewer, larger chunks
	csv        *csv.Writer
	record     []string    // CSV: reused for every row
	line       lineEncoder // NDJSON: reused for every row
	headerSent bool
	rows       int
}

// Keys receives the metadata keys, which make CSV columns.
func (e *exportWriter) Keys(k customer.MetadataKeys) error {
	e.keys = k
	return e.begin()
}

// begin sends the status and headers and, for CSV, the header row.
func (e *exportWriter) begin() error {
	if e.headerSent {
		return nil
	}
	e.headerSent = true
	h := e.w.Header()
	ext := "ndjson"
	h.Set("Content-Type", ndjsonType)
	if e.opts.csv {
		ext = "csv"
		h.Set("Content-Type", csvType)
	}
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="customers-%s.%s"`, e.started.Format("20060102T150405Z"), ext))
	h.Set("Cache-Control", "no-store")
	h.Set("Trailer", trailerRows+", "+trailerComplete)
	e.w.WriteHeader(http.StatusOK)
	// The server's ReadTimeout would otherwise end the request's context in
	// the middle of a long export; a GET has no body left to read.
	if err := e.rc.SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	e.buf = bufio.NewWriterSize(e.w, exportBufferSize)
	if !e.opts.csv {
		return nil
	}
	e.csv = csv.NewWriter(e.buf)
	e.csv.UseCRLF = true
	var header []string
	for _, f := range e.opts.fields {
		header = append(header, f.name)
	}
	if e.opts.metadata {
		for _, k := range e.keys.Public {
			header = append(header, fieldMetadata+"."+k)
		}
	}
	if e.opts.private {
		for _, k := range e.keys.Private {
			header = append(header, fieldPrivateMetadata+"."+k)
		}
	}
	if e.opts.attributes {
		for _, k := range e.keys.Attributes {
			header = append(header, fieldAttributes+"."+k)
		}
	}
	if e.opts.addresses {
		for _, c := range imports.AddressColumns {
			header = append(header, "address."+c.Name)
		}
	}
	e.record = make([]string, len(header))
	return e.csv.Write(header)
}

// Customer writes one row.
func (e *exportWriter) Customer(c customer.Customer, addresses []customer.Address) error {
	if err := e.begin(); err != nil {
		return err
	}
	var err error
	if e.opts.csv {
		err = e.csvRow(&c, addresses)
	} else {
		err = e.jsonLine(&c, addresses)
	}
	if err != nil {
		return err
	}
	e.rows++
	if e.rows%exportFlushRows == 0 {
		return e.flush()
	}
	return nil
}

// flush sends what is buffered and gives the next page its write deadline.
func (e *exportWriter) flush() error {
	if e.csv != nil {
		e.csv.Flush()
		if err := e.csv.Error(); err != nil {
			return err
		}
	}
	if err := e.buf.Flush(); err != nil {
		return err
	}
	if err := e.rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if err := e.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// finish writes what remains and the trailers that mark the file whole.
func (e *exportWriter) finish() error {
	if err := e.begin(); err != nil {
		return err
	}
	if err := e.flush(); err != nil {
		return err
	}
	e.w.Header().Set(trailerRows, strconv.Itoa(e.rows))
	e.w.Header().Set(trailerComplete, "true")
	return nil
}

func (e *exportWriter) csvRow(c *customer.Customer, addresses []customer.Address) error {
	rec := e.record[:0]
	for _, f := range e.opts.fields {
		rec = append(rec, f.cell(c))
	}
	if e.opts.metadata {
		for _, k := range e.keys.Public {
			rec = append(rec, c.Metadata[k])
		}
	}
	if e.opts.private {
		for _, k := range e.keys.Private {
			rec = append(rec, c.PrivateMetadata[k])
		}
	}
	if e.opts.attributes {
		for _, k := range e.keys.Attributes {
			rec = append(rec, customer.AttributeCell(c.Attributes[k]))
		}
	}
	if e.opts.addresses {
		a, ok := defaultAddress(c, addresses)
		for _, c := range imports.AddressColumns {
			if !ok {
				rec = append(rec, "")
				continue
			}
			rec = append(rec, c.Get(a))
		}
	}
	return e.csv.Write(rec)
}

// defaultAddress is the address a CSV row carries: the default shipping
// address, else the default billing one.
func defaultAddress(c *customer.Customer, addresses []customer.Address) (customer.Address, bool) {
	for _, id := range []*uuid.UUID{c.DefaultShippingAddressID, c.DefaultBillingAddressID} {
		if id == nil {
			continue
		}
		if i := slices.IndexFunc(addresses, func(a customer.Address) bool { return a.ID == *id }); i >= 0 {
			return addresses[i], true
		}
	}
	return customer.Address{}, false
}

// cell is a value as a CSV cell: booleans true/false, times RFC 3339 in UTC
// as the JSON answers give them, group ids joined by ";", null empty.
func cell(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case *string:
		if x == nil {
			return ""
		}
		return *x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uuid.UUID:
		return x.String()
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case *time.Time:
		if x == nil {
			return ""
		}
		return x.UTC().Format(time.RFC3339Nano)
	case []uuid.UUID:
		ids := make([]string, len(x))
		for i, id := range x {
			ids[i] = id.String()
		}
		return strings.Join(ids, ";")
	default:
		panic(fmt.Sprintf("export: no CSV cell for %T", v))
	}
}

// jsonLine writes one NDJSON line: the chosen keys of the customer as GET
// /v1/customers/{id} answers it, then private metadata and addresses when
// included.
func (e *exportWriter) jsonLine(c *customer.Customer, addresses []customer.Address) error {
	l := &e.line
	l.b = append(l.b[:0], '{')
	for _, f := range e.opts.fields {
		l.key(f.name)
		f.json(l, c)
	}
	if e.opts.metadata {
		l.key(fieldMetadata)
		l.strings(c.Metadata)
	}
	if e.opts.private {
		l.key(fieldPrivateMetadata)
		l.strings(c.PrivateMetadata)
	}
	if e.opts.attributes {
		l.key(fieldAttributes)
		l.marshal(nonNilAttributes(c.Attributes))
	}
	if e.opts.addresses {
		l.key(fieldAddresses)
		l.addresses(c, addresses)
	}
	if l.err != nil {
		return fmt.Errorf("export: encode customer %s: %w", c.ID, l.err)
	}
	l.b = append(l.b, '}', '\n')
	_, err := e.buf.Write(l.b)
	return err
}

func nonNilAttributes(a customer.Attributes) customer.Attributes {
	if a == nil {
		return customer.Attributes{}
	}
	return a
}
