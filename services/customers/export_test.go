package customers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// exportFile is an export's answer, its body and trailers read.
type exportFile struct {
	reply
	trailer http.Header
}

// export runs GET /v1/customers/export?query with the system's token; the
// answer is checked against the OpenAPI document like every other.
func export(t *testing.T, s *system, query string) exportFile {
	t.Helper()
	resp := s.forTest(t).send(http.MethodGet, "/v1/customers/export?"+query, nil, nil,
		map[string]string{"Authorization": "Bearer " + s.token})
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return exportFile{reply: reply{status: resp.StatusCode, header: resp.Header, body: raw}, trailer: resp.Trailer}
}

// expectWhole checks the headers of a successful export and the trailers
// that mark it complete with rows rows.
func (f exportFile) expectWhole(t *testing.T, contentType, ext string, rows int) {
	t.Helper()
	f.expectStatus(t, http.StatusOK)
	if ct := f.header.Get("Content-Type"); ct != contentType {
		t.Errorf("Content-Type %q, want %q", ct, contentType)
	}
	if cd := f.header.Get("Content-Disposition"); !regexp.MustCompile(`^attachment; filename="customers-\d{8}T\d{6}Z\.` + ext + `"$`).MatchString(cd) {
		t.Errorf("Content-Disposition %q", cd)
	}
	if cc := f.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if got := f.trailer.Get("X-Export-Complete"); got != "true" {
		t.Errorf("trailer X-Export-Complete %q, want true", got)
	}
	if got := f.trailer.Get("X-Export-Rows"); got != strconv.Itoa(rows) {
		t.Errorf("trailer X-Export-Rows %q, want %d", got, rows)
	}
}

// lines decodes an NDJSON body, keeping each line's keys in order.
func (f exportFile) lines(t *testing.T) []map[string]json.RawMessage {
	t.Helper()
	var out []map[string]json.RawMessage
	for i, line := range bytes.SplitAfter(f.body, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !bytes.HasSuffix(line, []byte("\n")) {
			t.Fatalf("line %d does not end with a newline: %q", i+1, line)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %d: %v: %q", i+1, err, line)
		}
		out = append(out, m)
	}
	return out
}

// rows decodes a CSV body into its header and rows, and checks the bytes:
// no BOM, CRLF line ends.
func (f exportFile) rows(t *testing.T) (header []string, rows []map[string]string) {
	t.Helper()
	if bytes.HasPrefix(f.body, []byte("\xef\xbb\xbf")) {
		t.Error("the CSV file starts with a BOM")
	}
	if n, crlf := bytes.Count(f.body, []byte("\n")), bytes.Count(f.body, []byte("\r\n")); n != crlf || !bytes.HasSuffix(f.body, []byte("\r\n")) {
		t.Errorf("%d line ends, %d of them CRLF; every line must end with CRLF", n, crlf)
	}
	records, err := csv.NewReader(bytes.NewReader(f.body)).ReadAll()
	if err != nil {
		t.Fatalf("read CSV: %v\n%s", err, f.body)
	}
	header = records[0]
	for _, rec := range records[1:] {
		row := map[string]string{}
		for i, name := range header {
			row[name] = rec[i]
		}
		rows = append(rows, row)
	}
	return header, rows
}

// getRaw reads a resource as a map of its keys' raw JSON.
func getRaw(t *testing.T, s *system, path string) map[string]json.RawMessage {
	t.Helper()
	r := request(t, s, http.MethodGet, path, nil, nil)
	r.expectStatus(t, http.StatusOK)
	var m map[string]json.RawMessage
	r.decode(t, &m)
	return m
}

// asCell is a JSON value as the export writes it in a CSV cell.
func asCell(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []any:
		var ids []string
		for _, id := range x {
			ids = append(ids, id.(string))
		}
		return strings.Join(ids, ";")
	default: // booleans and numbers as JSON writes them
		return string(raw)
	}
}

var (
	firstFields    = []string{"id", "email", "first_name", "last_name", "company_name", "phone", "note", "is_active", "language_code", "external_reference", "is_verified", "created_at"}
	addressColumns = []string{"first_name", "last_name", "company_name", "street_address_1", "street_address_2", "city", "city_area", "postal_code", "country", "country_area", "phone"}
)

