package customer

import (
	"bytes"
	"encoding/json"
	"maps"
	"math/big"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/customerbus/customerbus/events"
)

// Attribute types: what a typed custom attribute's values are.
const (
	AttrString   = "string"
	AttrInteger  = "integer"
	AttrDecimal  = "decimal"
	AttrBoolean  = "boolean"
	AttrDate     = "date"
	AttrDatetime = "datetime"
	AttrEnum     = "enum"
	AttrEmail    = "email"
	AttrURL      = "url"
)

// AttributeTypes lists every attribute type.
var AttributeTypes = []string{AttrString, AttrInteger, AttrDecimal, AttrBoolean, AttrDate, AttrDatetime, AttrEnum, AttrEmail, AttrURL}

// Error codes of attribute values (besides required, invalid and max_length).
const (
	CodeNotInEnum        = "not_in_enum"
	CodeOutOfRange       = "out_of_range"
	CodeUnknownAttribute = "unknown_attribute"
	// CodeNotIndexed refuses a list filter on an attribute that is not indexed.
	CodeNotIndexed = "not_indexed"
)

// Limits of attribute definitions and values.
const (
	MaxAttributeDefinitions = 100
	MaxAttributeKeyLength   = 64
	MaxAttributeLabelLength = 256
	MaxAttributeTextLength  = 4096 // a string's max_length at most, and its default
	// MaxIndexedTextLength is an indexed string's max_length at most: 512
	// characters are at most 2,048 bytes, which with the key fit in one
	// btree entry (about 2,700 bytes).
	MaxIndexedTextLength = 512
	MaxAttributePattern  = 512
	MaxEnumValues        = 200
	MaxURLLength         = 2048
)

// AttributeDefinition says what one custom attribute of customers holds
// and who may see and set it; the events package has its shape.
type AttributeDefinition = events.AttributeDefinition

// Attributes are a customer's values of custom attributes, by key: each
// value canonical JSON (see rules.attributeValue), so equal values are
// equal bytes.
type Attributes map[string]json.RawMessage

// Equal reports whether a and b hold the same values.
func (a Attributes) Equal(b Attributes) bool { return maps.EqualFunc(a, b, sameValue) }

// sameValue compares two JSON values by what they say: the database
// spells a string its own way ("<" where Go writes "\u003c").
func sameValue(x, y json.RawMessage) bool {
	if bytes.Equal(x, y) {
		return true
	}
	if x == nil || y == nil {
		return false
	}
	decode := func(b json.RawMessage) (any, bool) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		return v, d.Decode(&v) == nil
	}
	vx, okx := decode(x)
	vy, oky := decode(y)
	return okx && oky && vx == vy
}

// Definitions are the attribute definitions by key.
type Definitions map[string]AttributeDefinition

// Visible is the part of a that customers may see.
func (d Definitions) Visible(a Attributes) Attributes {
	out := Attributes{}
	for k, v := range a {
		if d[k].VisibleToCustomer {
			out[k] = v
		}
	}
	return out
}

var attributeKeyPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

var (
	integerPattern = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,17})$`)
	decimalPattern = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,29})(\.[0-9]{1,20})?$`)
)

