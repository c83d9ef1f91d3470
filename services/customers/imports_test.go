package customers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers"
)

// importJob is the API's import job.
type importJob struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Rows   struct {
		Read, Created, Updated, Failed int64
	} `json:"rows"`
	Error string `json:"error"`
}

type importError struct {
	Row     int64  `json:"row"`
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// runImports runs the service's import jobs until the test ends.
func (s *system) runImports() context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.svc.RunImports(ctx) }()
	s.t.Cleanup(func() {
		cancel()
		<-done
	})
	return cancel
}

// startImport uploads a file and returns its job as the 202 answered it.
func (s *system) startImport(contentType, query, body string) importJob {
	s.t.Helper()
	r := request(s.t, s, http.MethodPost, "/v1/customers/import"+query, body, map[string]string{"Content-Type": contentType})
	r.expectStatus(s.t, http.StatusAccepted)
	var job importJob
	r.decode(s.t, &job)
	if loc := r.header.Get("Location"); loc != "/v1/import-jobs/"+job.ID {
		s.t.Errorf("Location %q, want the job", loc)
	}
	return job
}

// waitImport polls the job until it ends.
func (s *system) waitImport(id string) importJob {
	s.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var job importJob
		request(s.t, s, http.MethodGet, "/v1/import-jobs/"+id, nil, nil).decode(s.t, &job)
		if job.Status == "succeeded" || job.Status == "failed" {
			return job
		}
	}
	s.t.Fatalf("import %s did not end", id)
	return importJob{}
}

