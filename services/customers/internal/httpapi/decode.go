package httpapi

import (
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// decodeJSON reads a JSON object body strictly: unknown fields, wrong types,
// trailing data and oversized bodies are errors the client can act on. The
// media type is application/json or another application/…+json
// (merge-patch+json, say); mime.ParseMediaType also reads "+json" alone.
func decodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && (!strings.HasPrefix(mt, "application/") || !strings.HasSuffix(mt, "+json"))) {
			return problem.Input(http.StatusUnsupportedMediaType, "", problem.CodeMediaType, "the body must be application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		return problem.BodyError(err, maxBytes)
	}
	return problem.DecodeJSON(body, maxBytes, dst)
}