// exportCustomers makes customers with metadata, private metadata and
// addresses (a default shipping one, a default billing one only, none).
func exportCustomers(t *testing.T, s *system) []customerJSON {
	t.Helper()
	billing := validAddress()
	billing["is_default_billing"] = true
	billing["city"] = "Köln, \"Altstadt\""
	shipping := validAddress()
	shipping["is_default_shipping"] = true
	shipping["phone"] = "+49 30 1234567"
	return []customerJSON{
		s.createCustomer(map[string]any{
			"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "phone": "+49 30 7654321",
			"external_reference": "erp-1", "note": "line one\nline two, with \"quotes\"",
			"metadata": map[string]string{"tier": "gold", "b": "x"}, "private_metadata": map[string]string{"secret": "s1"},
			"addresses": []any{validAddress(), shipping},
		}),
		s.createCustomer(map[string]any{"email": "bob@example.com", "last_name": "Zed", "is_active": false}),
		s.createCustomer(map[string]any{
			"email": "cid@example.com", "last_name": "Moe", "metadata": map[string]string{"tier": "silver"},
			"private_metadata": map[string]string{"other": "o"}, "addresses": []any{billing},
		}),
	}
}

func TestExportNDJSONGivesEachCustomerAsGETReadsIt(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	want := exportCustomers(t, s)

	for _, tt := range []struct {
		name  string
		query string
		keys  []string // every line's keys, in order
	}{
		{"default", "", append(slices.Clone(firstFields), "metadata", "attributes")},
		{"format=ndjson", "format=ndjson", append(slices.Clone(firstFields), "metadata", "attributes")},
		{"include both", "include=private_metadata,addresses", append(slices.Clone(firstFields), "metadata", "private_metadata", "attributes", "addresses")},
		{"fields", "fields=groups,email,version,id", []string{"id", "email", "version", "groups"}},
		{"fields with attributes", "fields=attributes,id", []string{"id", "attributes"}},
		{"fields with read-only ones and include", "fields=updated_at,has_account,number_of_orders,last_order_at,private_metadata&include=private_metadata",
			[]string{"updated_at", "has_account", "number_of_orders", "last_order_at", "private_metadata"}},
		{"include is exported whatever fields says", "fields=id&include=addresses", []string{"id", "addresses"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := export(t, s, tt.query+"&order=email")
			f.expectWhole(t, "application/x-ndjson", "ndjson", len(want))
			lines := f.lines(t)
			if len(lines) != len(want) {
				t.Fatalf("%d lines, want %d", len(lines), len(want))
			}
			for i, line := range lines {
				// The second reader: a fresh GET of the same customer.
				got := getRaw(t, s, "/v1/customers/"+want[i].ID)
				if string(line["id"]) != string(got["id"]) && slices.Contains(tt.keys, "id") {
					t.Fatalf("line %d is customer %s, want %s (order=email)", i+1, line["id"], got["id"])
				}
				var keys []string
				for k := range line {
					keys = append(keys, k)
				}
				if !sameSet(keys, tt.keys) {
					t.Errorf("line %d has keys %v, want %v", i+1, keys, tt.keys)
				}
				for _, k := range tt.keys {
					wantValue := got[k]
					if k == "addresses" {
						wantValue = getRaw(t, s, "/v1/customers/"+want[i].ID+"/addresses")["addresses"]
					}
					if !jsonEqual(t, line[k], wantValue) {
						t.Errorf("line %d %s = %s, GET reads %s", i+1, k, line[k], wantValue)
					}
				}
			}
			// Keys come in the documented order.
			first := bytes.SplitN(f.body, []byte("\n"), 2)[0]
			if order := keyOrder(t, first); !slices.Equal(order, tt.keys) {
				t.Errorf("keys in the order %v, want %v", order, tt.keys)
			}
		})
	}
	t.Run("private metadata never without include", func(t *testing.T) {
		for _, q := range []string{"", "fields=id,metadata", "include=addresses"} {
			if f := export(t, s, q); bytes.Contains(f.body, []byte("private_metadata")) || bytes.Contains(f.body, []byte("s1")) {
				t.Errorf("%q: private metadata exported: %s", q, f.body)
			}
		}
	})
}