func (s *system) importErrors(id string) []importError {
	s.t.Helper()
	r := request(s.t, s, http.MethodGet, "/v1/import-jobs/"+id+"/errors", nil, nil)
	r.expectStatus(s.t, http.StatusOK)
	var out []importError
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		var e importError
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			s.t.Fatalf("error line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// customerByEmail reads a customer back through the list route.
func (s *system) customerByEmail(email string) (customerJSON, bool) {
	s.t.Helper()
	page := listCustomers(s.t, s, "email="+email)
	if len(page.Customers) == 0 {
		return customerJSON{}, false
	}
	return page.Customers[0], true
}

func TestImportCSVCreatesEachValidRowWithItsEvent(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runImports()
	sfx := randomSuffix()
	file := "\ufeffemail,first_name,is_verified,created_at,metadata.tier,private_metadata.erp,address.first_name,address.last_name,address.street_address_1,address.city,address.postal_code,address.country\r\n" +
		"ann-" + sfx + "@example.com,Ann,true,2020-05-01T10:00:00Z,gold,E-1,Ann,Lee,Main St 1,Berlin,10115,DE\r\n" +
		"not an email,Bad,,,,,,,,,,\r\n" +
		"\"bo-" + sfx + "@example.com\",\"Bo, Jr.\",false,,,,,,,,,\r\n"
	job := s.waitImport(s.startImport("text/csv", "", file).ID)
	if job.Status != "succeeded" || job.Rows.Read != 3 || job.Rows.Created != 2 || job.Rows.Failed != 1 {
		t.Fatalf("errors %+v; job %+v, want succeeded with 3 read, 2 created, 1 failed", s.importErrors(job.ID), job)
	}
	errs := s.importErrors(job.ID)
	t.Logf("errors: %+v", errs)
	if len(errs) != 1 || errs[0].Row != 2 || errs[0].Field != "email" || errs[0].Code != "invalid" {
		t.Errorf("errors %+v, want row 2's email", errs)
	}

	ann, ok := s.customerByEmail("ann-" + sfx + "@example.com")
	if !ok {
		t.Fatal("ann was not created")
	}
	var full struct {
		customerJSON
		IsVerified      bool              `json:"is_verified"`
		PrivateMetadata map[string]string `json:"private_metadata"`
		CreatedAt       time.Time         `json:"created_at"`
		DefaultShipping *string           `json:"default_shipping_address_id"`
	}
	s.do(http.MethodGet, "/v1/customers/"+ann.ID, nil, &full)
	if full.FirstName != "Ann" || !full.IsVerified || full.Metadata["tier"] != "gold" || full.PrivateMetadata["erp"] != "E-1" ||
		!full.CreatedAt.Equal(time.Date(2020, 5, 1, 10, 0, 0, 0, time.UTC)) || full.DefaultShipping == nil {
		t.Errorf("ann as stored: %+v", full)
	}
	if bo, ok := s.customerByEmail("bo-" + sfx + "@example.com"); !ok || bo.FirstName != "Bo, Jr." {
		t.Errorf("bo as stored: %+v (found %v)", bo, ok)
	}

	evs, _ := s.streamEvents(2)
	for _, e := range evs {
		if e.Type() != events.CustomerCreated || ext(e, "causationid") != job.ID {
			t.Errorf("event %s causationid %q, want customer.created caused by the job %s", e.Type(), ext(e, "causationid"), job.ID)
		}
	}
	if n := s.count(`SELECT count(*) FROM outbox WHERE nats_subject LIKE 'customerbus.notifications.%'`); n != 0 {
		t.Errorf("%d notifications: an import sends no email unless a row asks", n)
	}
	if n := s.count(`SELECT count(*) FROM import_job_chunks`); n != 0 {
		t.Errorf("%d chunks of the file kept after the job", n)
	}
}

func TestImportNDJSONUpsertChangesOnlyTheGivenFields(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runImports()
	sfx := randomSuffix()
	ann := s.createCustomer(map[string]any{"email": "ann-" + sfx + "@example.com", "first_name": "Ann", "last_name": "Lee",
		"external_reference": "crm-" + sfx, "metadata": map[string]string{"tier": "silver"}})
	file := fmt.Sprintf(`{"external_reference":"crm-%s","first_name":"Anna"}
{"email":"ANN-%s@example.com","note":"matched by email"}
{"email":"cy-%s@example.com","first_name":"Cy"}
`, sfx, sfx, sfx)
	job := s.waitImport(s.startImport("application/x-ndjson", "?mode=upsert", file).ID)
	if job.Status != "succeeded" || job.Rows.Updated != 2 || job.Rows.Created != 1 || job.Rows.Failed != 0 {
		t.Fatalf("job %+v, want 2 updated and 1 created", job)
	}
	var got customerJSON
	s.do(http.MethodGet, "/v1/customers/"+ann.ID, nil, &got)
	if got.FirstName != "Anna" || got.LastName != "Lee" || got.Note != "matched by email" || got.Metadata["tier"] != "silver" || got.Version != 3 {
		t.Errorf("ann after the upsert: %+v; want first_name Anna, note set, the rest kept, version 3", got)
	}
	if _, ok := s.customerByEmail("cy-" + sfx + "@example.com"); !ok {
		t.Error("cy was not created")
	}
	// ann's creation, then the import's two updates of ann and cy's creation.
	evs, _ := s.streamEvents(4)
	var types []string
	for _, e := range evs[1:] {
		types = append(types, e.Type()+"/"+ext(e, "sequence"))
		if ext(e, "causationid") != job.ID {
			t.Errorf("%s caused by %q, want the job", e.Type(), ext(e, "causationid"))
		}
	}
	slices.Sort(types) // the relay keeps the order per customer only
	if strings.Join(types, " ") != "customer.created/1 customer.updated/2 customer.updated/3" {
		t.Errorf("the import's events %v", types)
	}
}

// An import's bulk writes notify the relay's bulk lane (the payload
// "bulk"), which the outbox trigger's notifications no longer wake: without
// it, imported events would wait for the relay's poll.
func TestAnImportNotifiesTheRelaysBulkLane(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	ctx := context.Background()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Hijack().Close(ctx) }() // a LISTENing connection does not go back
	if _, err := conn.Exec(ctx, "LISTEN outbox"); err != nil {
		t.Fatal(err)
	}
	s.runImports()
	sfx := randomSuffix()
	job := s.waitImport(s.startImport("text/csv", "", "email,first_name\r\nbulk-"+sfx+"@example.com,Bulk\r\n").ID)
	if job.Status != "succeeded" || job.Rows.Created != 1 {
		t.Fatalf("job %+v, want succeeded with 1 created", job)
	}
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		n, err := conn.Conn().WaitForNotification(wait)
		if err != nil {
			t.Fatalf("no bulk notification after the import: %v", err)
		}
		if n.Payload == "bulk" {
			return
		}
	}
}