// attributes checks the attributes given with a new customer: every key
// defined, every value valid, every required attribute given. A null
// value is no value.
func (r *rules) attributes(field string, defs Definitions, in map[string]json.RawMessage) Attributes {
	out := Attributes{}
	for _, k := range slices.Sorted(maps.Keys(in)) {
		if v, ok := r.attributeValue(field, defs, k, in[k]); ok && v != nil {
			out[k] = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(defs)) {
		if defs[k].Required && out[k] == nil && !r.failed(field+"."+k) {
			r.fail(field+"."+k, CodeRequired, "%s is required", defs[k].Label)
		}
	}
	return out
}

// patchAttributes applies a partial change to cur: a value sets the key,
// null removes it. Only the keys given are checked, so a change that does
// not touch an attribute never fails because of it (a value stored before
// its definition narrowed, say).
func (r *rules) patchAttributes(field string, defs Definitions, cur Attributes, in map[string]json.RawMessage) Attributes {
	out := maps.Clone(cur)
	if out == nil {
		out = Attributes{}
	}
	for _, k := range slices.Sorted(maps.Keys(in)) {
		v, ok := r.attributeValue(field, defs, k, in[k])
		switch {
		case !ok:
		case v == nil && defs[k].Required:
			r.fail(field+"."+k, CodeRequired, "%s is required: it cannot be removed", defs[k].Label)
		case v == nil:
			delete(out, k)
		default:
			out[k] = v
		}
	}
	return out
}

// attributeValue checks one value of the attribute key and returns it as
// canonical JSON; nil for null. ok is false when it failed.
func (r *rules) attributeValue(field string, defs Definitions, key string, raw json.RawMessage) (json.RawMessage, bool) {
	field += "." + key
	d, defined := defs[key]
	if !defined {
		r.fail(field, CodeUnknownAttribute, "%q is not a defined customer attribute", key)
		return nil, false
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	before := len(r.errs)
	v := r.typedValue(field, d, raw)
	return v, len(r.errs) == before
}

// typedValue is attributeValue's check of a non-null value by its type.
func (r *rules) typedValue(field string, d AttributeDefinition, raw json.RawMessage) json.RawMessage {
	if d.Type == AttrBoolean {
		if string(raw) != "true" && string(raw) != "false" {
			r.fail(field, CodeInvalid, "%s must be true or false", field)
		}
		return raw
	}
	if d.Type == AttrInteger || d.Type == AttrDecimal {
		return r.numberValue(field, d, raw)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		r.fail(field, CodeInvalid, "%s must be a string", field)
		return nil
	}
	s = strings.TrimSpace(s)
	switch {
	case !Storable(s):
		r.fail(field, CodeInvalid, "%s must be valid UTF-8 without NUL characters", field)
		return nil
	case s == "":
		r.fail(field, CodeInvalid, "%s must not be empty; null removes it", field)
		return nil
	}
	switch d.Type {
	case AttrString:
		if max := cmpOr(d.MaxLength, MaxAttributeTextLength); utf8.RuneCountInString(s) > max {
			r.fail(field, CodeTooLong, "%s must be at most %d characters", field, max)
		} else if d.Pattern != nil && !anchored(*d.Pattern).MatchString(s) {
			r.fail(field, CodeInvalid, "%s must match the pattern %s", field, *d.Pattern)
		}
	case AttrEnum:
		if !slices.Contains(d.Values, s) {
			r.fail(field, CodeNotInEnum, "%s must be one of %s", field, strings.Join(d.Values, ", "))
		}
	case AttrEmail:
		s = r.email(field, s)
	case AttrURL:
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(s) > MaxURLLength {
			r.fail(field, CodeInvalid, "%s must be an absolute http or https URL of at most %d characters", field, MaxURLLength)
		}
	case AttrDate:
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			r.fail(field, CodeInvalid, "%s must be a date, e.g. 2026-01-31", field)
		}
		s = t.Format(time.DateOnly)
	case AttrDatetime:
		t, err := ParseTime(s)
		if err != nil {
			r.fail(field, CodeInvalid, "%s must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z", field)
		}
		s = r.instant(field, t).Format(time.RFC3339Nano)
	}
	out, _ := json.Marshal(s) // a string always marshals
	return out
}

// numberValue checks an integer or decimal: a JSON number in plain
// notation (no exponent, which PostgreSQL's numeric would take to any size)
// within the definition's bounds.
func (r *rules) numberValue(field string, d AttributeDefinition, raw json.RawMessage) json.RawMessage {
	pattern, what := integerPattern, "an integer of at most 18 digits"
	if d.Type == AttrDecimal {
		pattern, what = decimalPattern, "a decimal number, e.g. 12.50 (at most 30 digits before the point and 20 after)"
	}
	if !pattern.Match(raw) {
		r.fail(field, CodeInvalid, "%s must be %s", field, what)
		return nil
	}
	if d.Type == AttrDecimal {
		raw = canonicalDecimal(raw)
	}
	n, _ := new(big.Rat).SetString(string(raw))
	if lo := rat(d.Min); lo != nil && n.Cmp(lo) < 0 {
		r.fail(field, CodeOutOfRange, "%s must be at least %s", field, *d.Min)
	}
	if hi := rat(d.Max); hi != nil && n.Cmp(hi) > 0 {
		r.fail(field, CodeOutOfRange, "%s must be at most %s", field, *d.Max)
	}
	return raw
}

// canonicalDecimal drops a decimal's trailing zeros (12.50 is 12.5), so
// that equal numbers are equal values and a change between them is none.
func canonicalDecimal(raw json.RawMessage) json.RawMessage {
	s := string(raw)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return json.RawMessage(s)
}

func rat(n *json.Number) *big.Rat {
	if n == nil {
		return nil
	}
	v, ok := new(big.Rat).SetString(n.String())
	if !ok {
		return nil
	}
	return v
}

// anchored compiles a definition's pattern to match whole values; the
// definition was checked when saved, so it compiles.
func anchored(pattern string) *regexp.Regexp {
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return regexp.MustCompile(`$^`) // matches nothing
	}
	return re
}

func cmpOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// AttributeCell is a value as a CSV cell: a string's text, a number or a
// boolean as JSON writes it, empty for none. AttributeCells reads it back.
func AttributeCell(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

// AttributeCells reads a CSV row's attributes.<key> cells as values of the
// definitions' types (see AttributeCell): an empty cell is no value (null),
// a number or boolean cell its JSON, anything else a string, which the
// checks refuse where the type wants another.
func AttributeCells(defs Definitions, cells map[string]string) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(cells))
	for k, v := range cells {
		switch t := defs[k].Type; {
		case v == "":
			out[k] = json.RawMessage("null")
		case (t == AttrInteger || t == AttrDecimal || t == AttrBoolean) && json.Valid([]byte(v)):
			out[k] = json.RawMessage(v)
		default:
			out[k], _ = json.Marshal(v) // a string always marshals
		}
	}
	return out
}

// changedAttributes names the attributes that differ, as "attributes.<key>".
func changedAttributes(a, b Attributes) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if !sameValue(a[k], b[k]) {
			out = append(out, "attributes."+k)
		}
	}
	return out
}
