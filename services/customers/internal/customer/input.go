package customer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"
)

// Stable error codes of field errors (part of the external contract).
const (
	CodeRequired  = "required"
	CodeInvalid   = "invalid"
	CodeTooLong   = "max_length"
	CodeTooMany   = "max_items"
	CodeUnique    = "unique"
	CodeNotFound  = "not_found"
	CodeMalformed = "malformed"
	CodeTooShort  = "too_short"
	// CodeAnonymized refuses a change to an anonymized customer.
	CodeAnonymized = "anonymized"
)

// Limits on input sizes.
const (
	MaxEmailLength    = 254
	MaxNameLength     = 256
	MaxNoteLength     = 10_000
	MaxRefLength      = 256
	MaxMetadataKeys   = 100
	MaxMetadataKeyLen = 256
	MaxMetadataValLen = 4096
)

// FieldError is one problem with one input field.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ValidationError lists every problem found in an input, not just the first.
type ValidationError struct{ Errors []FieldError }

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		msgs[i] = f.Field + ": " + f.Message
	}
	return "invalid input: " + strings.Join(msgs, "; ")
}

// FieldErr is a ValidationError about one field.
func FieldErr(field, code, format string, args ...any) error {
	return &ValidationError{Errors: []FieldError{{Field: field, Code: code, Message: fmt.Sprintf(format, args...)}}}
}

// Nullable is a JSON field that may be absent (no change), null (clear) or a value.
type Nullable[T any] struct {
	Set   bool
	Value *T
}

// UnmarshalJSON records that the field was present; encoding/json calls it for
// null too, which is how "clear" differs from "absent".
func (n *Nullable[T]) UnmarshalJSON(b []byte) error {
	n.Set = true
	if bytes.Equal(b, []byte("null")) {
		n.Value = nil
		return nil
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	n.Value = &v
	return nil
}

// CreateInput is the data of a create command, from HTTP or the bus.
type CreateInput struct {
	Email             string            `json:"email"`
	FirstName         string            `json:"first_name"`
	LastName          string            `json:"last_name"`
	CompanyName       string            `json:"company_name"`
	Phone             *string           `json:"phone"`
	Note              string            `json:"note"`
	IsActive          *bool             `json:"is_active"`
	LanguageCode      string            `json:"language_code"`
	ExternalReference *string           `json:"external_reference"`
	Metadata          map[string]string `json:"metadata"`
	PrivateMetadata   map[string]string `json:"private_metadata"`
	// Attributes are values of typed custom attributes, by key.
	Attributes map[string]json.RawMessage `json:"attributes"`
	Addresses  []AddressInput             `json:"addresses"`
	Groups     []string                   `json:"groups"` // ids of groups to join
	// With both, the customer is sent an email to set a password.
	EmailLink
}

// UpdateInput is a partial update: only the fields present change.
type UpdateInput struct {
	Email             *string            `json:"email"`
	FirstName         *string            `json:"first_name"`
	LastName          *string            `json:"last_name"`
	CompanyName       *string            `json:"company_name"`
	Phone             Nullable[string]   `json:"phone"`
	Note              *string            `json:"note"`
	IsActive          *bool              `json:"is_active"`
	LanguageCode      *string            `json:"language_code"`
	ExternalReference Nullable[string]   `json:"external_reference"`
	Metadata          *map[string]string `json:"metadata"`
	PrivateMetadata   *map[string]string `json:"private_metadata"`
	// Attributes change the keys given: a value sets one, null removes it.
	Attributes map[string]json.RawMessage `json:"attributes"`
}

// rules validates and normalises input fields, collecting every error.
type rules struct {
	errs        []FieldError
	phoneRegion string
}

func (r *rules) fail(field, code, format string, args ...any) {
	r.errs = append(r.errs, FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
}

func (r *rules) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: r.errs}
}

// email returns the normalised address: trimmed and lower-cased, so uniqueness
// is case-insensitive and lookups by email need no function index.
func (r *rules) email(field, raw string) string {
	s := strings.ToLower(strings.TrimSpace(raw))
	switch {
	case s == "":
		r.fail(field, CodeRequired, "email is required")
	case utf8.RuneCountInString(s) > MaxEmailLength:
		r.fail(field, CodeTooLong, "email must be at most %d characters", MaxEmailLength)
	default:
		addr, err := mail.ParseAddress(s)
		local, domain, _ := strings.Cut(s, "@")
		if err != nil || addr.Address != s || !emailParts(local, domain) {
			r.fail(field, CodeInvalid, "%q is not a valid email address", raw)
		}
	}
	return s
}