func TestImportRejectAllAndDryRunWriteNothing(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runImports()
	sfx := randomSuffix()
	file := "email,first_name\n" +
		"a-" + sfx + "@example.com,A\n" +
		"b-" + sfx + "@example.com,B\n" +
		"broken,C\n"
	before := s.count(`SELECT count(*) FROM customers`)
	job := s.waitImport(s.startImport("text/csv", "?on_error=reject_all", file).ID)
	if job.Status != "failed" || job.Rows.Failed != 1 || job.Rows.Created != 0 || !strings.Contains(job.Error, "nothing was written") {
		t.Errorf("reject_all job %+v, want failed with nothing written", job)
	}
	if errs := s.importErrors(job.ID); len(errs) != 1 || errs[0].Row != 3 {
		t.Errorf("errors %+v, want row 3", errs)
	}
	dry := s.waitImport(s.startImport("text/csv", "?dry_run=true", file).ID)
	if dry.Status != "succeeded" || dry.Rows.Created != 2 || dry.Rows.Failed != 1 {
		t.Errorf("dry run %+v, want 2 that would be created and 1 failed", dry)
	}
	if n := s.count(`SELECT count(*) FROM customers`); n != before {
		t.Errorf("%d customers, want the %d of before: nothing written", n, before)
	}
	if n := s.count(`SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("%d events, want none", n)
	}
	// Without the bad row, reject_all writes all.
	good := strings.TrimSuffix(file, "broken,C\n")
	if job := s.waitImport(s.startImport("text/csv", "?on_error=reject_all", good).ID); job.Status != "succeeded" || job.Rows.Created != 2 {
		t.Errorf("reject_all of a good file: %+v", job)
	}
	if n := s.count(`SELECT count(*) FROM customers`); n != before+2 {
		t.Errorf("%d customers, want %d", n, before+2)
	}
}

func TestImportRefusesBadFilesClearly(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, func(cfg *customers.Config) { cfg.Imports.MaxBytes = 4 << 20 })
	s.runImports()
	upload := func(contentType, body string) reply {
		return request(t, s, http.MethodPost, "/v1/customers/import", body, map[string]string{"Content-Type": contentType})
	}
	upload("application/json", `{"email":"a@b.co"}`).expectProblem(t, http.StatusUnsupportedMediaType, "Content-Type", "unsupported_media_type")
	upload("text/csv", "").expectProblem(t, http.StatusBadRequest, "", "empty_file")
	upload("text/csv", "email,shoe_size\na@b.co,42\n").expectProblem(t, http.StatusBadRequest, "shoe_size", "unknown_column")
	upload("text/csv", "email,email\na@b.co,a@b.co\n").expectProblem(t, http.StatusBadRequest, "email", "duplicate_column")
	upload("text/csv", "email\n"+strings.Repeat("someone@example.com\n", 5<<20/20)).expectProblem(t, http.StatusRequestEntityTooLarge, "", "too_large")
	request(t, s, http.MethodPost, "/v1/customers/import?mode=merge", "email\n", map[string]string{"Content-Type": "text/csv"}).
		expectProblem(t, http.StatusBadRequest, "mode", "invalid")
	if n := s.count(`SELECT count(*) FROM import_jobs`); n != 0 {
		t.Errorf("%d jobs kept of refused uploads", n)
	}

	// Rows that cannot be read are each a row error; a broken quote ends the file.
	sfx := randomSuffix()
	rows := "email,first_name\n" +
		"a-" + sfx + "@example.com,A,extra\n" +
		"b-" + sfx + "@example.com,\xff\n" +
		"c-" + sfx + "@example.com,C\n" +
		"\"d-" + sfx + "@example.com,D\n"
	job := s.waitImport(s.startImport("text/csv", "", rows).ID)
	if job.Status != "failed" || job.Rows.Created != 1 || !strings.Contains(job.Error, "row 4") {
		t.Errorf("job %+v, want failed at row 4 (the quote) after creating row 3", job)
	}
	errs := s.importErrors(job.ID)
	if len(errs) != 2 || errs[0].Row != 1 || errs[0].Code != "column_count" || errs[1].Row != 2 || errs[1].Field != "first_name" {
		t.Errorf("errors %+v, want row 1 column_count and row 2 first_name", errs)
	}
	nd := "{\"email\":\"e-" + sfx + "@example.com\"}\n{\"email\": 7}\n{\"email\":\"f-" + sfx + "@example.com\",\"shoe\":1}\nnot json\n"
	job = s.waitImport(s.startImport("application/x-ndjson", "", nd).ID)
	errs = s.importErrors(job.ID)
	if job.Status != "succeeded" || job.Rows.Created != 1 || len(errs) != 3 ||
		errs[0].Code != "invalid_type" || errs[1].Field != "shoe" || errs[2].Code != "malformed" {
		t.Errorf("ndjson job %+v errors %+v", job, errs)
	}
	long := "{\"email\":\"g-" + sfx + "@example.com\",\"note\":\"" + strings.Repeat("n", 2<<20) + "\"}\n"
	job = s.waitImport(s.startImport("application/x-ndjson", "", "{\"email\":\"h-"+sfx+"@example.com\"}\n"+long).ID)
	if job.Status != "failed" || !strings.Contains(job.Error, "row_too_large") && !strings.Contains(job.Error, "longer than") {
		t.Errorf("a line over the limit: %+v", job)
	}
}

// A job whose instance stops mid-way goes on from its last committed batch
// on the next: every row applied once, with one event each. The test holds
// a lock that row 1,500 needs (it joins a group, so it goes alone), so the
// first instance is stopped while it waits in its second batch of 1,000,
// after the first has committed.
func TestImportResumesAfterItsInstanceStops(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, func(cfg *customers.Config) { cfg.Imports.Lease = time.Second })
	group := s.createGroup("resume-" + randomSuffix())
	sfx := randomSuffix()
	var b strings.Builder
	b.WriteString("email,groups\n")
	const n, blocked, firstBatch = 2500, 1500, 1000
	for i := 1; i <= n; i++ {
		g := ""
		if i == blocked {
			g = group.ID
		}
		fmt.Fprintf(&b, "r%d-%s@example.com,%s\n", i, sfx, g)
	}
	ctx := context.Background()
	lock, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `SELECT id FROM customer_groups WHERE id = $1 FOR UPDATE`, group.ID); err != nil {
		t.Fatal(err)
	}
	job := s.startImport("text/csv", "", b.String())
	stop := s.runImports()
	for deadline := time.Now().Add(30 * time.Second); s.count(`SELECT rows_done::int FROM import_jobs WHERE id = $1`, job.ID) < firstBatch; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first batch did not commit")
		}
	}
	time.Sleep(100 * time.Millisecond) // the third batch waits for the lock
	stop()
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.count(`SELECT rows_done::int FROM import_jobs WHERE id = $1`, job.ID); got != firstBatch {
		t.Fatalf("the stopped instance left rows_done %d, want %d", got, firstBatch)
	}
	s.runImports()
	done := s.waitImport(job.ID)
	if done.Status != "succeeded" || done.Rows.Created != n || done.Rows.Read != n || done.Rows.Failed != 0 {
		t.Fatalf("job %+v, want all %d created", done, n)
	}
	if c := s.count(`SELECT count(*) FROM customers WHERE email LIKE $1`, "%-"+sfx+"@example.com"); c != n {
		t.Errorf("%d customers, want %d", c, n)
	}
	if c := s.count(`SELECT count(*) FROM outbox WHERE nats_subject = $1`, events.Subject(events.CustomerCreated)); c != n {
		t.Errorf("%d customer.created, want %d", c, n)
	}
	if c := s.count(`SELECT count(*) FROM customers WHERE $1 = ANY(group_ids)`, group.ID); c != 1 {
		t.Errorf("%d customers in the group, want the blocked row's", c)
	}
}

// A customer imported with the password hash of the system it comes from
// logs in with the old password; a hash of no supported format fails its row.
func TestImportedPasswordHashLogsIn(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runImports()
	hash, err := bcrypt.GenerateFromPassword([]byte("the old password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	sfx := randomSuffix()
	file := fmt.Sprintf(`{"email":"old-%s@example.com","is_verified":true,"password_hash":%q}
{"email":"md5-%s@example.com","password_hash":"$1$salt$hash"}
`, sfx, hash, sfx)
	job := s.waitImport(s.startImport("application/x-ndjson", "", file).ID)
	errs := s.importErrors(job.ID)
	if job.Rows.Created != 1 || len(errs) != 1 || errs[0].Row != 2 || errs[0].Field != "password_hash" || errs[0].Code != "unsupported" {
		t.Fatalf("job %+v errors %+v, want row 2's password_hash unsupported", job, errs)
	}
	var got struct {
		HasAccount bool `json:"has_account"`
	}
	c, _ := s.customerByEmail("old-" + sfx + "@example.com")
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if !got.HasAccount {
		t.Error("the imported customer with a password has no account")
	}
	s.login("old-"+sfx+"@example.com", "the old password")
	s.public(http.MethodPost, "/v1/store/token", map[string]any{"email": "old-" + sfx + "@example.com", "password": "wrong password"}).
		expectStatus(t, http.StatusUnauthorized)
	if n := s.count(`SELECT count(*) FROM customers WHERE email = $1 AND password_hash LIKE '$argon2id$%'`, "old-"+sfx+"@example.com"); n != 1 {
		t.Error("the old hash was not replaced by argon2id at the first login")
	}
}

// An export is importable as it is: exported, imported into an empty
// database with mode=create, and exported again, it is the same file.
func TestExportImportExportRoundTrip(t *testing.T) {
	t.Parallel()
	from, to := newSystem(t), newSystem(t)
	to.runImports()
	exportCustomers(t, from)
	for _, c := range []struct{ query, contentType string }{
		{"format=ndjson&include=private_metadata", "application/x-ndjson"},
		{"format=csv&include=private_metadata,addresses", "text/csv"},
	} {
		first := export(t, from, c.query)
		first.expectStatus(t, http.StatusOK)
		job := to.waitImport(to.startImport(c.contentType, "", string(first.body)).ID)
		if job.Status != "succeeded" || job.Rows.Created != 3 {
			t.Fatalf("%s: import %+v, errors %+v", c.query, job, to.importErrors(job.ID))
		}
		again := export(t, to, c.query)
		if !bytes.Equal(first.body, again.body) {
			t.Errorf("%s: the export of the import differs:\n%s\nwant\n%s", c.query, again.body, first.body)
		}
		to.do(http.MethodPost, "/v1/customers/bulk-delete", map[string]any{"ids": ids(t, to)}, nil)
	}
	// With its addresses, an NDJSON export imports too; the addresses are
	// made anew (new ids), with their fields and default flags.
	withAddresses := export(t, from, "format=ndjson&include=addresses")
	job := to.waitImport(to.startImport("application/x-ndjson", "", string(withAddresses.body)).ID)
	if job.Status != "succeeded" || job.Rows.Created != 3 {
		t.Fatalf("ndjson with addresses: import %+v, errors %+v", job, to.importErrors(job.ID))
	}
	strip := func(body []byte) string {
		return regexp.MustCompile(`"(id|customer_id|created_at|updated_at|default_shipping_address_id|default_billing_address_id)":("[^"]*"|null),?`).
			ReplaceAllString(string(body), "")
	}
	if got, want := strip(export(t, to, "format=ndjson&include=addresses").body), strip(withAddresses.body); got != want {
		t.Errorf("addresses after the import:\n%s\nwant\n%s", got, want)
	}
}

