package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// decodeJSON reads a JSON object body strictly: unknown fields, wrong types,
// trailing data and oversized bodies are errors the client can act on.
func decodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return badInput(http.StatusUnsupportedMediaType, "", codeMediaType, "the body must be application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		return jsonError(err, maxBytes)
	}
	return DecodeBody(body, maxBytes, dst)
}

// DecodeBody decodes a JSON object strictly, with the errors HTTP answers;
// bus commands decode their data with it too.
func DecodeBody(body []byte, maxBytes int64, dst any) error {
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD and store it.
	if !utf8.Valid(body) {
		return invalidUTF8(body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, maxBytes)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return jsonError(err, maxBytes)
		}
		return badInput(http.StatusBadRequest, "", customer.CodeMalformed, "the body must hold a single JSON object")
	}
	return nil
}

// invalidUTF8 names the top-level field holding invalid UTF-8; raw messages
// keep the bytes as sent, so they can be checked one by one.
func invalidUTF8(body []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err == nil {
		names := slices.Sorted(maps.Keys(fields))
		for _, name := range names {
			if utf8.ValidString(name) && !utf8.Valid(fields[name]) {
				return badInput(http.StatusBadRequest, name, customer.CodeInvalid, "%s must be valid UTF-8", name)
			}
		}
	}
	return badInput(http.StatusBadRequest, "", customer.CodeMalformed, "the body must be valid UTF-8")
}

func jsonError(err error, maxBytes int64) error {
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typeErr  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return badInput(http.StatusRequestEntityTooLarge, "", codeTooLarge, "the body must be at most %d bytes", maxBytes)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return badInput(http.StatusBadRequest, "", customer.CodeMalformed, "the body is not valid JSON")
	case errors.Is(err, io.EOF):
		return badInput(http.StatusBadRequest, "", customer.CodeMalformed, "the body is empty; a JSON object is required")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return badInput(http.StatusBadRequest, "", customer.CodeMalformed, "the body must be a JSON object")
		}
		return badInput(http.StatusBadRequest, typeErr.Field, codeInvalidType, "%s: expected %s, got %s", typeErr.Field, jsonTypeName(typeErr.Type.String()), typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badInput(http.StatusBadRequest, field, codeUnknownField, "%s is not a known field", field)
	default:
		return badInput(http.StatusBadRequest, "", customer.CodeMalformed, "the body could not be read: %v", err)
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
