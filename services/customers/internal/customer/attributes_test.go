package customer

import (
	"encoding/json"
	"testing"
)

func TestAttributeValuesAreStoredCanonical(t *testing.T) {
	defs := fuzzDefinitions()
	for _, tc := range []struct{ key, in, want string }{
		{"credit", `12.50`, `12.5`},
		{"credit", `-0.00`, `0`},
		{"credit", `100`, `100`},
		{"points", `007`, ``}, // leading zeros are refused
		{"since", `"2020-01-01T12:00:00+02:00"`, `"2020-01-01T10:00:00Z"`},
		{"mail", `" Ann@Example.COM "`, `"ann@example.com"`},
		{"vat", `" DE12 "`, `"DE12"`},
	} {
		var r rules
		got, ok := r.attributeValue("attributes", defs, tc.key, json.RawMessage(tc.in))
		if tc.want == "" {
			if ok {
				t.Errorf("%s %s accepted as %s", tc.key, tc.in, got)
			}
			continue
		}
		if !ok || string(got) != tc.want {
			t.Errorf("%s %s = %s (%v), want %s", tc.key, tc.in, got, r.errs, tc.want)
		}
	}
	if !(Attributes{"a": json.RawMessage(`"x<y"`)}).Equal(Attributes{"a": json.RawMessage(`"x\u003cy"`)}) {
		t.Error("the same string spelled two ways is not the same value")
	}
}