// ids lists every customer's id.
func ids(t *testing.T, s *system) []string {
	t.Helper()
	var out []string
	for _, c := range listCustomers(t, s, "limit=100").Customers {
		out = append(out, c.ID)
	}
	return out
}

// In mode create, a row whose email or external reference a customer has,
// or an earlier row of the file has, fails; every other row is created, once.
func TestImportCreateRefusesTakenAndRepeatedEmails(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runImports()
	sfx := randomSuffix()
	s.createCustomer(map[string]any{"email": "taken-" + sfx + "@example.com", "external_reference": "ref-" + sfx})
	file := "email,external_reference\n" +
		"a-" + sfx + "@example.com,\n" +
		"taken-" + sfx + "@example.com,\n" +
		"A-" + sfx + "@EXAMPLE.com,\n" + // the same email, normalised
		"b-" + sfx + "@example.com,ref-" + sfx + "\n" +
		"c-" + sfx + "@example.com,new-" + sfx + "\n" +
		"d-" + sfx + "@example.com,new-" + sfx + "\n"
	job := s.waitImport(s.startImport("text/csv", "", file).ID)
	errs := s.importErrors(job.ID)
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprintf("%d %s %s", e.Row, e.Field, e.Code))
	}
	want := []string{"2 email unique", "3 email unique", "4 external_reference unique", "6 external_reference unique"}
	if job.Rows.Created != 2 || !slices.Equal(got, want) {
		t.Errorf("job %+v errors %v, want 2 created and %v", job, got, want)
	}
	if n := s.count(`SELECT count(*) FROM customers WHERE email LIKE $1`, "%-"+sfx+"@example.com"); n != 3 {
		t.Errorf("%d customers, want the taken one and 2 created", n)
	}
	if n := s.count(`SELECT count(*) FROM outbox WHERE nats_subject = $1`, events.Subject(events.CustomerCreated)); n != 3 {
		t.Errorf("%d customer.created, want 3", n)
	}
}

