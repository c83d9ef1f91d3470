package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// AttributeDefinitions reads every attribute definition: the instance's
// copy while the definitions' version is the one it was read at, which
// costs one read of one row instead of every definition. Callers get a
// map of their own (some narrow it to the storefront's).
func (s *Store) AttributeDefinitions(ctx context.Context) (customer.Definitions, error) {
	return s.defs.get(ctx, s.q)
}

// HeldAttributeDefinitions returns the instance's copy of the definitions
// and the version it was read at without reading the version (the copy is
// read when there is none, or when current asks for the current ones). A
// create given that version (NewCustomer.DefinitionsVersion) is refused
// with customer.ErrDefinitionsChanged if they changed meanwhile, and the
// copy is dropped: a create costs no read of the version at all.
func (s *Store) HeldAttributeDefinitions(ctx context.Context, current bool) (customer.Definitions, int64, error) {
	if current {
		return s.defs.read(ctx, s.q)
	}
	return s.defs.held(ctx, s.q)
}

// definitionsCache is an instance's copy of the attribute definitions and
// the version of them it read.
type definitionsCache struct {
	mu      sync.Mutex
	version int64
	defs    customer.Definitions // nil: not read yet
}

func (c *definitionsCache) get(ctx context.Context, q *gen.Queries) (customer.Definitions, error) {
	defs, _, err := c.read(ctx, q)
	return defs, err
}

// held returns the definitions the instance holds without reading their
// version, or reads them when it holds none.
func (c *definitionsCache) held(ctx context.Context, q *gen.Queries) (customer.Definitions, int64, error) {
	c.mu.Lock()
	if c.defs != nil {
		defer c.mu.Unlock()
		return maps.Clone(c.defs), c.version, nil
	}
	c.mu.Unlock()
	return c.read(ctx, q)
}

// forget drops the definitions held at version, which a write found
// outdated, so that the next use reads them again.
func (c *definitionsCache) forget(version int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version == version {
		c.defs = nil
	}
}

// read returns the current definitions and their version, reading the
// definitions themselves only when the version moved.
func (c *definitionsCache) read(ctx context.Context, q *gen.Queries) (customer.Definitions, int64, error) {
	// The version is read before the definitions: a change committing
	// between the two reads leaves newer definitions under an older
	// version, read again next time; the other order could keep old
	// definitions under the new version for good.
	version, err := q.AttributeDefinitionsVersion(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("store: attribute definitions version: %w", err)
	}
	c.mu.Lock()
	if c.defs != nil && c.version == version {
		defer c.mu.Unlock()
		return maps.Clone(c.defs), version, nil
	}
	c.mu.Unlock()
	defs, err := definitions(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Of two concurrent reloads the one of the newer version stays.
	if c.defs == nil || version >= c.version {
		c.version, c.defs = version, maps.Clone(defs)
	}
	return defs, version, nil
}

func definitions(ctx context.Context, q *gen.Queries) (customer.Definitions, error) {
	rows, err := q.ListAttributeDefinitions(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: attribute definitions: %w", err)
	}
	defs := make(customer.Definitions, len(rows))
	for _, r := range rows {
		d, err := fromDefinitionRow(r)
		if err != nil {
			return nil, err
		}
		defs[d.Key] = d
	}
	return defs, nil
}

// ChangeAttribute locks the definition, lets fn decide, and writes the
// change, its event and the attribute's rows of the value tables in one
// transaction.
func (s *Store) ChangeAttribute(ctx context.Context, key string, fn func(*customer.AttributeDefinition, customer.AttributeValues) (*customer.AttributeChange, error)) error {
	return s.write(ctx, uuid.Nil, func(q *gen.Queries) error {
		var cur *customer.AttributeDefinition
		row, err := q.GetAttributeDefinitionForUpdate(ctx, key)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("store: lock attribute definition: %w", err)
		default:
			d, err := fromDefinitionRow(row)
			if err != nil {
				return err
			}
			cur = &d
		}
		change, err := fn(cur, attributeValues{q: q, key: key})
		if err != nil || change == nil {
			return err
		}
		if err := writeDefinition(ctx, q, cur, change.Definition); err != nil {
			return err
		}
		// The value tables hold the values of indexed attributes, in the
		// table of their definition's kind: made anew when that changes.
		if change.Reindex {
			if err := q.DeleteAttributeIndex(ctx, key); err != nil {
				return fmt.Errorf("store: drop attribute index: %w", err)
			}
			if err := q.IndexAttributeValues(ctx, gen.IndexAttributeValuesParams{Key: &key}); err != nil {
				return fmt.Errorf("store: reindex attribute: %w", err)
			}
		}
		// Last, so that the row stays locked only briefly: every
		// instance reads the definitions again on its next write.
		if err := q.BumpAttributeDefinitionsVersion(ctx); err != nil {
			return fmt.Errorf("store: bump attribute definitions version: %w", err)
		}
		return writeOutbox(ctx, q, []cloudevents.Event{change.Event})
	})
}

