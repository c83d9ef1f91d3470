package httpapi

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// lineEncoder appends the JSON of an export's values to a reused buffer,
// byte for byte as json.Marshal gives them (HTML characters escaped, map keys
// sorted, null for a nil pointer), without its reflection and allocations:
// an export writes a million lines. What it cannot write simply (a string
// that needs escaping, a time json.Marshal refuses) goes through json.Marshal.
type lineEncoder struct {
	b    []byte
	keys []string // reused to sort a map's keys
	err  error    // the first failure; the line is not written
}

// key starts the value of key: a comma unless first, the quoted key, a colon.
func (e *lineEncoder) key(name string) {
	if e.b[len(e.b)-1] != '{' {
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
}

// marshal appends v as json.Marshal encodes it.
func (e *lineEncoder) marshal(v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		if e.err == nil {
			e.err = err
		}
		return
	}
	e.b = append(e.b, raw...)
}

// string appends s quoted. Printable ASCII other than " \ < > & and valid
// UTF-8 other than U+2028 and U+2029 go as they are, as json.Marshal leaves
// them; a string with anything else is json.Marshal's to escape.
func (e *lineEncoder) string(s string) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				e.marshal(s)
				return
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			e.marshal(s)
			return
		}
		i += size
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, s...)
	e.b = append(e.b, '"')
}

func (e *lineEncoder) stringPtr(s *string) {
	if s == nil {
		e.b = append(e.b, "null"...)
		return
	}
	e.string(*s)
}

func (e *lineEncoder) bool(v bool) {
	e.b = strconv.AppendBool(e.b, v)
}

func (e *lineEncoder) int(v int64) {
	e.b = strconv.AppendInt(e.b, v, 10)
}

const hexDigits = "0123456789abcdef"

// uuid appends id quoted, in its canonical lower-case form.
func (e *lineEncoder) uuid(id uuid.UUID) {
	e.b = append(e.b, '"')
	for i, x := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			e.b = append(e.b, '-')
		}
		e.b = append(e.b, hexDigits[x>>4], hexDigits[x&0x0f])
	}
	e.b = append(e.b, '"')
}

func (e *lineEncoder) uuidPtr(id *uuid.UUID) {
	if id == nil {
		e.b = append(e.b, "null"...)
		return
	}
	e.uuid(*id)
}

// uuids appends the ids as an array; nil is [] as the API gives it.
func (e *lineEncoder) uuids(ids []uuid.UUID) {
	e.b = append(e.b, '[')
	for i, id := range ids {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.uuid(id)
	}
	e.b = append(e.b, ']')
}

// time appends t as time.Time's MarshalJSON does (RFC 3339 with the
// nanoseconds it has, in its own zone); a year it refuses goes to
// json.Marshal for its error.
func (e *lineEncoder) time(t time.Time) {
	if y := t.Year(); y < 0 || y > 9999 {
		e.marshal(t)
		return
	}
	e.b = append(e.b, '"')
	e.b = t.AppendFormat(e.b, time.RFC3339Nano)
	e.b = append(e.b, '"')
}

func (e *lineEncoder) timePtr(t *time.Time) {
	if t == nil {
		e.b = append(e.b, "null"...)
		return
	}
	e.time(*t)
}

// strings appends m as an object, its keys sorted; nil is {} as the API
// gives it.
func (e *lineEncoder) strings(m map[string]string) {
	if len(m) == 0 {
		e.b = append(e.b, '{', '}')
		return
	}
	keys := e.keys[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.b = append(e.b, '{')
	for i, k := range keys {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.string(k)
		e.b = append(e.b, ':')
		e.string(m[k])
	}
	e.b = append(e.b, '}')
	clear(keys)
	e.keys = keys[:0]
}

// addresses appends the customer's addresses as events.Address encodes
// them (GET /v1/customers/{id}/addresses), in its field order.
func (e *lineEncoder) addresses(c *customer.Customer, addresses []customer.Address) {
	e.b = append(e.b, '[')
	for i := range addresses {
		a := &addresses[i]
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.b = append(e.b, '{')
		e.key("id")
		e.uuid(a.ID)
		e.key("customer_id")
		e.uuid(a.CustomerID)
		e.key("first_name")
		e.string(a.FirstName)
		e.key("last_name")
		e.string(a.LastName)
		e.key("company_name")
		e.string(a.CompanyName)
		e.key("street_address_1")
		e.string(a.StreetAddress1)
		e.key("street_address_2")
		e.string(a.StreetAddress2)
		e.key("city")
		e.string(a.City)
		e.key("city_area")
		e.string(a.CityArea)
		e.key("postal_code")
		e.string(a.PostalCode)
		e.key("country")
		e.string(a.Country)
		e.key("country_area")
		e.string(a.CountryArea)
		e.key("phone")
		e.stringPtr(a.Phone)
		e.key("is_default_shipping")
		e.bool(c.DefaultShippingAddressID != nil && *c.DefaultShippingAddressID == a.ID)
		e.key("is_default_billing")
		e.bool(c.DefaultBillingAddressID != nil && *c.DefaultBillingAddressID == a.ID)
		e.key("created_at")
		e.time(a.CreatedAt)
		e.key("updated_at")
		e.time(a.UpdatedAt)
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, ']')
}
