// Package listquery reads the query string of the customers list, which
// the API and the console share: the console's search box is the API's q,
// its filters the API's filters.
package listquery

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

var listParams = map[string]bool{
	"q": true, "email": true, "is_active": true, "has_account": true, "is_verified": true,
	"created_after": true, "created_before": true, "updated_after": true,
	"order": true, "limit": true, "cursor": true, "count": true, "count_limit": true, "group_id": true,
	"number_of_orders_min": true, "number_of_orders_max": true, "placed_orders_after": true, "placed_orders_before": true,
	"email_marketing_consent": true, "sms_marketing_consent": true,
}

// Customers reads the filters, sort and page of a customers list from
// the query string.
func Customers(qs url.Values) (customer.ListInput, error) {
	in := customer.ListInput{
		Query: qs.Get("q"), Email: qs.Get("email"), Order: qs.Get("order"),
		Cursor: qs.Get("cursor"), WithCount: true,
	}
	for k := range qs {
		if key, ok := metadataParam(k); ok {
			if in.Metadata == nil {
				in.Metadata = map[string]string{}
			}
			in.Metadata[key] = qs.Get(k)
		} else if cond, ok := attributeParam(k); ok {
			cond.Value = qs.Get(k)
			in.Attributes = append(in.Attributes, cond)
		} else if !listParams[k] {
			return in, problem.Input(http.StatusBadRequest, k, problem.CodeUnknownField, "%s is not a known query parameter", k)
		}
	}
	// The first attribute filters take the query's slots, the others are
	// tested on each customer (see ListCustomersByAttribute): the same ones
	// whatever order the parameters came in.
	slices.SortFunc(in.Attributes, func(a, b customer.AttributeCondition) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.Op, b.Op))
	})
	limit, err := Limit(qs)
	if err != nil {
		return in, err
	}
	in.Limit = limit
	if v := qs.Get("count_limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return in, problem.Input(http.StatusBadRequest, "count_limit", customer.CodeInvalid, "count_limit must be a positive integer")
		}
		in.CountLimit = n
	}
	withCount := &in.WithCount
	for name, dst := range map[string]**bool{"is_active": &in.IsActive, "has_account": &in.HasAccount, "is_verified": &in.IsVerified, "count": nil} {
		v := qs.Get(name)
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return in, problem.Input(http.StatusBadRequest, name, customer.CodeInvalid, "%s must be true or false", name)
		}
		if dst == nil {
			*withCount = b
		} else {
			*dst = &b
		}
	}
	in.EmailMarketingConsent, in.SMSMarketingConsent = qs.Get("email_marketing_consent"), qs.Get("sms_marketing_consent")
	if v := qs.Get("group_id"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			return in, problem.Input(http.StatusBadRequest, "group_id", customer.CodeInvalid, "group_id must be a UUID")
		}
		in.GroupID = &id
	}
	for name, dst := range map[string]**int{"number_of_orders_min": &in.NumberOfOrdersMin, "number_of_orders_max": &in.NumberOfOrdersMax} {
		v := qs.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return in, problem.Input(http.StatusBadRequest, name, customer.CodeInvalid, "%s must be an integer of 0 or more", name)
		}
		*dst = &n
	}
	for name, dst := range map[string]**time.Time{
		"created_after": &in.CreatedAfter, "created_before": &in.CreatedBefore, "updated_after": &in.UpdatedAfter,
		"placed_orders_after": &in.PlacedOrdersAfter, "placed_orders_before": &in.PlacedOrdersBefore,
	} {
		v := qs.Get(name)
		if v == "" {
			continue
		}
		t, err := customer.ParseTime(v)
		if err != nil {
			return in, problem.Input(http.StatusBadRequest, name, customer.CodeInvalid, "%s must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z", name)
		}
		*dst = &t
	}
	return in, nil
}

// metadataParam reads the key of a metadata[key] query parameter.
func metadataParam(name string) (string, bool) {
	key, ok := strings.CutPrefix(name, "metadata[")
	if !ok || !strings.HasSuffix(key, "]") || len(key) < 2 {
		return "", false
	}
	return strings.TrimSuffix(key, "]"), true
}

// attributeParam reads an attribute filter's name: attributes[key] (equal
// to) or attributes[key][gte] and attributes[key][lte] (at least, at most).
func attributeParam(name string) (customer.AttributeCondition, bool) {
	rest, ok := strings.CutPrefix(name, "attributes[")
	if !ok {
		return customer.AttributeCondition{}, false
	}
	key, op, ok := strings.Cut(rest, "]")
	if !ok || key == "" {
		return customer.AttributeCondition{}, false
	}
	switch op {
	case "":
		return customer.AttributeCondition{Key: key, Op: customer.OpEq}, true
	case "[" + customer.OpGte + "]", "[" + customer.OpLte + "]":
		return customer.AttributeCondition{Key: key, Op: op[1 : len(op)-1]}, true
	}
	return customer.AttributeCondition{}, false
}

// Limit reads the limit query parameter: 0 when absent (the default
// applies), an error when given but not a whole number from 1 to MaxLimit.
func Limit(qs url.Values) (int, error) {
	v, given := qs["limit"]
	if !given {
		return 0, nil
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 1 || n > customer.MaxLimit {
		return 0, problem.Input(http.StatusBadRequest, "limit", customer.CodeInvalid, "limit must be an integer between 1 and %d", customer.MaxLimit)
	}
	return n, nil
}
