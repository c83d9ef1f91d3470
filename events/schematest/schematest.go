// Package schematest checks, in tests, that an event honours the contract:
// the CloudEvents envelope and the JSON Schema of its data.
package schematest

import (
	"net/url"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/customerbus/customerbus/events"
)

// Validate fails the test when e breaks the envelope rules or its data does
// not match the schema named by its type.
func Validate(t testing.TB, e cloudevents.Event) {
	t.Helper()
	if err := e.Validate(); err != nil {
		t.Errorf("event %s: not a valid CloudEvent: %v", e.ID(), err)
	}
	if e.SpecVersion() != "1.0" || e.DataContentType() != "application/json" {
		t.Errorf("event %s: specversion %q datacontenttype %q", e.ID(), e.SpecVersion(), e.DataContentType())
	}
	if u, err := url.Parse(e.DataSchema()); err != nil || !u.IsAbs() || !strings.HasSuffix(u.Path, events.SchemaPath+e.Type()+".json") {
		t.Errorf("event %s: dataschema %q is not an absolute URL ending in %s%s.json", e.ID(), e.DataSchema(), events.SchemaPath, e.Type())
	}
	if tp, _ := e.Extensions()[events.ExtTraceParent].(string); !events.ValidTraceParent(tp) {
		t.Errorf("event %s (%s): traceparent %q is not W3C trace context", e.ID(), e.Type(), tp)
	}
	for _, name := range []string{events.ExtSequence, events.ExtPartitionKey, events.ExtAuthType, events.ExtAuthID} {
		if v, _ := e.Extensions()[name].(string); v == "" {
			t.Errorf("event %s: extension %s missing", e.ID(), name)
		}
	}
	if err := events.ValidateData(e.Type(), e.Data()); err != nil {
		t.Errorf("event %s: %v", e.ID(), err)
	}
}
