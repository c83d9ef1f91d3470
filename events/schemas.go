package events

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schemas holds the JSON Schema of each event type's data, named <type>.json,
// and the shapes they share. Their $id and $refs are relative, so they resolve
// against wherever a schema is read from: served at SchemaPath, a schema's $id
// is the dataschema that names it.
//
//go:embed schemas/*.json
var Schemas embed.FS

var (
	schemasOnce sync.Once
	compiler    *jsonschema.Compiler
	compiled    sync.Map // type -> *jsonschema.Schema
	schemasErr  error
)

// ValidateData checks an event's data against its type's schema.
func ValidateData(eventType string, data []byte) error {
	schemasOnce.Do(loadSchemas)
	if schemasErr != nil {
		return schemasErr
	}
	sch, ok := compiled.Load(eventType)
	if !ok {
		return fmt.Errorf("events: no schema for %s", eventType)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("events: %s data is not JSON: %w", eventType, err)
	}
	if err := sch.(*jsonschema.Schema).Validate(v); err != nil {
		return fmt.Errorf("events: %s data does not match its schema: %w", eventType, err)
	}
	return nil
}

// loadSchemas compiles every schema once; $refs between them resolve by $id.
func loadSchemas() {
	compiler = jsonschema.NewCompiler()
	compiler.AssertFormat()
	files, err := fs.Glob(Schemas, "schemas/*.json")
	if err != nil {
		schemasErr = err
		return
	}
	for _, f := range files {
		b, err := Schemas.ReadFile(f)
		if err != nil {
			schemasErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			schemasErr = fmt.Errorf("events: schema %s: %w", f, err)
			return
		}
		if err := compiler.AddResource(SchemaURL("", strings.TrimSuffix(strings.TrimPrefix(f, "schemas/"), ".json")), doc); err != nil {
			schemasErr = err
			return
		}
	}
	for _, f := range files {
		eventType := strings.TrimSuffix(strings.TrimPrefix(f, "schemas/"), ".json")
		sch, err := compiler.Compile(SchemaURL("", eventType))
		if err != nil {
			schemasErr = fmt.Errorf("events: compile schema %s: %w", f, err)
			return
		}
		compiled.Store(eventType, sch)
	}
}

// Schema returns the JSON Schema document named name (an event type or a
// shared shape, without ".json"), as served at SchemaPath.
func Schema(name string) ([]byte, bool) {
	if !fs.ValidPath(name) || strings.Contains(name, "/") {
		return nil, false
	}
	b, err := Schemas.ReadFile("schemas/" + name + ".json")
	return b, err == nil
}