func TestExportCSVGivesEachCustomerAsGETReadsIt(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	want := exportCustomers(t, s)
	addressHeader := func() []string {
		var h []string
		for _, c := range addressColumns {
			h = append(h, "address."+c)
		}
		return h
	}

	for _, tt := range []struct {
		name   string
		query  string
		header []string
	}{
		{"default", "format=csv", append(slices.Clone(firstFields), "metadata.b", "metadata.tier")},
		{"Accept: text/csv", "", append(slices.Clone(firstFields), "metadata.b", "metadata.tier")},
		{"include both", "format=csv&include=addresses,private_metadata",
			slices.Concat(firstFields, []string{"metadata.b", "metadata.tier", "private_metadata.other", "private_metadata.secret"}, addressHeader())},
		{"fields", "format=csv&fields=groups,version,email,id,last_order_at,metadata", []string{"id", "email", "version", "last_order_at", "groups", "metadata.b", "metadata.tier"}},
		{"fields without metadata", "format=csv&fields=email,updated_at", []string{"email", "updated_at"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var f exportFile
			if tt.query == "" {
				resp := s.send(http.MethodGet, "/v1/customers/export?order=email", nil, nil,
					map[string]string{"Authorization": "Bearer " + s.token, "Accept": "text/csv"})
				raw, _ := io.ReadAll(resp.Body)
				f = exportFile{reply: reply{status: resp.StatusCode, header: resp.Header, body: raw}, trailer: resp.Trailer}
			} else {
				f = export(t, s, tt.query+"&order=email")
			}
			f.expectWhole(t, "text/csv; charset=utf-8", "csv", len(want))
			header, rows := f.rows(t)
			if !slices.Equal(header, tt.header) {
				t.Fatalf("header %v, want %v", header, tt.header)
			}
			if len(rows) != len(want) {
				t.Fatalf("%d rows, want %d", len(rows), len(want))
			}
			for i, row := range rows {
				got := getRaw(t, s, "/v1/customers/"+want[i].ID)
				var md, pmd map[string]string
				_ = json.Unmarshal(got["metadata"], &md)
				_ = json.Unmarshal(got["private_metadata"], &pmd)
				var addresses []map[string]json.RawMessage
				_ = json.Unmarshal(getRaw(t, s, "/v1/customers/"+want[i].ID+"/addresses")["addresses"], &addresses)
				def := defaultAddressOf(addresses)
				for _, col := range header {
					var cell string
					switch {
					case strings.HasPrefix(col, "metadata."):
						cell = md[strings.TrimPrefix(col, "metadata.")]
					case strings.HasPrefix(col, "private_metadata."):
						cell = pmd[strings.TrimPrefix(col, "private_metadata.")]
					case strings.HasPrefix(col, "address."):
						if def != nil {
							cell = asCell(t, def[strings.TrimPrefix(col, "address.")])
						}
					default:
						cell = asCell(t, got[col])
					}
					if row[col] != cell {
						t.Errorf("row %d (%s) %s = %q, GET reads %q", i+1, want[i].Email, col, row[col], cell)
					}
				}
			}
		})
	}
	t.Run("the address columns hold shipping, else billing, else nothing", func(t *testing.T) {
		_, rows := export(t, s, "format=csv&include=addresses&order=email").rows(t)
		if got := []string{rows[0]["address.phone"], rows[1]["address.city"], rows[2]["address.city"]}; !slices.Equal(got, []string{"+49301234567", "", "Köln, \"Altstadt\""}) {
			t.Errorf("address cells %q", got)
		}
	})
}

// defaultAddressOf finds the address a CSV row carries.
func defaultAddressOf(addresses []map[string]json.RawMessage) map[string]json.RawMessage {
	for _, flag := range []string{"is_default_shipping", "is_default_billing"} {
		for _, a := range addresses {
			if string(a[flag]) == "true" {
				return a
			}
		}
	}
	return nil
}

func TestExportHonoursTheListsFiltersAndOrder(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	exportCustomers(t, s)
	for i := range 4 {
		s.createCustomer(map[string]any{"email": fmt.Sprintf("more%d@example.com", i), "last_name": fmt.Sprintf("L%d", 3-i),
			"metadata": map[string]string{"tier": []string{"gold", "silver"}[i%2]}})
	}
	for _, query := range []string{
		"", "order=email", "order=-email", "order=last_name", "order=-last_name", "order=created_at",
		"metadata[tier]=gold", "is_active=false", "q=lee", "email=BOB@example.com",
		"order=-last_name&metadata[tier]=silver&is_active=true",
	} {
		t.Run(query, func(t *testing.T) {
			var want []string
			for _, c := range listCustomers(t, s, query+"&limit=100").Customers {
				want = append(want, c.ID)
			}
			f := export(t, s, query)
			f.expectWhole(t, "application/x-ndjson", "ndjson", len(want))
			var got []string
			for _, line := range f.lines(t) {
				var id string
				_ = json.Unmarshal(line["id"], &id)
				got = append(got, id)
			}
			if !slices.Equal(got, want) {
				t.Errorf("export gives %v, the list %v", got, want)
			}
		})
	}
	t.Run("CSV metadata columns are those of the exported customers only", func(t *testing.T) {
		s.createCustomer(map[string]any{"email": "odd@example.com", "metadata": map[string]string{"odd": "1"}})
		header, rows := export(t, s, "format=csv&fields=email,metadata&metadata[tier]=gold").rows(t)
		if !slices.Equal(header, []string{"email", "metadata.b", "metadata.tier"}) || len(rows) != 3 {
			t.Errorf("header %v, %d rows", header, len(rows))
		}
	})
}

