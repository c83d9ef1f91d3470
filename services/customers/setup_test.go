package customers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/services/customers"
	"github.com/customerbus/customerbus/services/relay"
)

// system is the command service and a relay on a fresh database and a NATS
// server of the test's own.
type system struct {
	t      *testing.T
	pool   *pgxpool.Pool
	nats   *natstest.Server
	js     jetstream.JetStream
	api    *httptest.Server
	routes []customers.Route
	token  string // holds every permission
	svc    *customers.Service
}

func newSystem(t *testing.T) *system { return newSystemWith(t, nil) }

// retainOnDelete makes deletions keep the deleted customers' earlier events
// on the stream (DELETE_RETAINS_DATA), for tests that read them after.
func retainOnDelete(c *customers.Config) { c.Privacy.RetainOnDelete = true }

// newSystemWith is newSystem with the service's configuration tuned.
func newSystemWith(t *testing.T, tune func(*customers.Config)) *system {
	t.Helper()
	pool, _ := dbtest.New(t)
	ns := natstest.New(t)
	js, err := jetstream.New(ns.Connect())
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	cfg := customers.Config{MaxBodyBytes: 64 << 10}
	// The console's emails link to the shop of shopURL (its env defaults
	// are not read here).
	cfg.Console.StorefrontURL, cfg.Console.Channel = "https://shop.example.com/account", "web"
	if tune != nil {
		tune(&cfg)
	}
	svc := customers.New(pool, log, prometheus.NewRegistry(), cfg)
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	rl := relay.New(pool, js, log, prometheus.NewRegistry(), relay.Config{PollInterval: 200 * time.Millisecond, PublishTimeout: time.Second, PublicBaseURL: api.URL})
	go func() { done <- rl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})

	token, err := customers.CreateToken(context.Background(), pool, "test", false, customers.Permissions)
	if err != nil {
		t.Fatal(err)
	}
	return &system{t: t, pool: pool, nats: ns, js: js, api: api, routes: svc.Routes(), token: token, svc: svc}
}

// do sends a request with the system's token and decodes the JSON answer into
// out (when out is not nil). It returns the response with its body read.
func (s *system) do(method, path string, body any, out any) *http.Response {
	s.t.Helper()
	return s.send(method, path, body, out, map[string]string{"Authorization": "Bearer " + s.token})
}

// doWith is do with another token ("" sends none).
func (s *system) doWith(token, method, path string, body any, out any) *http.Response {
	s.t.Helper()
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return s.send(method, path, body, out, h)
}

// file is a request body of its own media type (an import's CSV, say).
type file struct{ contentType, data string }

