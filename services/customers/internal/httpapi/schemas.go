package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// serveSchema serves an event schema (GET /schemas/events/<name>.json), the
// document an event's dataschema names, to anyone: schemas are public. The
// answer is cacheable, and revalidated by its ETag when the schema changes
// with a new release.
func (a *API) serveSchema(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	var doc []byte
	if ok {
		doc, ok = events.Schema(name)
	}
	if !ok {
		writeProblem(w, r, a.log, problem.Input(http.StatusNotFound, "", problem.CodeNoRoute, "no event schema has this name"))
		return
	}
	sum := sha256.Sum256(doc)
	w.Header().Set("Content-Type", "application/schema+json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(doc))
}