// A row repeating the email or external reference of an earlier row is
// refused, the later of the two, whichever is written alone (a row joining a
// group) or with others, in the same batch or a batch later (1,000 rows a
// batch in mode create), and in a dry run too, where the earlier row is
// never committed; nothing else of the file is.
func TestImportRefusesRepeatsAcrossBatches(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runImports()
	var group struct{ ID string }
	request(t, s, http.MethodPost, "/v1/customer-groups", map[string]any{"name": "g-" + randomSuffix()}, nil).decode(t, &group)
	sfx := randomSuffix()
	const n = 2_500
	var file strings.Builder
	file.WriteString("email,external_reference,groups\n")
	for i := 1; i <= n; i++ {
		email, ref, groups := fmt.Sprintf("r%d-%s@example.com", i, sfx), fmt.Sprintf("ref%d-%s", i, sfx), ""
		switch i {
		case 7: // goes alone
			groups = group.ID
		case 8, 2450: // row 7's email: the same batch, a later one
			email = fmt.Sprintf("r7-%s@example.com", sfx)
		case 1001: // row 1's email, the next batch
			email = fmt.Sprintf("r1-%s@example.com", sfx)
		case 2400: // row 1500's reference, the next batch
			ref = fmt.Sprintf("ref1500-%s", sfx)
		}
		fmt.Fprintf(&file, "%s,%s,%s\n", email, ref, groups)
	}
	want := []string{"8 email unique", "1001 email unique", "2400 external_reference unique", "2450 email unique"}
	for _, query := range []string{"?dry_run=true", ""} {
		job := s.waitImport(s.startImport("text/csv", query, file.String()).ID)
		var got []string
		for _, e := range s.importErrors(job.ID) {
			got = append(got, fmt.Sprintf("%d %s %s", e.Row, e.Field, e.Code))
		}
		if job.Status != "succeeded" || job.Rows.Created != n-4 || job.Rows.Failed != 4 || !slices.Equal(got, want) {
			t.Errorf("import%s: job %+v errors %v, want %d created and %v", query, job, got, n-4, want)
		}
		wantStored := map[string]int{"?dry_run=true": 0, "": n - 4}[query]
		if got := s.count(`SELECT count(*) FROM customers WHERE email LIKE $1`, "%-"+sfx+"@example.com"); got != wantStored {
			t.Errorf("after import%s: %d customers stored, want %d", query, got, wantStored)
		}
		if got := s.count(`SELECT count(*) FROM outbox WHERE nats_subject = $1`, events.Subject(events.CustomerCreated)); got != wantStored {
			t.Errorf("after import%s: %d customer.created, want %d", query, got, wantStored)
		}
	}
	if got := s.count(`SELECT count(*) FROM customers WHERE email = $1 AND $2 = ANY(group_ids)`, fmt.Sprintf("r7-%s@example.com", sfx), group.ID); got != 1 {
		t.Errorf("row 7's customer: %d in the group with its email, want 1 (the earlier row wins)", got)
	}
}