func TestExportRefusesBadInput(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	for _, tt := range []struct {
		query, field, code string
	}{
		{"format=xml", "format", "invalid"},
		{"fields=nope", "fields", "invalid"},
		{"fields=id,,email", "fields", "invalid"},
		{"fields=private_metadata", "fields", "invalid"},
		{"fields=addresses", "fields", "invalid"},
		{"include=nope", "include", "invalid"},
		{"include=private_metadata,groups", "include", "invalid"},
		{"order=nope", "order", "invalid"},
		{"created_after=yesterday", "created_after", "invalid"},
		{"limit=5", "limit", "unknown_field"},
		{"cursor=abc", "cursor", "unknown_field"},
		{"count=false", "count", "unknown_field"},
		{"page=2", "page", "unknown_field"},
	} {
		t.Run(tt.query, func(t *testing.T) {
			request(t, s, http.MethodGet, "/v1/customers/export?"+tt.query, nil, nil).expectProblem(t, 400, tt.field, tt.code)
		})
	}
	t.Run("no token", func(t *testing.T) {
		request(t, s, http.MethodGet, "/v1/customers/export", nil, map[string]string{"Authorization": ""}).expectProblem(t, 401, "Authorization", "unauthorized")
	})
	t.Run("a customer's token", func(t *testing.T) {
		request(t, s, http.MethodGet, "/v1/customers/export", nil, map[string]string{"Authorization": "Bearer " + s.newShopper().AccessToken}).
			expectProblem(t, 403, "Authorization", "forbidden")
	})
}

// An export reads one snapshot: customers changed, deleted or created while
// it streams appear as they were when it began, exactly once, or not at all.
func TestExportStreamsOneSnapshot(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	const n = 3_000
	insertBigCustomers(t, s, n)
	idOf := func(i int) string {
		var id string
		if err := s.pool.QueryRow(context.Background(), `SELECT id FROM customers WHERE email = $1`, fmt.Sprintf("c%05d@example.com", i)).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}

	resp, body := startExport(t, s, "order=email&fields=id,email,last_name,metadata")
	type line struct {
		ID       string            `json:"id"`
		Email    string            `json:"email"`
		LastName string            `json:"last_name"`
		Metadata map[string]string `json:"metadata"`
	}
	seen := map[string]line{}
	var order []string
	read := func(lines int) {
		for range lines {
			raw, err := body.ReadBytes('\n')
			if err == io.EOF && len(raw) == 0 {
				return
			}
			if err != nil {
				t.Fatalf("after %d lines: %v", len(order), err)
			}
			var l line
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Fatal(err)
			}
			if _, dup := seen[l.ID]; dup {
				t.Errorf("customer %s (%s) exported twice", l.ID, l.Email)
			}
			seen[l.ID] = l
			order = append(order, l.Email)
		}
	}
	read(10)
	expectExportRunning(t, s)

	// Changes while the export streams: c00001, read already, moves to the end
	// of the order; c02999, not read yet, to the start of it; c02000 gets a new
	// name and metadata; c02500 is deleted; new customers appear.
	early, late, renamed, deleted := idOf(1), idOf(2999), idOf(2000), idOf(2500)
	for id, change := range map[string]map[string]any{
		early:   {"email": "zzz-moved@example.com"},
		late:    {"email": "a-moved@example.com"},
		renamed: {"last_name": "Renamed", "metadata": map[string]string{"n": "changed"}},
	} {
		if r := s.do(http.MethodPatch, "/v1/customers/"+id, change, nil); r.StatusCode != http.StatusOK {
			t.Fatalf("PATCH: status %d", r.StatusCode)
		}
	}
	if r := s.do(http.MethodDelete, "/v1/customers/"+deleted, nil, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: status %d", r.StatusCode)
	}
	for i := range 3 {
		s.createCustomer(map[string]any{"email": fmt.Sprintf("c%05d-new@example.com", 2700+i)})
	}

	read(n + 10)
	if _, err := body.ReadByte(); err != io.EOF {
		t.Errorf("more after the last line: %v", err)
	}
	if got := resp.Trailer.Get("X-Export-Rows"); got != strconv.Itoa(n) || resp.Trailer.Get("X-Export-Complete") != "true" {
		t.Errorf("trailers %v, want %d rows, complete", resp.Trailer, n)
	}
	if len(seen) != n {
		t.Errorf("%d customers exported, want the %d of the snapshot", len(seen), n)
	}
	for i, email := range order {
		if want := fmt.Sprintf("c%05d@example.com", i); email != want {
			t.Fatalf("line %d is %s, want %s as of the snapshot", i+1, email, want)
		}
	}
	for id, l := range seen {
		var want int
		fmt.Sscanf(l.Email, "c%05d@", &want)
		if l.LastName != fmt.Sprintf("L%d", want) || l.Metadata["n"] != strconv.Itoa(want) {
			t.Errorf("customer %s exported as %s %v, not as of the snapshot", id, l.LastName, l.Metadata["n"])
		}
	}
	for _, id := range []string{early, late, renamed, deleted} {
		if _, ok := seen[id]; !ok {
			t.Errorf("customer %s, changed during the export, is missing", id)
		}
	}
}

