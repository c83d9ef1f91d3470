package customer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Operators of attribute filters: attributes[key]=v is eq,
// attributes[key][gte]=v and attributes[key][lte]=v bound a range.
const (
	OpEq  = "eq"
	OpGte = "gte"
	OpLte = "lte"
)

// AttributeCondition is one attribute filter of a list request, as given.
type AttributeCondition struct {
	Key, Op, Value string
}

// AttributeFilter is a checked attribute filter: the customer's value of
// Key equals Text, or lies within the bounds given (numbers as decimal
// text, instants in UTC; a date is its midnight UTC).
type AttributeFilter struct {
	Key              string
	Text             *string
	NumMin, NumMax   *string
	TimeMin, TimeMax *time.Time
}

// attributeFilters checks the list's attribute conditions against the
// definitions: only indexed attributes filter, equality on any type,
// ranges on numbers, dates and datetimes. The conditions of one key make
// one filter.
func (s *Service) attributeFilters(ctx context.Context, conds []AttributeCondition) ([]AttributeFilter, error) {
	if len(conds) == 0 {
		return nil, nil
	}
	defs, err := s.store.AttributeDefinitions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list customers: %w", err)
	}
	var r rules
	var out []AttributeFilter
	for _, c := range conds {
		field := "attributes[" + c.Key + "]"
		d, ok := defs[c.Key]
		switch {
		case !ok:
			r.fail(field, CodeUnknownAttribute, "%q is not a defined customer attribute", c.Key)
			continue
		case !d.Indexed:
			r.fail(field, CodeNotIndexed, "%s is not indexed; set indexed on its definition to filter on it", c.Key)
			continue
		}
		i := slices.IndexFunc(out, func(f AttributeFilter) bool { return f.Key == c.Key })
		if i < 0 {
			out = append(out, AttributeFilter{Key: c.Key})
			i = len(out) - 1
		}
		r.attributeCondition(field, d, c, &out[i])
	}
	return out, r.err()
}

// attributeCondition adds one condition to f, the value read as the
// attribute's values are.
func (r *rules) attributeCondition(field string, d AttributeDefinition, c AttributeCondition, f *AttributeFilter) {
	if c.Op != OpEq && c.Op != OpGte && c.Op != OpLte {
		r.fail(field, CodeInvalid, "%s takes =value, [gte]=value or [lte]=value", field)
		return
	}
	raw, _ := json.Marshal(c.Value)
	switch d.Type {
	case AttrInteger, AttrDecimal:
		raw = json.RawMessage(c.Value)
	case AttrBoolean:
		raw = json.RawMessage(c.Value)
	}
	// The bounds of a definition do not bound a filter.
	loose := AttributeDefinition{Type: d.Type, Values: d.Values}
	before := len(r.errs)
	v := r.typedValue(field, loose, raw)
	if len(r.errs) > before {
		return
	}
	var text string
	_ = json.Unmarshal(v, &text)
	switch d.Type {
	case AttrInteger, AttrDecimal:
		n := string(v)
		if c.Op != OpLte {
			f.NumMin = &n
		}
		if c.Op != OpGte {
			f.NumMax = &n
		}
	case AttrDate, AttrDatetime:
		t := instantOf(d.Type, text)
		if c.Op != OpLte {
			f.TimeMin = &t
		}
		if c.Op != OpGte {
			f.TimeMax = &t
		}
	default:
		if c.Op != OpEq {
			r.fail(field, CodeInvalid, "%s is a %s attribute: it filters by equality only", field, d.Type)
			return
		}
		if d.Type == AttrBoolean {
			text = string(v)
		}
		f.Text = &text
	}
}

// instantOf is the instant of a checked date or datetime value: a date
// is its midnight UTC, as the value tables keep it.
func instantOf(typ, v string) time.Time {
	if typ == AttrDate {
		t, _ := time.Parse(time.DateOnly, v)
		return t
	}
	t, _ := ParseTime(v)
	return t
}
