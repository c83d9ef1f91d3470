package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// marshalLine is an NDJSON line as json.Marshal writes it, one value at a
// time: what lineEncoder must give byte for byte.
func marshalLine(t *testing.T, o exportOptions, c customer.Customer, addresses []customer.Address) []byte {
	t.Helper()
	staff := c.Staff()
	v := staff.Customer
	values := map[string]any{
		"id": v.ID, "email": v.Email, "first_name": v.FirstName, "last_name": v.LastName,
		"company_name": v.CompanyName, "phone": v.Phone, "note": v.Note, "is_active": v.IsActive,
		"language_code": v.LanguageCode, "external_reference": v.ExternalReference, "is_verified": v.IsVerified,
		"created_at": v.CreatedAt, "updated_at": v.UpdatedAt, "version": v.Version, "has_account": v.HasAccount,
		"number_of_orders": v.NumberOfOrders, "last_order_at": v.LastOrderAt, "groups": v.Groups, "is_anonymized": v.IsAnonymized,
	}
	var b bytes.Buffer
	b.WriteByte('{')
	add := func(key string, value any) {
		raw, err := json.Marshal(value)
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(raw)
	}
	for _, f := range o.fields {
		value, ok := values[f.name]
		if !ok {
			t.Fatalf("no value for field %s", f.name)
		}
		add(f.name, value)
	}
	if o.metadata {
		add(fieldMetadata, v.Metadata)
	}
	if o.private {
		add(fieldPrivateMetadata, staff.PrivateMetadata)
	}
	if o.addresses {
		out := make([]any, len(addresses))
		for i, a := range addresses {
			out[i] = a.Public(c)
		}
		add(fieldAddresses, out)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func TestLineEncoderWritesAsJSONMarshal(t *testing.T) {
	at := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.UTC)
	whole := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	phone, ref := "+4930123456", `ref "quoted" <b>&amp;</b>`
	shipping, billing := uuid.New(), uuid.New()
	tricky := []string{
		"", "plain", "München Straße ÄÖÜ", "ulica Długa", "日本語", "emoji 🙂",
		"quote \" backslash \\ slash /", "<script>alert(1)</script> & co",
		"tab\tnew\nline\rcr\bback\fform\x00nul\x1funit", "line\u2028para\u2029sep",
		"bad utf-8 \xff\xfe end", "trunc \xe2\x82", "\u007f del",
	}
	all := exportOptions{fields: exportFields, metadata: true, private: true, addresses: true}
	for i, s := range tricky {
		c := customer.Customer{
			ID: uuid.New(), Email: s + "@example.com", FirstName: s, LastName: tricky[(i+1)%len(tricky)],
			CompanyName: s, Note: s, LanguageCode: "de", IsActive: i%2 == 0, IsVerified: i%3 == 0, HasAccount: i%2 == 1,
			Metadata: map[string]string{s: s, "b": "2", "a": "1", "ä": "x"}, Version: int64(i) << 40,
			NumberOfOrders: i * 1000, CreatedAt: at, UpdatedAt: whole,
		}
		if i%2 == 0 {
			c.Phone, c.ExternalReference, c.LastOrderAt = &phone, &ref, &whole
			c.DefaultShippingAddressID, c.DefaultBillingAddressID = &shipping, &billing
			c.Groups = []uuid.UUID{uuid.New(), uuid.New()}
			c.PrivateMetadata = map[string]string{"k": s}
		}
		if i%4 == 0 {
			c.Metadata, c.CreatedAt = nil, at.In(time.FixedZone("x", 3600))
		}
		var addresses []customer.Address
		if i%3 != 2 {
			addresses = []customer.Address{
				{ID: shipping, CustomerID: c.ID, FirstName: s, Country: "DE", City: "München", Phone: &phone, CreatedAt: at, UpdatedAt: whole},
				{ID: uuid.New(), CustomerID: c.ID, StreetAddress1: s, StreetAddress2: "Apt 4", PostalCode: "10115", CreatedAt: whole, UpdatedAt: at},
			}
		} else {
			addresses = []customer.Address{}
		}
		for _, o := range []exportOptions{all, {fields: exportFields[:defaultFields], metadata: true}, {fields: exportFields[3:5], addresses: true}} {
			var out bytes.Buffer
			w := &exportWriter{opts: o, buf: bufio.NewWriter(&out)}
			if err := w.jsonLine(&c, addresses); err != nil {
				t.Fatal(err)
			}
			if err := w.buf.Flush(); err != nil {
				t.Fatal(err)
			}
			if want := marshalLine(t, o, c, addresses); !bytes.Equal(out.Bytes(), want) {
				t.Errorf("case %d (%q):\n got %s\nwant %s", i, s, out.Bytes(), want)
			}
		}
	}
}
