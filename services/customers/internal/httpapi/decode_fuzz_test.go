package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/merge"
	"github.com/customerbus/customerbus/services/customers/internal/order"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
	"github.com/customerbus/customerbus/services/customers/internal/webhook"
)

// bodies are the request bodies the routes decode, one of each kind.
var bodies = []any{
	customer.CreateInput{}, customer.UpdateInput{}, customer.AddressInput{}, customer.MetadataInput{},
	customer.GroupInput{}, customer.MembersInput{}, customer.BulkUpdateInput{}, customer.ConsentInput{},
	customer.RegisterInput{}, order.OrderInput{}, order.TransferInput{}, merge.Input{}, webhook.Input{},
}

// FuzzDecodeJSON: whatever the body and its media type, decodeJSON does
// not panic, and refuses with a problem the client can act on: a 4xx with
// field errors, never a 500.
func FuzzDecodeJSON(f *testing.F) {
	for i, seed := range []string{
		`{"email":"ann@example.com","addresses":[{"country":"DE"}],"metadata":{"k":"v"}}`,
		`{"phone":null,"external_reference":"ERP-1","metadata":{"k":"v"}}`,
		`{"first_name":"Ann","phone":7,"is_default_shipping":"yes"}`,
		`{"metadata":{"a":1}}`,
		`{"name":"VIP","extra":true}`,
		`{"add":["x"]} {"remove":[]}`,
		`{"ids":[1],"is_active":false}`,
		`{"state":"subscribed"}`,
		`{"email":"a@b.co","password":"\ud800 lone surrogate"}`,
		`{"email":"a@b.co","EMAIL":"c@d.co"}`,
		`{"id":"0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b","total":12.5,"placed_at":"2025-13-01T00:00:00Z"}`,
		`{"customer_id":`,
		`{"source_id":"x","override":{"email":null}}`,
		`[]`,
	} {
		f.Add("application/json", []byte(seed), uint8(i))
	}
	f.Add("application/merge-patch+json; charset=utf-8", []byte(`{"first_name":"Ann"}`), uint8(1))
	f.Add("text/csv", []byte("email\n"), uint8(0))
	f.Add("", []byte("{\"email\":\"\xff\"}"), uint8(0))
	f.Add("application/json; charset=\"", []byte(""), uint8(0))
	f.Add("application/json", []byte(`{"note":"`+strings.Repeat("n", 2000)+`"}`), uint8(0))
	f.Fuzz(func(t *testing.T, contentType string, body []byte, kind uint8) {
		r := httptest.NewRequest(http.MethodPost, "/v1/customers", bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		dst := reflect.New(reflect.TypeOf(bodies[int(kind)%len(bodies)])).Interface()
		err := decodeJSON(httptest.NewRecorder(), r, 1<<10, dst)
		if err == nil {
			return
		}
		p := problem.For(err)
		switch p.Status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("%T: %v answers %d", dst, err, p.Status)
		}
		if len(p.Errors) == 0 || !strings.HasPrefix(p.Type, "https://") {
			t.Fatalf("%T: %v answers a problem without a type or errors: %+v", dst, err, p)
		}
		for _, e := range p.Errors {
			if e.Code == "" || e.Message == "" {
				t.Fatalf("%T: %v answers a field error without a code or a message: %+v", dst, err, e)
			}
		}
	})
}
