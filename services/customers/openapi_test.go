package customers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"go.yaml.in/yaml/v3"

	"github.com/customerbus/customerbus/events"
)

// openAPIFile is the document's source; tests run in the package's directory.
const openAPIFile = "openapi.yaml"

// unauthenticated are the documented operations outside /v1: they need no token.
var unauthenticated = []string{"GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json", "GET /schemas/events/{name}"}

// spec checks HTTP exchanges against openapi.yaml.
type spec struct {
	validator validator.Validator
	schemas   schema_validation.SchemaValidator
	problem   *base.Schema // components/schemas/Problem
}

// openAPI is openapi.yaml loaded once: building the validator compiles every
// schema, too slow to repeat for each request of the tests.
var openAPI = sync.OnceValues(func() (*spec, error) {
	doc, err := loadOpenAPI()
	if err != nil {
		return nil, err
	}
	// Format assertions make uuid, date-time and email checks, not annotations.
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("openapi validator: %v", errs)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		return nil, err
	}
	problem := model.Model.Components.Schemas.GetOrZero("Problem")
	if problem == nil {
		return nil, fmt.Errorf("%s has no Problem schema", openAPIFile)
	}
	return &spec{
		validator: v,
		schemas:   schema_validation.NewSchemaValidator(config.WithFormatAssertions()),
		problem:   problem.Schema(),
	}, nil
})

func loadOpenAPI() (libopenapi.Document, error) {
	b, err := os.ReadFile(openAPIFile)
	if err != nil {
		return nil, err
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", openAPIFile, err)
	}
	return doc, nil
}

// checkOpenAPI fails the test when an answer does not match the OpenAPI
// document. When the service accepted a request (2xx), the request must match
// too: otherwise the document would forbid what clients may rely on. Refused
// requests are often malformed on purpose, so only their answers are checked.
// respBody is the answer's body, already read.
func (s *system) checkOpenAPI(req *http.Request, resp *http.Response, respBody []byte) {
	s.t.Helper()
	sp, err := openAPI()
	if err != nil {
		s.t.Fatal(err)
	}
	req = req.Clone(req.Context())
	req.Body = http.NoBody
	if req.GetBody != nil {
		if req.Body, err = req.GetBody(); err != nil {
			s.t.Fatal(err)
		}
		// The service reads a body without a media type, or of another
		// application/…+json type, as JSON, which an OpenAPI document
		// cannot say; check it as the JSON it is read as.
		if mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); mt == "" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json") {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	answer := *resp
	answer.Body = io.NopCloser(bytes.NewReader(respBody))
	check := sp.validator.ValidateHttpResponse
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		check = sp.validator.ValidateHttpRequestResponse
	}
	ok, errs := check(req, &answer)
	if !ok && (unrouted(errs) && resp.StatusCode >= 400 && resp.StatusCode < 500 || noRoute(respBody)) {
		// No operation can describe a path or method the service does not
		// have (POST /v1/customers/ included, which the validator takes for
		// POST /v1/customers), but its refusal must still be a problem. Nor
		// one the document places elsewhere: DELETE
		// /v1/customers/bulk-delete is DELETE /v1/customers/{id} to the
		// service (refused without the permission), but the validator looks
		// no further than POST /v1/customers/bulk-delete (found by FuzzAPI).
		ok, errs = sp.checkProblem(resp.Header.Get("Content-Type"), respBody)
	}
	if !ok {
		s.t.Errorf("%s %s answered %d %s\n%s\nwhich does not match %s:\n%s",
			req.Method, req.URL.RequestURI(), resp.StatusCode, resp.Header.Get("Content-Type"),
			truncate(respBody, 2000), openAPIFile, describe(errs))
	}
}

// noRoute reports whether an answer is the service's no_route problem: it
// has no route for the request.
func noRoute(body []byte) bool {
	var p problemJSON
	return json.Unmarshal(body, &p) == nil && len(p.Errors) > 0 && p.Errors[0].Code == "no_route"
}

// unrouted reports whether the document has no operation for the request.
func unrouted(errs []*errors.ValidationError) bool {
	for _, e := range errs {
		if !e.IsPathMissingError() && !e.IsOperationMissingError() {
			return false
		}
	}
	return len(errs) > 0
}

