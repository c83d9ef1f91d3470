package customer

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// List limits.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	// A list counts at most this many matches unless asked for more (see
	// CountLimit): enough for "1,000+" in a staff screen, and cheap to count.
	DefaultCountLimit = 1_000
	MaxCountLimit     = 10_000_000
)

// Orders the list supports; the default is newest first.
var Orders = []string{"-created_at", "created_at", "email", "-email", "last_name", "-last_name", "number_of_orders", "-number_of_orders"}

// Filter narrows the customer list; nil fields do not filter.
type Filter struct {
	Email         *string
	IsActive      *bool
	HasAccount    *bool
	IsVerified    *bool
	CreatedAfter  *time.Time
	CreatedBefore *time.Time
	UpdatedAfter  *time.Time
	// Metadata lists public metadata pairs a customer must all have.
	Metadata map[string]string
	// Attributes are filters on indexed attributes a customer must all pass.
	Attributes []AttributeFilter
	GroupID    *uuid.UUID
	// Order statistics: bounds on the number of orders (inclusive), and a
	// window in which the customer placed an order.
	NumberOfOrdersMin  *int
	NumberOfOrdersMax  *int
	PlacedOrdersAfter  *time.Time
	PlacedOrdersBefore *time.Time
	// OrderedBeforeCreated keeps only customers whose first order predates
	// them; not a filter of the API, see Service.listRows.
	OrderedBeforeCreated bool
	// Marketing consent states to match, by channel.
	EmailConsent *string
	SMSConsent   *string
	// Search is a substring matched against email, names, company and phone,
	// ignoring case and accents (the store folds it as it folds them).
	Search *string
}

// ListQuery is what the store needs to read one page.
type ListQuery struct {
	Filter
	Order      string
	Limit      int // rows to read; one more than the page size, to see if more follow
	After      *Cursor
	CountLimit int
}

// Cursor marks the last row of a page in the page's order (keyset pagination).
type Cursor struct {
	Order string    `json:"o"`
	ID    uuid.UUID `json:"id"`
	Time  time.Time `json:"t,omitzero"`
	Text  string    `json:"s,omitempty"`
	Int   int       `json:"n,omitempty"`
}

func (c Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ListInput is a list request as the API receives it.
type ListInput struct {
	Query         string
	Email         string
	IsActive      *bool
	HasAccount    *bool
	IsVerified    *bool
	CreatedAfter  *time.Time
	CreatedBefore *time.Time
	UpdatedAfter  *time.Time
	Metadata      map[string]string
	// Attributes are filters on indexed custom attributes.
	Attributes []AttributeCondition
	GroupID    *uuid.UUID
	// Order statistics filters.
	NumberOfOrdersMin  *int
	NumberOfOrdersMax  *int
	PlacedOrdersAfter  *time.Time
	PlacedOrdersBefore *time.Time
	// Marketing consent states (subscribed, unsubscribed, pending,
	// not_subscribed); empty matches any.
	EmailMarketingConsent string
	SMSMarketingConsent   string
	Order                 string
	Limit                 int
	Cursor                string
	WithCount             bool
	// CountLimit caps the count: when more customers match, the page says
	// "at least CountLimit". Zero means DefaultCountLimit.
	CountLimit int
}

// Page is one page of customers.
type Page struct {
	Customers  []Customer
	NextCursor string // empty on the last page
	Count      *int64 // customers matching the filters, when asked for
	// CountExact is false when more than Count customers match: Count is
	// then the count limit.
	CountExact bool
}

func (in ListInput) validate() (ListQuery, error) {
	var r rules
	q := ListQuery{Order: in.Order, Limit: in.Limit}
	if q.Order == "" {
		q.Order = Orders[0]
	}
	if !slices.Contains(Orders, q.Order) {
		r.fail("order", CodeInvalid, "order must be one of %s", strings.Join(Orders, ", "))
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	if q.Limit < 1 || q.Limit > MaxLimit {
		r.fail("limit", CodeInvalid, "limit must be between 1 and %d", MaxLimit)
	}
	q.CountLimit = cmp.Or(in.CountLimit, DefaultCountLimit)
	if q.CountLimit < 1 || q.CountLimit > MaxCountLimit {
		r.fail("count_limit", CodeInvalid, "count_limit must be between 1 and %d", MaxCountLimit)
	}
	for field, v := range map[string]string{"q": in.Query, "email": in.Email} {
		if !Storable(v) {
			r.fail(field, CodeInvalid, "%s must be valid UTF-8 without NUL characters", field)
		}
	}
	if in.Email != "" {
		e := strings.ToLower(strings.TrimSpace(in.Email))
		q.Email = &e
	}
	q.IsActive, q.HasAccount, q.IsVerified = in.IsActive, in.HasAccount, in.IsVerified
	q.CreatedAfter, q.CreatedBefore, q.UpdatedAfter = in.CreatedAfter, in.CreatedBefore, in.UpdatedAfter
	q.GroupID = in.GroupID
	for field, n := range map[string]*int{"number_of_orders_min": in.NumberOfOrdersMin, "number_of_orders_max": in.NumberOfOrdersMax} {
		if n != nil && *n < 0 {
			r.fail(field, CodeInvalid, "%s must be 0 or more", field)
		}
	}
	q.NumberOfOrdersMin, q.NumberOfOrdersMax = in.NumberOfOrdersMin, in.NumberOfOrdersMax
	q.PlacedOrdersAfter, q.PlacedOrdersBefore = in.PlacedOrdersAfter, in.PlacedOrdersBefore
	if len(in.Metadata) > 0 {
		q.Metadata = r.metadata("metadata", in.Metadata)
	}
	for field, f := range map[string]struct {
		in  string
		dst **string
	}{"email_marketing_consent": {in.EmailMarketingConsent, &q.EmailConsent}, "sms_marketing_consent": {in.SMSMarketingConsent, &q.SMSConsent}} {
		switch f.in {
		case "":
		case ConsentSubscribed, ConsentUnsubscribed, ConsentPending, ConsentNotSubscribed:
			state := f.in
			*f.dst = &state
		default:
			r.fail(field, CodeInvalid, "%s must be subscribed, unsubscribed, pending or not_subscribed", field)
		}
	}
	if s := strings.TrimSpace(in.Query); s != "" {
		if utf8.RuneCountInString(s) > MaxNameLength {
			r.fail("q", CodeTooLong, "q must be at most %d characters", MaxNameLength)
		}
		q.Search = &s
	}
	if in.Cursor != "" {
		c, ok := decodeCursor(in.Cursor)
		if !ok || c.Order != q.Order {
			r.fail("cursor", CodeInvalid, "cursor is not valid for this order; start again without it")
		}
		q.After = &c
	}
	return q, r.err()
}

// DecodeCursor reads a cursor of another package's page.
func DecodeCursor(s string) (Cursor, bool) { return decodeCursor(s) }

func decodeCursor(s string) (Cursor, bool) {
	var c Cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || c.ID == uuid.Nil {
		return Cursor{}, false
	}
	return c, true
}

// escapeLike makes the user's text match literally inside an ILIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func cursorAfter(order string, c Customer) Cursor {
	cur := Cursor{Order: order, ID: c.ID}
	switch strings.TrimPrefix(order, "-") {
	case "email":
		cur.Text = c.Email
	case "last_name":
		cur.Text = c.LastName
	case "number_of_orders":
		cur.Int = c.NumberOfOrders
	default:
		cur.Time = c.CreatedAt
	}
	return cur
}
