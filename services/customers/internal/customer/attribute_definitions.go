package customer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// Sentinel errors of attribute definitions.
var (
	ErrAttributeNotFound = errors.New("customer attribute not defined")
	ErrAttributeExists   = errors.New("customer attribute already defined")
	// ErrDefinitionsChanged: the definitions a new customer was checked
	// against changed before it was written; nothing was, and it is
	// checked again.
	ErrDefinitionsChanged = errors.New("customer attribute definitions changed meanwhile")
)

// CodeBreaksValues refuses a definition change that stored values break.
const CodeBreaksValues = "breaks_values"

// ValuesBrokenError refuses a definition change (or deletion) that the
// values customers hold already would break; Affected is how many
// customers.
type ValuesBrokenError struct {
	FieldError
	Affected int64
}

func (e *ValuesBrokenError) Error() string { return e.Field + ": " + e.Message }

// AttributeValues reads the stored values of one attribute, and the
// definitions, inside the transaction of a definition change.
type AttributeValues interface {
	// Values are every customer's value of the attribute.
	Values(ctx context.Context) ([]json.RawMessage, error)
	// CountMissing counts the customers without a value.
	CountMissing(ctx context.Context) (int64, error)
	// CountDefinitions counts the definitions, and keeps every other
	// change that counts them waiting until this one commits: two new
	// definitions at once cannot both pass the limit.
	CountDefinitions(ctx context.Context) (int64, error)
}

// AttributeChange is what a definition change decides: the definition to
// write (nil deletes it) and its event.
type AttributeChange struct {
	Definition *AttributeDefinition
	Event      cloudevents.Event
	// Reindex: the value tables' rows of the attribute are to be made
	// anew (indexed or type changed, or the definition is gone).
	Reindex bool
}

// AttributeStore keeps the attribute definitions.
type AttributeStore interface {
	// AttributeDefinitions reads every definition.
	AttributeDefinitions(ctx context.Context) (Definitions, error)
	// HeldAttributeDefinitions returns the definitions as this instance
	// last read them (current: as they are now), and their version, for a
	// create that the store refuses with ErrDefinitionsChanged if they are
	// no longer current.
	HeldAttributeDefinitions(ctx context.Context, current bool) (Definitions, int64, error)
	// ChangeAttribute locks the definition of key (cur nil when there is
	// none), lets fn decide the change with the stored values at hand, and
	// writes it with its event, reindexing the values when the definition
	// is or was indexed. ErrAttributeExists when a definition of key was
	// created concurrently.
	ChangeAttribute(ctx context.Context, key string, fn func(cur *AttributeDefinition, vals AttributeValues) (*AttributeChange, error)) error
}

// AttributeDefinitionInput defines an attribute (POST) or changes one
// (PATCH: the fields present change; key cannot).
type AttributeDefinitionInput struct {
	Key               *string               `json:"key"`
	Label             *string               `json:"label"`
	Type              *string               `json:"type"`
	MaxLength         Nullable[int]         `json:"max_length"`
	Pattern           Nullable[string]      `json:"pattern"`
	Min               Nullable[json.Number] `json:"min"`
	Max               Nullable[json.Number] `json:"max"`
	Values            *[]string             `json:"values"`
	Required          *bool                 `json:"required"`
	Storefront        *bool                 `json:"storefront"`
	VisibleToCustomer *bool                 `json:"visible_to_customer"`
	Indexed           *bool                 `json:"indexed"`
}

// AttributeDefinitions lists the definitions, by key.
func (s *Service) AttributeDefinitions(ctx context.Context) ([]AttributeDefinition, error) {
	defs, err := s.store.AttributeDefinitions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]AttributeDefinition, 0, len(defs))
	for _, k := range slices.Sorted(maps.Keys(defs)) {
		out = append(out, defs[k])
	}
	return out, nil
}