// checkProblem checks an answer against the Problem schema alone.
func (sp *spec) checkProblem(contentType string, body []byte) (bool, []*errors.ValidationError) {
	if contentType != "application/problem+json" {
		return false, []*errors.ValidationError{{
			Message: "not a problem", Reason: fmt.Sprintf("Content-Type %q, want application/problem+json", contentType),
		}}
	}
	return sp.schemas.ValidateSchemaBytes(sp.problem, body)
}

func describe(errs []*errors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "- %s: %s\n", e.Message, e.Reason)
		for _, f := range e.SchemaValidationErrors {
			path := f.FieldPath
			if path == "" {
				path = "$"
			}
			fmt.Fprintf(&b, "    %s: %s\n", path, f.Reason)
		}
	}
	return b.String()
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

func TestOpenAPIDocumentIsValidOpenAPI31(t *testing.T) {
	t.Parallel()
	doc, err := loadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Errorf("openapi version %q, want 3.1.0", v)
	}
	// Building the model resolves every $ref; a dangling one is an error here.
	if _, err := doc.BuildV3Model(); err != nil {
		t.Fatalf("build model: %v", err)
	}
	sp, err := openAPI()
	if err != nil {
		t.Fatal(err)
	}
	if ok, errs := sp.validator.ValidateDocument(); !ok {
		t.Errorf("%s is not a valid OpenAPI document:\n%s", openAPIFile, describe(errs))
	}
}

// The service serves the same document as openapi.yaml, as JSON.
func TestOpenAPIDocumentIsServedAsJSON(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	r := request(t, s, http.MethodGet, "/openapi.json", nil, map[string]string{"Authorization": ""})
	r.expectStatus(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	file, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	// JSON is YAML, so one YAML decoder makes the two comparable.
	var served, want any
	if err := yaml.Unmarshal(r.body, &served); err != nil {
		t.Fatalf("served document: %v", err)
	}
	if err := yaml.Unmarshal(file, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(served, want) {
		t.Errorf("/openapi.json differs from %s", openAPIFile)
	}
}

// A route cannot be added without its operation in the document, nor an
// operation documented that the service does not serve, and each operation
// names the permission its route checks.
func TestOpenAPIDocumentsEveryRouteAndItsPermission(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	doc, err := loadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]string{} // pattern → permission
	for _, rt := range s.routes {
		routes[rt.Pattern] = rt.Permission
	}
	documented := map[string]*v3.Operation{}
	operationIDs := map[string]string{}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			pattern := strings.ToUpper(method) + " " + path
			documented[pattern] = op
			if op.OperationId == "" {
				t.Errorf("%s: no operationId", pattern)
			} else if other, dup := operationIDs[op.OperationId]; dup {
				t.Errorf("%s and %s share operationId %q", other, pattern, op.OperationId)
			}
			operationIDs[op.OperationId] = pattern
		}
	}

	for pattern, perm := range routes {
		op, ok := documented[pattern]
		if !ok {
			t.Errorf("route %s is not in %s", pattern, openAPIFile)
			continue
		}
		var got string
		if node, ok := op.Extensions.Get("x-permission"); ok && node != nil {
			got = node.Value
		}
		if got != perm {
			t.Errorf("%s: x-permission %q, want the route's %q", pattern, got, perm)
		}
		// nil Security inherits the document's bearer requirement.
		public := op.Security != nil && len(op.Security) == 0
		if perm == "PUBLIC" && !public {
			t.Errorf("%s needs no token but is not documented with security: []", pattern)
		}
		if perm != "PUBLIC" && public {
			t.Errorf("%s needs a token but is documented without security", pattern)
		}
	}
	for pattern, op := range documented {
		if _, ok := routes[pattern]; ok {
			continue
		}
		if !slices.Contains(unauthenticated, pattern) {
			t.Errorf("%s is documented but the service has no such route", pattern)
			continue
		}
		if op.Security == nil || len(op.Security) != 0 {
			t.Errorf("%s needs no token but is not documented with security: []", pattern)
		}
	}

	// The unauthenticated operations answer without a token, and (through
	// send) as the document says.
	for _, pattern := range unauthenticated {
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.ReplaceAll(path, "{name}", events.CustomerCreated+".json")
		request(t, s, method, path, nil, map[string]string{"Authorization": ""}).expectStatus(t, http.StatusOK)
	}
}
