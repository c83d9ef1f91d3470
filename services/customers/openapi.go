package customers

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"go.yaml.in/yaml/v3"
)

// openAPIYAML is the OpenAPI document of the HTTP API, written by hand in YAML
// because that is the form people review; clients fetch it as JSON.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON is the embedded OpenAPI document as JSON, converted once per
// process however many services New builds. It fails only when the document
// is broken, which the package's tests catch before release.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	// json.Marshal refuses maps with non-string keys, such as an unquoted
	// response code: quote them in the YAML.
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml to JSON: %w", err)
	}
	return b, nil
})