// writeDefinition inserts, updates or deletes the definition: next nil
// deletes cur.
func writeDefinition(ctx context.Context, q *gen.Queries, cur, next *customer.AttributeDefinition) error {
	if next == nil {
		if err := q.DeleteAttributeDefinition(ctx, cur.ID); err != nil {
			return fmt.Errorf("store: delete attribute definition: %w", err)
		}
		return nil
	}
	doc, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("store: attribute definition: %w", err)
	}
	if cur != nil {
		if err := q.UpdateAttributeDefinition(ctx, gen.UpdateAttributeDefinitionParams{
			ID: next.ID, Type: next.Type, Definition: doc, Indexed: next.Indexed, Version: next.Version, UpdatedAt: next.UpdatedAt,
		}); err != nil {
			return fmt.Errorf("store: update attribute definition: %w", err)
		}
		return nil
	}
	n, err := q.InsertAttributeDefinition(ctx, gen.InsertAttributeDefinitionParams{
		ID: next.ID, Key: next.Key, Type: next.Type, Definition: doc, Indexed: next.Indexed,
		Version: next.Version, CreatedAt: next.CreatedAt, UpdatedAt: next.UpdatedAt,
	})
	if err != nil {
		return fmt.Errorf("store: insert attribute definition: %w", err)
	}
	if n == 0 {
		return customer.ErrAttributeExists
	}
	return nil
}

// fromDefinitionRow reads a definition: its document, with the columns
// the store keeps apart authoritative.
func fromDefinitionRow(r gen.CustomerAttributeDefinition) (customer.AttributeDefinition, error) {
	var d customer.AttributeDefinition
	if err := json.Unmarshal(r.Definition, &d); err != nil {
		return d, fmt.Errorf("store: attribute definition %s: %w", r.Key, err)
	}
	d.ID, d.Key, d.Type, d.Indexed, d.Version = r.ID, r.Key, r.Type, r.Indexed, r.Version
	d.CreatedAt, d.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return d, nil
}

// attributeValues reads one attribute's stored values in a definition
// change's transaction.
type attributeValues struct {
	q   *gen.Queries
	key string
}

func (v attributeValues) Values(ctx context.Context) ([]json.RawMessage, error) {
	rows, err := v.q.AttributeValues(ctx, v.key)
	if err != nil {
		return nil, fmt.Errorf("store: attribute values: %w", err)
	}
	out := make([]json.RawMessage, len(rows))
	for i, r := range rows {
		out[i] = r
	}
	return out, nil
}

func (v attributeValues) CountMissing(ctx context.Context) (int64, error) {
	n, err := v.q.CountCustomersWithoutAttribute(ctx, v.key)
	if err != nil {
		return 0, fmt.Errorf("store: count customers without attribute: %w", err)
	}
	return n, nil
}

func (v attributeValues) CountDefinitions(ctx context.Context) (int64, error) {
	if err := v.q.LockAttributeDefinitionCount(ctx); err != nil {
		return 0, fmt.Errorf("store: lock attribute definitions: %w", err)
	}
	n, err := v.q.CountAttributeDefinitions(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: count attribute definitions: %w", err)
	}
	return n, nil
}

// indexAttributes copies a new customer's values of indexed attributes
// into the value tables that the list's filters read.
func indexAttributes(ctx context.Context, q *gen.Queries, c customer.Customer) error {
	if len(c.Attributes) == 0 {
		return nil
	}
	if err := q.IndexAttributeValues(ctx, gen.IndexAttributeValuesParams{Ids: []uuid.UUID{c.ID}}); err != nil {
		return fmt.Errorf("store: index attributes: %w", err)
	}
	return nil
}