// With on_error=reject_all a file of many batches is written whole, with an
// event for each customer, or not at all: here a row that joins a group
// (written alone) and a later row with its email (written with others), a
// repeat the checking pass finds though it rolls each batch back.
func TestImportRejectAllWritesEveryBatchOrNothing(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runImports()
	var group struct{ ID string }
	request(t, s, http.MethodPost, "/v1/customer-groups", map[string]any{"name": "g-" + randomSuffix()}, nil).decode(t, &group)
	sfx := randomSuffix()
	const n = 2_500
	file := func(repeat bool) string {
		var b strings.Builder
		b.WriteString("email,groups\n")
		for i := 1; i <= n; i++ {
			email, groups := fmt.Sprintf("w%d-%s@example.com", i, sfx), ""
			switch {
			case i == 5:
				groups = group.ID
			case i == 1500 && repeat:
				email = fmt.Sprintf("w5-%s@example.com", sfx)
			}
			fmt.Fprintf(&b, "%s,%s\n", email, groups)
		}
		return b.String()
	}
	stored := func() int {
		return s.count(`SELECT count(*) FROM customers WHERE email LIKE $1`, "%-"+sfx+"@example.com")
	}

	job := s.waitImport(s.startImport("text/csv", "?on_error=reject_all", file(true)).ID)
	errs := s.importErrors(job.ID)
	if job.Status != "failed" || !strings.Contains(job.Error, "nothing was written") || len(errs) != 1 || errs[0].Row != 1500 || errs[0].Field != "email" {
		t.Errorf("job %+v errors %+v, want failed at row 1500's email, nothing written", job, errs)
	}
	if got := stored(); got != 0 {
		t.Errorf("%d customers stored by the refused file, want none", got)
	}
	if got := s.count(`SELECT count(*) FROM outbox WHERE nats_subject LIKE 'customerbus.events.customer.%'`); got != 0 {
		t.Errorf("%d customer events of the refused file, want none", got)
	}

	job = s.waitImport(s.startImport("text/csv", "?on_error=reject_all", file(false)).ID)
	if job.Status != "succeeded" || job.Rows.Created != n {
		t.Errorf("job %+v, want %d created", job, n)
	}
	if got := stored(); got != n {
		t.Errorf("%d customers stored, want %d", got, n)
	}
	if got := s.count(`SELECT count(*) FROM outbox WHERE nats_subject = $1`, events.Subject(events.CustomerCreated)); got != n {
		t.Errorf("%d customer.created, want %d", got, n)
	}
	if got := s.count(`SELECT count(*) FROM customers WHERE $1 = ANY(group_ids)`, group.ID); got != 1 {
		t.Errorf("%d members of the group, want row 5's customer", got)
	}
}