// A failure after the first byte cuts the answer: the client sees a broken
// stream without the trailers, never a file that looks whole.
func TestExportCutMidStreamIsNotWhole(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	insertBigCustomers(t, s, 3_000)
	resp, body := startExport(t, s, "format=csv")
	if _, err := body.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	expectExportRunning(t, s)
	// The export's connection dies: its next page cannot be read.
	if n := s.count(`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE ` + exportSession + `) AS t`); n != 1 {
		t.Fatalf("terminated %d sessions, want the export's", n)
	}
	_, err := io.Copy(io.Discard, body)
	if err == nil {
		t.Error("the cut export ended like a whole one")
	}
	if resp.Trailer.Get("X-Export-Complete") != "" || resp.Trailer.Get("X-Export-Rows") != "" {
		t.Errorf("a cut export has trailers %v", resp.Trailer)
	}
}

// insertBigCustomers inserts n customers c00000@example.com … straight into
// the table (no events: the tests using them read exports only), with rows of
// ~16 KB, far more in all than sockets buffer, so that an export of them is
// still reading pages while the test reads its first lines.
func insertBigCustomers(t *testing.T, s *system, n int) {
	t.Helper()
	if _, err := s.pool.Exec(context.Background(), `
		INSERT INTO customers (id, email, last_name, metadata, created_at, updated_at)
		SELECT gen_random_uuid(), format('c%s@example.com', lpad(i::text, 5, '0')), format('L%s', i),
		       jsonb_build_object('n', i::text, 'pad1', repeat('x', 4000), 'pad2', repeat('y', 4000),
		                          'pad3', repeat('z', 4000), 'pad4', repeat('w', 4000)),
		       now() - (i || ' seconds')::interval, now()
		FROM generate_series(0, $1 - 1) AS i`, n); err != nil {
		t.Fatal(err)
	}
}

// startExport starts an export and returns its body to read incrementally.
func startExport(t *testing.T, s *system, query string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.api.URL+"/v1/customers/export?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp, bufio.NewReaderSize(resp.Body, 1<<20)
}

// exportSession picks, in pg_stat_activity, the export's session: reading a
// page of customers, or idle in its transaction after one (the next page is
// read while the one before is written). Its query tells it from the relay's,
// which, too, is idle in a transaction for a moment after its BEGIN.
const exportSession = `datname = current_database() AND state IN ('active', 'idle in transaction')
	AND query LIKE '-- name: ListCustomers %'`

// expectExportRunning fails unless the export's snapshot transaction is open:
// a test of what happens during an export proves nothing after it.
func expectExportRunning(t *testing.T, s *system) {
	t.Helper()
	if s.count(`SELECT count(*) FROM pg_stat_activity WHERE `+exportSession) == 0 {
		t.Fatal("the export's transaction has ended already; make the rows bigger")
	}
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// keyOrder lists the keys of a JSON object in the order they are written.
func keyOrder(t *testing.T, object []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(object))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
