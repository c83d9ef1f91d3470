package customer

import (
	"maps"
	"slices"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// MergeFields are the fields whose value a merge may take from the source
// (override); every other comes from the target, or from the source where
// the target has none.
var MergeFields = []string{
	"email", "first_name", "last_name", "phone", "company_name",
	"default_shipping_address", "default_billing_address", "note",
}

// Merged is the target after the source is merged into it, with its
// events: customer.merged, then customer.updated naming what changed (when
// anything did), each taking a version. fromSource names the MergeFields
// taken from the source. The rest:
//   - metadata and private metadata: the target's keys, and the source's
//     the target lacks;
//   - groups: both customers';
//   - external reference: the target's, else the source's;
//   - each consent: the one changed last;
//   - credentials: the account that has a password keeps it (the target's
//     when both do), with its verification;
//   - default addresses: the target's, else the source's (its addresses
//     move to the target).
func Merged(o Origin, target, source Customer, fromSource map[string]bool, now time.Time) (*Mutation, error) {
	next := target
	pick := func(field string, dst *string, src string) {
		if fromSource[field] {
			*dst = src
		}
	}
	pick("email", &next.Email, source.Email)
	pick("first_name", &next.FirstName, source.FirstName)
	pick("last_name", &next.LastName, source.LastName)
	pick("company_name", &next.CompanyName, source.CompanyName)
	pick("note", &next.Note, source.Note)
	if fromSource["phone"] {
		next.Phone = source.Phone
	}
	next.DefaultShippingAddressID = defaultAddress(fromSource["default_shipping_address"], target.DefaultShippingAddressID, source.DefaultShippingAddressID)
	next.DefaultBillingAddressID = defaultAddress(fromSource["default_billing_address"], target.DefaultBillingAddressID, source.DefaultBillingAddressID)
	if next.ExternalReference == nil {
		next.ExternalReference = source.ExternalReference
	}
	next.Metadata = lacking(target.Metadata, source.Metadata)
	next.PrivateMetadata = lacking(target.PrivateMetadata, source.PrivateMetadata)
	next.Attributes = lacking(target.Attributes, source.Attributes)
	next.Groups = SortIDs(union(target.Groups, source.Groups))
	next.EmailConsent = later(target.EmailConsent, source.EmailConsent)
	next.SMSConsent = later(target.SMSConsent, source.SMSConsent)
	if target.PasswordHash == "" && source.PasswordHash != "" {
		next.PasswordHash, next.HasAccount, next.IsVerified = source.PasswordHash, true, source.IsVerified
	}
	next.UpdatedAt = now
	next.Version = target.Version + 1
	merged, err := newEvent(o, events.CustomerMerged, next, now, events.CustomerMergedData{ID: target.ID, MergedID: source.ID, MergedAt: now})
	if err != nil {
		return nil, err
	}
	m := &Mutation{Customer: next, Events: []cloudevents.Event{merged}}
	changed := changedFields(target, next)
	for _, f := range []struct {
		name   string
		differ bool
	}{
		{"default_shipping_address_id", !equalPtrID(target.DefaultShippingAddressID, next.DefaultShippingAddressID)},
		{"default_billing_address_id", !equalPtrID(target.DefaultBillingAddressID, next.DefaultBillingAddressID)},
		{"groups", !slices.Equal(target.Groups, next.Groups)},
		{"has_account", target.HasAccount != next.HasAccount},
		{"is_verified", target.IsVerified != next.IsVerified},
		{"email_marketing_consent", !target.EmailConsent.Equal(next.EmailConsent)},
		{"sms_marketing_consent", !target.SMSConsent.Equal(next.SMSConsent)},
	} {
		if f.differ {
			changed = append(changed, f.name)
		}
	}
	if len(changed) > 0 {
		m.Customer.Version++
		updated, err := newEvent(o, events.CustomerUpdated, m.Customer, now, events.CustomerUpdatedData{Customer: m.Customer.Public(), Changed: changed})
		if err != nil {
			return nil, err
		}
		m.Events = append(m.Events, updated)
	}
	return m, nil
}

func defaultAddress(fromSource bool, target, source *uuid.UUID) *uuid.UUID {
	if fromSource || target == nil {
		if source != nil {
			return source
		}
	}
	return target
}

// lacking is target with the keys of source it lacks.
func lacking[M ~map[string]V, V any](target, source M) M {
	out := maps.Clone(target)
	if out == nil {
		out = M{}
	}
	for k, v := range source {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	return out
}

func union(a, b []uuid.UUID) []uuid.UUID {
	out := slices.Clone(a)
	for _, id := range b {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return nonNilIDs(out)
}

// later is the consent changed last (one never set is the oldest).
func later(target, source Consent) Consent {
	if source.UpdatedAt != nil && (target.UpdatedAt == nil || source.UpdatedAt.After(*target.UpdatedAt)) {
		return source
	}
	return target
}

// MergedError is ErrNotFound for the id of a customer merged into another:
// Into is the customer it lives on in.
type MergedError struct{ Into uuid.UUID }

func (e *MergedError) Error() string { return "customer merged into " + e.Into.String() }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *MergedError) Is(target error) bool { return target == ErrNotFound }