// reindexAttributes replaces a customer's rows of the value tables after its
// attributes changed.
func reindexAttributes(ctx context.Context, q *gen.Queries, c customer.Customer) error {
	if err := q.DeleteCustomerAttributeValues(ctx, []uuid.UUID{c.ID}); err != nil {
		return fmt.Errorf("store: unindex attributes: %w", err)
	}
	return indexAttributes(ctx, q, c)
}

// attributesOf decodes the attributes column; '{}' without reflection, as
// metadataOf.
func attributesOf(raw []byte) (customer.Attributes, error) {
	if string(raw) == "{}" {
		return customer.Attributes{}, nil
	}
	var a customer.Attributes
	err := json.Unmarshal(raw, &a)
	return a, err
}

func nonNilAttributes(a customer.Attributes) customer.Attributes {
	if a == nil {
		return customer.Attributes{}
	}
	return a
}

// attributeSlots is how many filters of each kind the list and count
// queries join as slots, any of which the planner may start from; the
// others are tested on each customer the slots let through.
const attributeSlots = 2

// textSlot and rangeSlot are attribute filters as slots' parameters (a nil
// key: no filter in the slot).
type textSlot struct{ key, value *string }

type rangeSlot[T any] struct {
	key      *string
	min, max *T
}

// attributeQuery is the attribute filters as the queries take them: the
// first of each kind in slots (as many as the query has), the others in
// their kind's arrays, one entry per filter ("" does not bound).
type attributeQuery struct {
	texts                               [attributeSlots]textSlot
	numbers                             [attributeSlots]rangeSlot[string]
	times                               [attributeSlots]rangeSlot[time.Time]
	textKeys, textValues                []string
	numberKeys, numberMins, numberMaxes []string
	timeKeys, timeMins, timeMaxes       []string
}

// The kinds of indexed value, each with its table (the names
// CountCustomersByOneAttribute takes as its kind).
const (
	kindText   = "text"
	kindNumber = "number"
	kindTime   = "time"
)

// valueKind is the kind of value a filter tests: a text equality, a
// number range, or else an instant range.
func valueKind(f customer.AttributeFilter) string {
	switch {
	case f.Text != nil:
		return kindText
	case f.NumMin != nil || f.NumMax != nil:
		return kindNumber
	default:
		return kindTime
	}
}

// attributeParams spreads the filters fs over slots of each kind, then the
// arrays.
func attributeParams(fs []customer.AttributeFilter, slots int) attributeQuery {
	var a attributeQuery
	text := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	instant := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	var nt, nn, nm int // slots taken, by kind
	for _, f := range fs {
		kind := valueKind(f)
		switch {
		case kind == kindText && nt < slots:
			a.texts[nt] = textSlot{key: &f.Key, value: f.Text}
			nt++
		case kind == kindText:
			a.textKeys, a.textValues = append(a.textKeys, f.Key), append(a.textValues, *f.Text)
		case kind == kindNumber && nn < slots:
			a.numbers[nn] = rangeSlot[string]{key: &f.Key, min: f.NumMin, max: f.NumMax}
			nn++
		case kind == kindNumber:
			a.numberKeys = append(a.numberKeys, f.Key)
			a.numberMins, a.numberMaxes = append(a.numberMins, text(f.NumMin)), append(a.numberMaxes, text(f.NumMax))
		case nm < slots:
			a.times[nm] = rangeSlot[time.Time]{key: &f.Key, min: f.TimeMin, max: f.TimeMax}
			nm++
		default:
			a.timeKeys = append(a.timeKeys, f.Key)
			a.timeMins, a.timeMaxes = append(a.timeMins, instant(f.TimeMin)), append(a.timeMaxes, instant(f.TimeMax))
		}
	}
	return a
}