// emailParts reports whether an address that mail.ParseAddress reads as
// itself is also one the contract's format (email, RFC 5321) takes: an
// ASCII local part of at most 64 characters, unquoted, and a domain name
// of at least two labels of letters, digits and hyphens. ParseAddress also
// takes UTF-8, quoted local parts and domains as "shop.}".
func emailParts(local, domain string) bool {
	if local == "" || len(local) > 64 || strings.ContainsRune(local, '"') ||
		strings.ContainsFunc(local, func(r rune) bool { return r >= utf8.RuneSelf }) ||
		len(domain) > 253 || !strings.Contains(domain, ".") {
		return false
	}
	for label := range strings.SplitSeq(domain, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.ContainsFunc(label, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' }) {
			return false
		}
	}
	return true
}

// ParseTime reads an RFC 3339 date-time, as the contract's date-time
// format: time.Parse also takes an hour of one digit ("T9:00:00Z").
func ParseTime(s string) (time.Time, error) {
	if len(s) < 14 || s[13] != ':' {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 date-time", s)
	}
	return time.Parse(time.RFC3339Nano, s)
}

// Storable reports whether PostgreSQL can store s in text and jsonb: valid
// UTF-8 without NUL characters.
func Storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func (r *rules) text(field, raw string, max int) string {
	s := strings.TrimSpace(raw)
	if !Storable(s) {
		r.fail(field, CodeInvalid, "%s must be valid UTF-8 without NUL characters", field)
	} else if utf8.RuneCountInString(s) > max {
		r.fail(field, CodeTooLong, "%s must be at most %d characters", field, max)
	}
	return s
}

// phone parses a phone number and returns it in E.164; nil input stays nil.
func (r *rules) phone(field string, raw *string) *string { return r.phoneIn(field, raw, r.phoneRegion) }

// phoneIn is phone with numbers lacking a country code read in region.
func (r *rules) phoneIn(field string, raw *string, region string) *string {
	if raw == nil || strings.TrimSpace(*raw) == "" {
		return nil
	}
	num, err := phonenumbers.Parse(*raw, region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		r.fail(field, CodeInvalid, "%q is not a valid phone number (use international format, e.g. +4930123456)", *raw)
		return nil
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	return &e164
}

// DefaultLanguageCode is a customer's language when none is given.
const DefaultLanguageCode = "en"

// languageCode returns the canonical BCP 47 tag; empty means the default "en".
func (r *rules) languageCode(field, raw string) string {
	s := strings.TrimSpace(raw)
	if s == "" {
		return DefaultLanguageCode
	}
	tag, err := language.Parse(s)
	if err != nil || len(s) > 35 {
		r.fail(field, CodeInvalid, "%q is not a valid language code (BCP 47, e.g. en or pt-BR)", raw)
		return s
	}
	return tag.String()
}

// externalReference returns nil for absent or blank references, so the unique
// index applies only to real ones.
func (r *rules) externalReference(field string, raw *string) *string {
	if raw == nil {
		return nil
	}
	s := r.text(field, *raw, MaxRefLength)
	if s == "" {
		return nil
	}
	return &s
}

func (r *rules) metadata(field string, m map[string]string) map[string]string {
	if len(m) > MaxMetadataKeys {
		r.fail(field, CodeTooMany, "%s may hold at most %d keys", field, MaxMetadataKeys)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch {
		case strings.TrimSpace(k) == "":
			r.fail(field, CodeInvalid, "%s keys must not be blank", field)
		case !Storable(k) || !Storable(v):
			r.fail(field, CodeInvalid, "%s keys and values must be valid UTF-8 without NUL characters", field)
		case utf8.RuneCountInString(k) > MaxMetadataKeyLen:
			r.fail(field+"."+k, CodeTooLong, "metadata keys must be at most %d characters", MaxMetadataKeyLen)
		case utf8.RuneCountInString(v) > MaxMetadataValLen:
			r.fail(field+"."+k, CodeTooLong, "metadata values must be at most %d characters", MaxMetadataValLen)
		}
		out[k] = v
	}
	return out
}

// Bounds of the times an input may give: what answers and events (JSON,
// RFC 3339 with four-digit years) can show.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// instant returns t in UTC, to the microsecond PostgreSQL keeps, within
// years 1 to 9999: an offset can push a time written within them out.
func (r *rules) instant(field string, t time.Time) time.Time {
	u := t.UTC().Truncate(time.Microsecond)
	if u.Before(minTime) || u.After(maxTime) {
		r.fail(field, CodeInvalid, "%s must be between 0001-01-01 and 9999-12-31 in UTC", field)
	}
	return u
}

// requiredText is text that must not be empty.
func (r *rules) requiredText(field, v string, max int) string {
	if strings.TrimSpace(v) == "" {
		r.fail(field, CodeRequired, "%s is required", field)
		return ""
	}
	return r.text(field, v, max)
}