// send makes the request: a string or []byte body is sent as is, anything
// else as JSON; headers override the JSON content type.
func (s *system) send(method, path string, body any, out any, headers map[string]string) *http.Response {
	s.t.Helper()
	var r io.Reader
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case file:
		r, contentType = strings.NewReader(b.data), b.contentType
	case string:
		r = bytes.NewBufferString(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		r = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, s.api.URL+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	// Every call of every test checks the service against its OpenAPI document.
	s.checkOpenAPI(req, resp, raw)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	return resp
}

// customerJSON is the API's customer resource as a client sees it.
type customerJSON struct {
	ID                string            `json:"id"`
	Email             string            `json:"email"`
	FirstName         string            `json:"first_name"`
	LastName          string            `json:"last_name"`
	CompanyName       string            `json:"company_name"`
	Phone             *string           `json:"phone"`
	Note              string            `json:"note"`
	IsActive          bool              `json:"is_active"`
	LanguageCode      string            `json:"language_code"`
	ExternalReference *string           `json:"external_reference"`
	Metadata          map[string]string `json:"metadata"`
	PrivateMetadata   map[string]string `json:"private_metadata"`
	HasAccount        bool              `json:"has_account"`
	IsVerified        bool              `json:"is_verified"`
	IsAnonymized      bool              `json:"is_anonymized"`
	DefaultShipping   *string           `json:"default_shipping_address_id"`
	DefaultBilling    *string           `json:"default_billing_address_id"`
	Groups            []string          `json:"groups"`
	Version           int64             `json:"version"`
	CreatedAt         time.Time         `json:"created_at"`
	UpdatedAt         time.Time         `json:"updated_at"`
}

// problemJSON is an error answer.
type problemJSON struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Errors []struct {
		Field   string `json:"field"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (s *system) createCustomer(body map[string]any) customerJSON {
	s.t.Helper()
	var c customerJSON
	resp := s.do(http.MethodPost, "/v1/customers", body, &c)
	if resp.StatusCode != http.StatusCreated {
		raw, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("create customer: status %d: %s", resp.StatusCode, raw)
	}
	return c
}

// expectStored reads the customer a write answered back through two other
// readers, a fresh GET and its row in the database, and fails unless both
// hold what the answer says: an answer alone proves nothing was stored.
func (s *system) expectStored(answer customerJSON) {
	s.t.Helper()
	var got customerJSON
	if r := s.do(http.MethodGet, "/v1/customers/"+answer.ID, nil, &got); r.StatusCode != http.StatusOK {
		s.t.Fatalf("GET the customer after the write: status %d", r.StatusCode)
	}
	if !reflect.DeepEqual(got, answer) {
		s.t.Errorf("GET after the write reads\n%+v\nthe write answered\n%+v", got, answer)
	}
	var md, pmd []byte
	var updatedAt time.Time
	var version int64
	if err := s.pool.QueryRow(context.Background(),
		`SELECT metadata, private_metadata, updated_at, version FROM customers WHERE id = $1`, answer.ID,
	).Scan(&md, &pmd, &updatedAt, &version); err != nil {
		s.t.Fatalf("read the customer's row: %v", err)
	}
	var row customerJSON
	if err := json.Unmarshal(md, &row.Metadata); err != nil {
		s.t.Fatal(err)
	}
	if err := json.Unmarshal(pmd, &row.PrivateMetadata); err != nil {
		s.t.Fatal(err)
	}
	if !maps.Equal(row.Metadata, answer.Metadata) || !maps.Equal(row.PrivateMetadata, answer.PrivateMetadata) ||
		!updatedAt.Equal(answer.UpdatedAt) || version != answer.Version {
		s.t.Errorf("the row holds metadata %v private_metadata %v updated_at %v version %d; the write answered %v %v %v %d",
			row.Metadata, row.PrivateMetadata, updatedAt, version,
			answer.Metadata, answer.PrivateMetadata, answer.UpdatedAt, answer.Version)
	}
}

// count runs a counting query against the test's database.
func (s *system) count(sql string, args ...any) int {
	s.t.Helper()
	return countRows(s.t, s.pool, sql, args...)
}

// slowCreates makes the insert of a customer whose email starts with
// "slow-" take d, as a slow database would.
func (s *system) slowCreates(d time.Duration) {
	s.t.Helper()
	if _, err := s.pool.Exec(context.Background(), fmt.Sprintf(`
		CREATE FUNCTION slow_creates() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.email LIKE 'slow-%%' THEN PERFORM pg_sleep(%g); END IF; RETURN NEW; END $$;
		CREATE TRIGGER slow_creates BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION slow_creates();`, d.Seconds())); err != nil {
		s.t.Fatal(err)
	}
}

// groupJSON is the API's customer group resource.
type groupJSON struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Description   string    `json:"description"`
	CustomerCount int64     `json:"customer_count"`
	Version       int64     `json:"version"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func (s *system) createGroup(name string) groupJSON {
	s.t.Helper()
	var g groupJSON
	resp := s.do(http.MethodPost, "/v1/customer-groups", map[string]any{"name": name}, &g)
	if resp.StatusCode != http.StatusCreated {
		raw, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("create group: status %d: %s", resp.StatusCode, raw)
	}
	return g
}

// deref shows what a pointer points to, or nil, in a failure message.
func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// secondInstance is another command service on s's database (as a second
// replica behind a load balancer), with s's token and NATS server.
func (s *system) secondInstance() *system {
	s.t.Helper()
	cfg := customers.Config{MaxBodyBytes: 64 << 10}
	svc := customers.New(s.pool, zaptest.NewLogger(s.t), prometheus.NewRegistry(), cfg)
	api := httptest.NewServer(svc.Handler())
	s.t.Cleanup(api.Close)
	other := *s
	other.api, other.svc, other.routes = api, svc, svc.Routes()
	return &other
}
