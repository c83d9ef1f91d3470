package customers_test

import (
	"go/build"
	"path"
	"slices"
	"strings"
	"testing"
)

// Data flows one way, adapter → use case → store → outbox: no package of the
// command service imports one above it, and neither transport's adapter
// imports the other, so each can be read alone.
func TestPackagesImportOnlyDownward(t *testing.T) {
	const internal = "github.com/customerbus/customerbus/services/customers/internal/"
	// forbidden lists, for each package, the packages it must not import.
	forbidden := map[string][]string{
		"httpapi":  {"bus", "store", "console"},
		"bus":      {"httpapi", "store", "console"},
		"console":  {"httpapi", "bus", "store"},
		"jsonview": {"httpapi", "bus", "console", "store"},
		"problem":  {"httpapi", "bus", "store"},
		"customer": {"httpapi", "bus", "problem", "store", "order"},
		"order":    {"httpapi", "bus", "problem", "store"},
		"webhook":  {"httpapi", "bus", "problem", "store", "order"},
		"store":    {"httpapi", "bus", "problem"},
	}
	for pkg, not := range forbidden {
		p, err := build.ImportDir("internal/"+pkg, 0)
		if err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		for _, imp := range p.Imports {
			name, ok := strings.CutPrefix(imp, internal)
			if ok && slices.Contains(not, path.Base(name)) {
				t.Errorf("internal/%s imports internal/%s, against the flow", pkg, name)
			}
		}
	}
}
