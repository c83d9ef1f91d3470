package problem

import (
	"errors"
	"testing"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// encoding/json matches keys to fields in any case, and reads times with
// a one-digit hour; DecodeJSON takes only the names as written and RFC
// 3339 (found by FuzzAPI: {"emAil": …} registered).
func TestDecodeJSONRefusesKeysInAnotherCaseAndLooseTimes(t *testing.T) {
	type target struct {
		ID string `json:"id"`
	}
	type command struct {
		target
		customer.UpdateInput
	}
	tests := []struct {
		name, body string
		dst        any
		field      string // "" when accepted
	}{
		{"top level", `{"EMAIL":"ann@example.com"}`, new(customer.CreateInput), "EMAIL"},
		{"both cases", `{"email":"ann@example.com","Email":"bo@example.com"}`, new(customer.CreateInput), "Email"},
		{"nested in a list", `{"email":"a@b.co","addresses":[{"country":"DE"},{"City":"Berlin"}]}`, new(customer.CreateInput), "City"},
		{"of an embedded struct", `{"Id":"x","first_name":"Ann"}`, new(command), "Id"},
		{"behind Nullable", `{"phone":null,"Phone":"1"}`, new(customer.UpdateInput), "Phone"},
		{"metadata keys are free", `{"email":"a@b.co","metadata":{"Tier":"Gold"}}`, new(customer.CreateInput), ""},
		{"an embedded struct's fields", `{"id":"x","first_name":"Ann","phone":null}`, new(command), ""},
		{"null lists and objects", `{"email":"a@b.co","addresses":null,"metadata":null}`, new(customer.CreateInput), ""},
		{"a time with a one-digit hour", `{"email":"a@b.co","created_at":"2025-03-14T9:09:26Z"}`, new(customer.ImportRow), "created_at"},
		{"a time", `{"email":"a@b.co","created_at":"2025-03-14T09:09:26.5+01:00"}`, new(customer.ImportRow), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DecodeJSON([]byte(tt.body), 1<<10, tt.dst)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ie *inputError
			if !errors.As(err, &ie) || ie.errs[0].Field != tt.field {
				t.Fatalf("error %v, want one about %s", err, tt.field)
			}
		})
	}
}