// listByAttribute is the list query p with the attribute filters fs.
func listByAttribute(p gen.ListCustomersParams, fs []customer.AttributeFilter) gen.ListCustomersByAttributeParams {
	a := attributeParams(fs, attributeSlots)
	t, n, m := a.texts, a.numbers, a.times
	return gen.ListCustomersByAttributeParams{
		Text1Key: t[0].key, Text1Value: t[0].value, Text2Key: t[1].key, Text2Value: t[1].value,
		Number1Key: n[0].key, Number1Min: n[0].min, Number1Max: n[0].max, Number2Key: n[1].key, Number2Min: n[1].min, Number2Max: n[1].max,
		Time1Key: m[0].key, Time1Min: m[0].min, Time1Max: m[0].max, Time2Key: m[1].key, Time2Min: m[1].min, Time2Max: m[1].max,
		TextKeys: a.textKeys, TextValues: a.textValues,
		NumberKeys: a.numberKeys, NumberMins: a.numberMins, NumberMaxes: a.numberMaxes,
		TimeKeys: a.timeKeys, TimeMins: a.timeMins, TimeMaxes: a.timeMaxes,
		Email: p.Email, IsActive: p.IsActive, Q: p.Q, HasAccount: p.HasAccount, IsVerified: p.IsVerified,
		CreatedAfter: p.CreatedAfter, CreatedBefore: p.CreatedBefore, UpdatedAfter: p.UpdatedAfter, Metadata: p.Metadata,
		EmailConsent: p.EmailConsent, SmsConsent: p.SmsConsent, GroupID: p.GroupID, OrdersMin: p.OrdersMin, OrdersMax: p.OrdersMax,
		PlacedAfter: p.PlacedAfter, PlacedBefore: p.PlacedBefore, OrderedBeforeCreated: p.OrderedBeforeCreated,
		AfterID: p.AfterID, Sort: p.Sort, AfterTime: p.AfterTime, AfterText: p.AfterText, AfterInt: p.AfterInt, RowLimit: p.RowLimit,
	}
}

// onlyAttributes tells whether f filters on attributes and nothing else.
// A filter the Filter gains later makes it false: such a count goes through
// the customers, as any other.
func onlyAttributes(f customer.Filter) bool {
	f.Attributes = nil
	if len(f.Metadata) == 0 {
		f.Metadata = nil
	}
	return reflect.DeepEqual(f, customer.Filter{})
}

// countByOneAttribute is the count query of the attribute filter a alone.
func countByOneAttribute(a customer.AttributeFilter, limit int32) gen.CountCustomersByOneAttributeParams {
	kind := valueKind(a)
	p := gen.CountCustomersByOneAttributeParams{Kind: kind, Key: a.Key, CountLimit: limit}
	switch kind {
	case kindText:
		p.TextValue = a.Text
	case kindNumber:
		p.NumberMin, p.NumberMax = a.NumMin, a.NumMax
	default:
		p.TimeMin, p.TimeMax = a.TimeMin, a.TimeMax
	}
	return p
}

// countByAttribute is the count query p with the attribute filters fs, as
// listByAttribute.
func countByAttribute(p gen.CountCustomersParams, fs []customer.AttributeFilter) gen.CountCustomersByAttributeParams {
	a := attributeParams(fs, attributeSlots)
	t, n, m := a.texts, a.numbers, a.times
	return gen.CountCustomersByAttributeParams{
		Text1Key: t[0].key, Text1Value: t[0].value, Text2Key: t[1].key, Text2Value: t[1].value,
		Number1Key: n[0].key, Number1Min: n[0].min, Number1Max: n[0].max, Number2Key: n[1].key, Number2Min: n[1].min, Number2Max: n[1].max,
		Time1Key: m[0].key, Time1Min: m[0].min, Time1Max: m[0].max, Time2Key: m[1].key, Time2Min: m[1].min, Time2Max: m[1].max,
		TextKeys: a.textKeys, TextValues: a.textValues,
		NumberKeys: a.numberKeys, NumberMins: a.numberMins, NumberMaxes: a.numberMaxes,
		TimeKeys: a.timeKeys, TimeMins: a.timeMins, TimeMaxes: a.timeMaxes,
		Email: p.Email, IsActive: p.IsActive, Q: p.Q, HasAccount: p.HasAccount, IsVerified: p.IsVerified,
		CreatedAfter: p.CreatedAfter, CreatedBefore: p.CreatedBefore, UpdatedAfter: p.UpdatedAfter, Metadata: p.Metadata,
		EmailConsent: p.EmailConsent, SmsConsent: p.SmsConsent, GroupID: p.GroupID, OrdersMin: p.OrdersMin, OrdersMax: p.OrdersMax,
		PlacedAfter: p.PlacedAfter, PlacedBefore: p.PlacedBefore, OrderedBeforeCreated: p.OrderedBeforeCreated,
		CountLimit: p.CountLimit,
	}
}