// AttributeDefinition reads one definition.
func (s *Service) AttributeDefinition(ctx context.Context, key string) (AttributeDefinition, error) {
	defs, err := s.store.AttributeDefinitions(ctx)
	if err != nil {
		return AttributeDefinition{}, err
	}
	d, ok := defs[key]
	if !ok {
		return AttributeDefinition{}, ErrAttributeNotFound
	}
	return d, nil
}

// DefineAttribute creates a definition: customer_attribute.defined. A
// required one is refused while customers exist (none of them has a
// value): define it optional, fill it in, then make it required.
func (s *Service) DefineAttribute(ctx context.Context, o Origin, in AttributeDefinitionInput) (AttributeDefinition, error) {
	var r rules
	if in.Key == nil {
		r.fail("key", CodeRequired, "key is required")
	} else if k := *in.Key; len(k) > MaxAttributeKeyLength || !attributeKeyPattern.MatchString(k) {
		r.fail("key", CodeInvalid, "key must be 1 to %d characters of a-z, 0-9 and _, starting with a letter", MaxAttributeKeyLength)
	}
	for field, missing := range map[string]bool{"label": in.Label == nil, "type": in.Type == nil} {
		if missing {
			r.fail(field, CodeRequired, "%s is required", field)
		}
	}
	if err := r.err(); err != nil {
		return AttributeDefinition{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return AttributeDefinition{}, fmt.Errorf("define attribute: %w", err)
	}
	now := s.now()
	var out AttributeDefinition
	err = s.store.ChangeAttribute(ctx, *in.Key, func(cur *AttributeDefinition, vals AttributeValues) (*AttributeChange, error) {
		if cur != nil {
			return nil, ErrAttributeExists
		}
		n, err := vals.CountDefinitions(ctx)
		if err != nil {
			return nil, err
		}
		if n >= MaxAttributeDefinitions {
			return nil, FieldErr("key", CodeTooMany, "there are %d attribute definitions already, the most there may be", MaxAttributeDefinitions)
		}
		d := AttributeDefinition{ID: id, Key: *in.Key, Version: 1, CreatedAt: now, UpdatedAt: now}
		if err := applyDefinition(&d, in); err != nil {
			return nil, err
		}
		if err := checkValues(ctx, d, vals); err != nil {
			return nil, err
		}
		ev, err := attributeEvent(o, events.CustomerAttributeDefined, d, now, d)
		if err != nil {
			return nil, err
		}
		out = d
		return &AttributeChange{Definition: &d, Event: ev, Reindex: d.Indexed}, nil
	})
	return out, err
}

// UpdateAttribute changes a definition: customer_attribute.updated. A
// change that the stored values break (a narrower bound, an enum value
// taken away, a new pattern or type they do not meet, required while some
// customers have no value) is refused with the count of customers
// affected, and changes nothing.
func (s *Service) UpdateAttribute(ctx context.Context, o Origin, key string, in AttributeDefinitionInput) (AttributeDefinition, error) {
	if in.Key != nil && *in.Key != key {
		return AttributeDefinition{}, FieldErr("key", CodeInvalid, "key cannot change; define a new attribute instead")
	}
	var out AttributeDefinition
	err := s.store.ChangeAttribute(ctx, key, func(cur *AttributeDefinition, vals AttributeValues) (*AttributeChange, error) {
		if cur == nil {
			return nil, ErrAttributeNotFound
		}
		next := *cur
		if err := applyDefinition(&next, in); err != nil {
			return nil, err
		}
		changed := changedDefinition(*cur, next)
		if len(changed) == 0 {
			out = *cur
			return nil, nil
		}
		// Reading every value takes a while on a large store: only a change
		// of what values may be reads them.
		if slices.ContainsFunc(changed, func(f string) bool { return slices.Contains(valueRules, f) }) {
			if err := checkValues(ctx, next, vals); err != nil {
				return nil, err
			}
		}
		next.Version, next.UpdatedAt = cur.Version+1, s.now()
		ev, err := attributeEvent(o, events.CustomerAttributeUpdated, next, next.UpdatedAt,
			events.AttributeDefinitionUpdatedData{AttributeDefinition: next, Changed: changed})
		if err != nil {
			return nil, err
		}
		out = next
		return &AttributeChange{Definition: &next, Event: ev,
			Reindex: slices.Contains(changed, "type") || slices.Contains(changed, "indexed")}, nil
	})
	return out, err
}

// DeleteAttribute deletes a definition: customer_attribute.deleted. It is
// refused while customers hold a value (remove the values first): a value
// without its definition could be neither checked nor shown safely.
func (s *Service) DeleteAttribute(ctx context.Context, o Origin, key string) error {
	return s.store.ChangeAttribute(ctx, key, func(cur *AttributeDefinition, vals AttributeValues) (*AttributeChange, error) {
		if cur == nil {
			return nil, ErrAttributeNotFound
		}
		held, err := vals.Values(ctx)
		if err != nil {
			return nil, err
		}
		if n := len(held); n > 0 {
			return nil, &ValuesBrokenError{Affected: int64(n), FieldError: FieldError{Field: "key", Code: CodeBreaksValues,
				Message: fmt.Sprintf("%d customers have a value of %s; remove the values before deleting the definition", n, key)}}
		}
		now := s.now()
		gone := *cur
		gone.Version++
		ev, err := attributeEvent(o, events.CustomerAttributeDeleted, gone, now,
			events.AttributeDefinitionDeletedData{ID: cur.ID, Key: cur.Key, DeletedAt: now})
		if err != nil {
			return nil, err
		}
		return &AttributeChange{Event: ev, Reindex: cur.Indexed}, nil
	})
}

// valueRules are the fields of a definition that say which values are
// valid.
var valueRules = []string{"type", "max_length", "pattern", "min", "max", "values", "required"}

// applyDefinition applies the fields given to d and checks the result.
func applyDefinition(d *AttributeDefinition, in AttributeDefinitionInput) error {
	var r rules
	if in.Label != nil {
		d.Label = r.requiredText("label", *in.Label, MaxAttributeLabelLength)
	}
	if in.Type != nil {
		if !slices.Contains(AttributeTypes, *in.Type) {
			r.fail("type", CodeInvalid, "type must be one of %s", strings.Join(AttributeTypes, ", "))
		}
		if d.Type != "" && d.Type != *in.Type {
			// Another type's rules go with it; those given anew apply.
			d.MaxLength, d.Pattern, d.Min, d.Max, d.Values = nil, nil, nil, nil, nil
		}
		d.Type = *in.Type
	}
	if in.MaxLength.Set {
		d.MaxLength = in.MaxLength.Value
	}
	if in.Pattern.Set {
		d.Pattern = in.Pattern.Value
	}
	if in.Min.Set {
		d.Min = in.Min.Value
	}
	if in.Max.Set {
		d.Max = in.Max.Value
	}
	if in.Values != nil {
		d.Values = *in.Values
	}
	for dst, v := range map[*bool]*bool{&d.Required: in.Required, &d.Storefront: in.Storefront, &d.VisibleToCustomer: in.VisibleToCustomer, &d.Indexed: in.Indexed} {
		if v != nil {
			*dst = *v
		}
	}
	r.definitionRules(d)
	return r.err()
}

// definitionRules checks that d's rules fit its type.
func (r *rules) definitionRules(d *AttributeDefinition) {
	only := func(field string, set bool, types ...string) {
		if set && !slices.Contains(types, d.Type) {
			r.fail(field, CodeInvalid, "%s applies only to attributes of type %s", field, strings.Join(types, " or "))
		}
	}
	only("max_length", d.MaxLength != nil, AttrString)
	only("pattern", d.Pattern != nil, AttrString)
	only("min", d.Min != nil, AttrInteger, AttrDecimal)
	only("max", d.Max != nil, AttrInteger, AttrDecimal)
	only("values", len(d.Values) > 0, AttrEnum)
	if n := d.MaxLength; n != nil && (*n < 1 || *n > MaxAttributeTextLength) {
		r.fail("max_length", CodeInvalid, "max_length must be between 1 and %d", MaxAttributeTextLength)
	}
	if d.Indexed && d.Type == AttrString && cmpOr(d.MaxLength, MaxAttributeTextLength) > MaxIndexedTextLength {
		r.fail("max_length", CodeInvalid, "an indexed string attribute needs a max_length of at most %d: an index entry holds about 2,700 bytes", MaxIndexedTextLength)
	}
	if p := d.Pattern; p != nil {
		if _, err := regexp.Compile(*p); err != nil || len(*p) > MaxAttributePattern || !Storable(*p) {
			r.fail("pattern", CodeInvalid, "pattern must be a regular expression (RE2 syntax) of at most %d characters", MaxAttributePattern)
		}
	}
	bound := AttributeDefinition{Type: d.Type}
	for field, n := range map[string]*json.Number{"min": d.Min, "max": d.Max} {
		if n != nil {
			r.numberValue(field, bound, json.RawMessage(n.String()))
		}
	}
	if lo, hi := rat(d.Min), rat(d.Max); lo != nil && hi != nil && lo.Cmp(hi) > 0 {
		r.fail("min", CodeInvalid, "min must not be greater than max")
	}
	if d.Type == AttrEnum {
		switch {
		case len(d.Values) == 0:
			r.fail("values", CodeRequired, "an enum needs its values")
		case len(d.Values) > MaxEnumValues:
			r.fail("values", CodeTooMany, "an enum may have at most %d values", MaxEnumValues)
		}
		seen := map[string]bool{}
		for i, v := range d.Values {
			if strings.TrimSpace(v) != v || v == "" || !Storable(v) || utf8.RuneCountInString(v) > MaxAttributeLabelLength || seen[v] {
				r.fail(fmt.Sprintf("values[%d]", i), CodeInvalid, "enum values must be distinct, non-empty, untrimmed text of at most %d characters", MaxAttributeLabelLength)
			}
			seen[v] = true
		}
	}
	if d.Storefront && !d.VisibleToCustomer {
		r.fail("storefront", CodeInvalid, "an attribute customers may set must be visible_to_customer too")
	}
}

// checkValues refuses d when values customers hold already break it.
func checkValues(ctx context.Context, d AttributeDefinition, vals AttributeValues) error {
	held, err := vals.Values(ctx)
	if err != nil {
		return err
	}
	defs := Definitions{d.Key: d}
	var broken int64
	example := ""
	for _, v := range held {
		var r rules
		if r.attributeValue("attributes", defs, d.Key, v); len(r.errs) > 0 {
			broken++
			if example == "" {
				example = r.errs[0].Message
			}
		}
	}
	if broken > 0 {
		return &ValuesBrokenError{Affected: broken, FieldError: FieldError{Field: "type", Code: CodeBreaksValues,
			Message: fmt.Sprintf("%d customers have values this definition refuses (e.g. %s); change or remove them first", broken, example)}}
	}
	if d.Required {
		missing, err := vals.CountMissing(ctx)
		if err != nil {
			return err
		}
		if missing > 0 {
			return &ValuesBrokenError{Affected: missing, FieldError: FieldError{Field: "required", Code: CodeBreaksValues,
				Message: fmt.Sprintf("%d customers have no value of %s; give them one before making it required", missing, d.Key)}}
		}
	}
	return nil
}

// changedDefinition names the fields of a definition that differ.
func changedDefinition(a, b AttributeDefinition) []string {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var ma, mb map[string]json.RawMessage
	_ = json.Unmarshal(ja, &ma)
	_ = json.Unmarshal(jb, &mb)
	var out []string
	for _, k := range []string{"label", "type", "max_length", "pattern", "min", "max", "values", "required", "storefront", "visible_to_customer", "indexed"} {
		if string(ma[k]) != string(mb[k]) {
			out = append(out, k)
		}
	}
	return out
}

func attributeEvent(o Origin, typ string, d AttributeDefinition, at time.Time, data any) (cloudevents.Event, error) {
	return resourceEvent(o, typ, d.ID, d.Version, at, data)
}
