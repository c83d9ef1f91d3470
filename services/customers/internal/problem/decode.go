package problem

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// DecodeJSON decodes a JSON object strictly: unknown fields, wrong types,
// invalid UTF-8, trailing data and oversized bodies are problems the sender
// can act on. HTTP bodies and bus commands' data are decoded with it.
func DecodeJSON(body []byte, maxBytes int64, dst any) error {
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD and store it.
	if !utf8.Valid(body) {
		return invalidUTF8(body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return BodyError(err, maxBytes)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return BodyError(err, maxBytes)
		}
		return Input(http.StatusBadRequest, "", customer.CodeMalformed, "the body must hold a single JSON object")
	}
	return strict(body, reflect.TypeOf(dst), "")
}

// strict refuses what encoding/json lets through: a key in another case
// than its field's ("EMAIL" for "email"), so that of {"email": …,
// "EMAIL": …} either could win; and a time whose hour has one digit
// ("T9:00:00Z"), which RFC 3339 does not have. Every key of an object read
// into a struct must be a field's name as written. body is the JSON of
// field, decoded into a t already.
func strict(body []byte, t reflect.Type, field string) error {
	t = indirect(t)
	if !strictlyRead(t) {
		return nil // metadata, say: its keys are free
	}
	var values map[string]json.RawMessage
	var elem func(key string) (reflect.Type, bool)
	switch t.Kind() {
	case reflect.Struct:
		if t == timeType {
			var s string
			if json.Unmarshal(body, &s) == nil {
				if _, err := customer.ParseTime(s); err != nil {
					return Input(http.StatusBadRequest, field, customer.CodeInvalid, "%s must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z", field)
				}
			}
			return nil
		}
		fields := jsonFields(t)
		elem = func(key string) (reflect.Type, bool) { ft, ok := fields[key]; return ft, ok }
	case reflect.Map:
		elem = func(string) (reflect.Type, bool) { return t.Elem(), true }
	default: // a slice or an array
		var items []json.RawMessage
		if json.Unmarshal(body, &items) != nil {
			return nil // null: decoded already
		}
		for _, item := range items {
			if err := strict(item, t.Elem(), field); err != nil {
				return err
			}
		}
		return nil
	}
	if json.Unmarshal(body, &values) != nil {
		return nil // null: decoded already
	}
	for _, key := range slices.Sorted(maps.Keys(values)) {
		vt, ok := elem(key)
		if !ok {
			return Input(http.StatusBadRequest, key, CodeUnknownField, "%s is not a known field (field names are in lower case)", key)
		}
		if err := strict(values[key], vt, key); err != nil {
			return err
		}
	}
	return nil
}

func indirect(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// strictlyRead reports whether a value of type t may hold what strict
// refuses: a struct (time.Time included), or a slice or map of them. A
// type that reads itself otherwise (Nullable, json.RawMessage) does not.
func strictlyRead(t reflect.Type) bool {
	if t == timeType {
		return true
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return false
	}
	switch t.Kind() {
	case reflect.Struct:
		return true
	case reflect.Map, reflect.Slice, reflect.Array:
		return strictlyRead(indirect(t.Elem()))
	}
	return false
}

var timeType = reflect.TypeFor[time.Time]()

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// fieldsOf caches jsonFields by type.
var fieldsOf sync.Map // reflect.Type → map[string]reflect.Type

// jsonFields are the JSON names of a struct's fields, those of embedded
// structs included (a field of the struct itself wins over one of the
// same name it embeds), with their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldsOf.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	own, embedded := map[string]reflect.Type{}, map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case name == "-":
		case f.Anonymous && name == "" && ft.Kind() == reflect.Struct:
			maps.Copy(embedded, jsonFields(ft))
		case !f.IsExported():
		case name == "":
			own[f.Name] = f.Type
		default:
			own[name] = f.Type
		}
	}
	maps.Copy(embedded, own)
	fieldsOf.Store(t, embedded)
	return embedded
}

// invalidUTF8 names the top-level field holding invalid UTF-8; raw messages
// keep the bytes as sent, so they can be checked one by one.
func invalidUTF8(body []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err == nil {
		names := slices.Sorted(maps.Keys(fields))
		for _, name := range names {
			if utf8.ValidString(name) && !utf8.Valid(fields[name]) {
				return Input(http.StatusBadRequest, name, customer.CodeInvalid, "%s must be valid UTF-8", name)
			}
		}
	}
	return Input(http.StatusBadRequest, "", customer.CodeMalformed, "the body must be valid UTF-8")
}

// BodyError is the problem of a body that failed to decode or to be read
// (http.MaxBytesReader's error is a too_large).
func BodyError(err error, maxBytes int64) error {
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typeErr  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return Input(http.StatusRequestEntityTooLarge, "", CodeTooLarge, "the body must be at most %d bytes", maxBytes)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return Input(http.StatusBadRequest, "", customer.CodeMalformed, "the body is not valid JSON")
	case errors.Is(err, io.EOF):
		return Input(http.StatusBadRequest, "", customer.CodeMalformed, "the body is empty; a JSON object is required")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return Input(http.StatusBadRequest, "", customer.CodeMalformed, "the body must be a JSON object")
		}
		field := jsonPath(typeErr.Field)
		return Input(http.StatusBadRequest, field, CodeInvalidType, "%s: expected %s, got %s", field, jsonTypeName(typeErr.Type.String()), typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Input(http.StatusBadRequest, field, CodeUnknownField, "%s is not a known field", field)
	default:
		return Input(http.StatusBadRequest, "", customer.CodeMalformed, "the body could not be read: %v", err)
	}
}

// jsonTypeName names Go types the way a JSON client thinks of them.
func jsonTypeName(goType string) string {
	switch {
	case goType == "string" || strings.HasSuffix(goType, "Nullable[string]"):
		return "string"
	case goType == "bool":
		return "boolean"
	case strings.HasPrefix(goType, "map["):
		return "object of strings"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "float"):
		return "number"
	default:
		return goType
	}
}

// jsonPath is a field's path as the client wrote it: encoding/json names a
// field of an embedded struct with the struct's Go name in front
// ("CreateInput.email"), which the client never saw.
func jsonPath(goPath string) string {
	parts := strings.Split(goPath, ".")
	out := parts[:0]
	for _, p := range parts {
		if p != "" && !unicode.IsUpper(rune(p[0])) {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}
