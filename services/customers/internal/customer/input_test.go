package customer

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEmailIsNormalisedOrRejected(t *testing.T) {
	tests := []struct {
		in, want string
		wantCode string
	}{
		{"Ann@Example.COM", "ann@example.com", ""},
		{"  bo@shop.example  ", "bo@shop.example", ""},
		{"first.last+tag@sub.example.org", "first.last+tag@sub.example.org", ""},
		{"", "", CodeRequired},
		{"no-at-sign", "", CodeInvalid},
		{"ann@localhost", "", CodeInvalid}, // no dot in the domain
		{"ann@.example.com", "", CodeInvalid},
		{"Ann <ann@example.com>", "", CodeInvalid},
		{"a@b@example.com", "", CodeInvalid},
		// What the contract's format (email, RFC 5321) refuses, though
		// mail.ParseAddress reads it (found by FuzzAPI).
		{"r@e.}", "", CodeInvalid},
		{"ann@ex_ample.com", "", CodeInvalid},
		{"ann@-example.com", "", CodeInvalid},
		{"jörg@example.com", "", CodeInvalid},
		{"ann@münchen.example", "", CodeInvalid},
		{"\"ann lee\"@example.com", "", CodeInvalid},
		{strings.Repeat("a", 65) + "@example.com", "", CodeInvalid},
		{"o'brien+shop@mail-1.example.co.uk", "o'brien+shop@mail-1.example.co.uk", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var r rules
			got := r.email("email", tt.in)
			if tt.wantCode == "" {
				if len(r.errs) != 0 || got != tt.want {
					t.Errorf("email(%q) = %q, errors %v; want %q", tt.in, got, r.errs, tt.want)
				}
				return
			}
			if len(r.errs) != 1 || r.errs[0].Code != tt.wantCode {
				t.Errorf("email(%q) errors %v, want one %s", tt.in, r.errs, tt.wantCode)
			}
		})
	}
}

func TestPhoneIsStoredInE164(t *testing.T) {
	tests := []struct {
		region, in, want string
		valid            bool
	}{
		{"", "+49 30 1234567", "+49301234567", true},
		{"", "+1 (415) 555-0100", "+14155550100", true},
		{"DE", "030 1234567", "+49301234567", true}, // national format with a default region
		{"", "030 1234567", "", false},              // national format without one
		{"", "+1 555", "", false},
		{"", "call me", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.region+" "+tt.in, func(t *testing.T) {
			r := rules{phoneRegion: tt.region}
			got := r.phone("phone", &tt.in)
			if tt.valid != (len(r.errs) == 0) {
				t.Fatalf("phone(%q) errors %v, want valid=%v", tt.in, r.errs, tt.valid)
			}
			if tt.valid && (got == nil || *got != tt.want) {
				t.Errorf("phone(%q) = %v, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestLanguageCodeIsCanonicalBCP47(t *testing.T) {
	for in, want := range map[string]string{"": "en", "de": "de", "pt-br": "pt-BR", "zh-hant-tw": "zh-Hant-TW"} {
		var r rules
		if got := r.languageCode("language_code", in); got != want || len(r.errs) != 0 {
			t.Errorf("languageCode(%q) = %q %v, want %q", in, got, r.errs, want)
		}
	}
	var r rules
	r.languageCode("language_code", "english please")
	if len(r.errs) != 1 {
		t.Errorf("an invalid tag was accepted")
	}
}

func TestNullableTellsAbsentFromNullFromValue(t *testing.T) {
	var in UpdateInput
	if err := json.Unmarshal([]byte(`{"phone": null, "external_reference": "X"}`), &in); err != nil {
		t.Fatal(err)
	}
	if !in.Phone.Set || in.Phone.Value != nil {
		t.Errorf("phone: null should be set and nil, got %+v", in.Phone)
	}
	if !in.ExternalReference.Set || in.ExternalReference.Value == nil || *in.ExternalReference.Value != "X" {
		t.Errorf("external_reference: got %+v", in.ExternalReference)
	}
	var empty UpdateInput
	_ = json.Unmarshal([]byte(`{}`), &empty)
	if empty.Phone.Set || empty.ExternalReference.Set {
		t.Error("absent fields must not be set")
	}
}

func TestChangedFieldsNamesOnlyPublicDifferences(t *testing.T) {
	a := Customer{Email: "a@b.co", Metadata: map[string]string{"k": "v"}, PrivateMetadata: map[string]string{"p": "1"}}
	b := a
	b.PrivateMetadata = map[string]string{"p": "2"}
	if got := changedFields(a, b); len(got) != 0 {
		t.Errorf("private metadata leaked into changed: %v", got)
	}
	b.Metadata = map[string]string{"k": "w"}
	b.Note = "n"
	if got := changedFields(a, b); len(got) != 2 || got[0] != "note" || got[1] != "metadata" {
		t.Errorf("changed = %v, want [note metadata]", got)
	}
}
