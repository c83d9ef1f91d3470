package customer

import (
	"context"
	"maps"
	"slices"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// MetadataInput sets and removes metadata keys in one call.
type MetadataInput struct {
	Set    map[string]string `json:"set"`
	Remove []string          `json:"remove"`
}

// UpdateMetadata applies a MetadataInput to the public metadata (private is
// false) or the private metadata. A public change bumps the version and emits
// customer.metadata_updated; a private one is saved silently, as in Update.
func (s *Service) UpdateMetadata(ctx context.Context, o Origin, id uuid.UUID, private bool, in MetadataInput) (Customer, error) {
	field := "metadata"
	if private {
		field = "private_metadata"
	}
	var r rules
	for _, k := range in.Remove {
		if _, both := in.Set[k]; both {
			r.fail("remove", CodeInvalid, "key %q is both set and removed", k)
		}
	}
	if len(in.Set) == 0 && len(in.Remove) == 0 {
		r.fail("set", CodeRequired, "give keys to set or remove")
	}
	if err := r.err(); err != nil {
		return Customer{}, err
	}
	return update(ctx, s.store, id, func(cur Customer) (*Mutation, error) {
		current := cur.Metadata
		if private {
			current = cur.PrivateMetadata
		}
		merged := maps.Clone(current)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, in.Set)
		for _, k := range in.Remove {
			delete(merged, k)
		}
		var r rules
		merged = r.metadata(field, merged)
		if err := r.err(); err != nil {
			return nil, err
		}
		changed := changedKeys(current, merged)
		if len(changed) == 0 {
			return nil, nil
		}
		next := cur
		next.UpdatedAt = s.now()
		if private {
			next.PrivateMetadata = merged
			return &Mutation{Customer: next}, nil
		}
		next.Metadata = merged
		next.Version = cur.Version + 1
		ev, err := newEvent(o, events.CustomerMetadataUpdated, next, next.UpdatedAt, events.CustomerMetadataUpdatedData{
			ID: next.ID, Metadata: merged, ChangedKeys: changed, Version: next.Version, UpdatedAt: next.UpdatedAt,
		})
		if err != nil {
			return nil, err
		}
		return &Mutation{Customer: next, Events: []cloudevents.Event{ev}}, nil
	})
}

// changedKeys lists, sorted, the keys whose presence or value differs.
func changedKeys(a, b map[string]string) []string {
	var out []string
	for k, v := range b {
		if old, ok := a[k]; !ok || old != v {
			out = append(out, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
