package events_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	cenats "github.com/cloudevents/sdk-go/protocol/nats/v2"
	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"go.yaml.in/yaml/v3"

	"github.com/customerbus/customerbus/events"
)

func sampleCustomer() events.Customer {
	phone, now := "+4930123456", time.Now().UTC()
	return events.Customer{
		ID: uuid.Must(uuid.NewV7()), Email: "ann@example.com", FirstName: "Ann", Phone: &phone,
		IsActive: true, LanguageCode: "en", Metadata: map[string]string{"k": "v"},
		Attributes: map[string]json.RawMessage{"tier": json.RawMessage(`"gold"`), "points": json.RawMessage(`120`), "b2b": json.RawMessage(`true`)},
		Groups:     []uuid.UUID{}, Version: 2, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC(),
		EmailMarketingConsent: events.MarketingConsent{State: "subscribed", OptInLevel: "confirmed_opt_in", UpdatedAt: &now, CollectedFrom: "checkout"},
		SMSMarketingConsent:   events.MarketingConsent{State: "not_subscribed", OptInLevel: "single_opt_in"},
	}
}

func sampleAddress(c events.Customer) events.Address {
	return events.Address{
		ID: uuid.Must(uuid.NewV7()), CustomerID: c.ID, FirstName: "Ann", StreetAddress1: "Main St 1",
		City: "Berlin", PostalCode: "10115", Country: "DE", IsDefaultShipping: true,
		CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC(),
	}
}

// mutate marshals v to a JSON object and lets edit change it.
func mutate(t *testing.T, v any, edit func(map[string]any)) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, _ := json.Marshal(m)
	return out
}

func TestEventDataValidatesAgainstItsSchema(t *testing.T) {
	c := sampleCustomer()
	created := events.CustomerCreatedData{Customer: c, Addresses: []events.Address{sampleAddress(c)}}
	g := events.CustomerGroup{ID: uuid.Must(uuid.NewV7()), Name: "VIP", Version: 1, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	o := events.Order{ID: uuid.Must(uuid.NewV7()), Number: "R-1", Email: c.Email, CustomerID: &c.ID, Channel: "web", Total: "12.50",
		Currency: "EUR", Status: "placed", PlacedAt: time.Now(), Metadata: map[string]string{}, Version: 2, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	linked := events.OrderLinkedData{Order: o, OrderIDs: []uuid.UUID{o.ID}}
	reason, now := events.WebhookDisabledGone, time.Now()
	disabled := events.WebhookDisabledData{Webhook: events.Webhook{
		ID: uuid.Must(uuid.NewV7()), URL: "https://hooks.example.com/in", EventTypes: []string{"customer.*"}, ContentMode: "structured",
		DisabledReason: &reason, DisabledAt: &now, CreatedAt: now, UpdatedAt: now,
	}, Reason: reason, LastError: "410 Gone"}
	minPoints := json.Number("0")
	def := events.AttributeDefinition{ID: uuid.Must(uuid.NewV7()), Key: "points", Label: "Points", Type: "integer", Min: &minPoints,
		Indexed: true, Version: 1, CreatedAt: now, UpdatedAt: now}
	tests := []struct {
		name      string
		eventType string
		data      []byte
		wantValid bool
	}{
		{"updated customer with changed attributes is valid", events.CustomerUpdated,
			mutate(t, events.CustomerUpdatedData{Customer: c, Changed: []string{"attributes.tier"}}, func(map[string]any) {}), true},
		{"created customer without attributes is rejected", events.CustomerCreated, mutate(t, created, func(m map[string]any) { delete(m, "attributes") }), false},
		{"an attribute holding an object is rejected", events.CustomerCreated,
			mutate(t, created, func(m map[string]any) { m["attributes"].(map[string]any)["tier"] = map[string]any{"a": 1} }), false},
		{"an attribute key in capitals is rejected", events.CustomerCreated,
			mutate(t, created, func(m map[string]any) { m["attributes"].(map[string]any)["Tier"] = "gold" }), false},
		{"customer_attribute.defined is valid", events.CustomerAttributeDefined, mutate(t, def, func(map[string]any) {}), true},
		{"customer_attribute.defined of an unknown type is rejected", events.CustomerAttributeDefined,
			mutate(t, def, func(m map[string]any) { m["type"] = "money" }), false},
		{"customer_attribute.updated is valid", events.CustomerAttributeUpdated,
			mutate(t, events.AttributeDefinitionUpdatedData{AttributeDefinition: def, Changed: []string{"min"}}, func(map[string]any) {}), true},
		{"customer_attribute.updated without changed is rejected", events.CustomerAttributeUpdated, mutate(t, def, func(map[string]any) {}), false},
		{"customer_attribute.deleted is valid", events.CustomerAttributeDeleted,
			mutate(t, events.AttributeDefinitionDeletedData{ID: def.ID, Key: def.Key, DeletedAt: now}, func(map[string]any) {}), true},
		{"created customer is valid", events.CustomerCreated, mutate(t, created, func(map[string]any) {}), true},
		{"created without addresses is rejected", events.CustomerCreated, mutate(t, c, func(map[string]any) {}), false},
		{"address in created without country is rejected", events.CustomerCreated, mutate(t, created, func(m map[string]any) {
			delete(m["addresses"].([]any)[0].(map[string]any), "country")
		}), false},
		{"address_created is valid", events.CustomerAddressCreated,
			mutate(t, events.CustomerAddressData{Address: sampleAddress(c), Version: 3}, func(map[string]any) {}), true},
		{"address_updated with a lower-case country is rejected", events.CustomerAddressUpdated,
			mutate(t, events.CustomerAddressData{Address: sampleAddress(c), Version: 3}, func(m map[string]any) { m["country"] = "de" }), false},
		{"address_deleted is valid", events.CustomerAddressDeleted,
			mutate(t, events.CustomerAddressDeletedData{ID: c.ID, CustomerID: c.ID, DeletedAt: time.Now(), Version: 3}, func(map[string]any) {}), true},
		{"group created is valid", events.CustomerGroupCreated, mutate(t, g, func(map[string]any) {}), true},
		{"group with blank name is rejected", events.CustomerGroupUpdated, mutate(t, g, func(m map[string]any) { m["name"] = "" }), false},
		{"group deleted is valid", events.CustomerGroupDeleted,
			mutate(t, events.CustomerGroupDeletedData{ID: g.ID, Name: g.Name, DeletedAt: time.Now(), Version: 2}, func(map[string]any) {}), true},
		{"customers_added is valid", events.CustomerGroupCustomersAdded,
			mutate(t, events.CustomerGroupMembersData{GroupID: g.ID, CustomerIDs: []uuid.UUID{c.ID}, Version: 2, ChangedAt: time.Now()}, func(map[string]any) {}), true},
		{"customers_removed without customers is rejected", events.CustomerGroupCustomersRemoved,
			mutate(t, events.CustomerGroupMembersData{GroupID: g.ID, CustomerIDs: []uuid.UUID{}, Version: 2, ChangedAt: time.Now()}, func(map[string]any) {}), false},
		{"order.linked is valid", events.OrderLinked, mutate(t, linked, func(map[string]any) {}), true},
		{"order.linked without an owner is rejected", events.OrderLinked, mutate(t, linked, func(m map[string]any) { m["customer_id"] = nil }), false},
		{"order.linked naming two orders is rejected", events.OrderLinked,
			mutate(t, linked, func(m map[string]any) { m["order_ids"] = []string{o.ID.String(), c.ID.String()} }), false},
		{"order.linked without the order is rejected", events.OrderLinked, mutate(t, linked, func(m map[string]any) { delete(m, "number") }), false},
		{"order.linked with an unknown field is rejected", events.OrderLinked, mutate(t, linked, func(m map[string]any) { m["extra"] = 1 }), false},
		{"updated customer with changed is valid", events.CustomerUpdated,
			mutate(t, events.CustomerUpdatedData{Customer: c, Changed: []string{"email"}}, func(map[string]any) {}), true},
		{"deleted is valid", events.CustomerDeleted,
			mutate(t, events.CustomerDeletedData{ID: c.ID, Email: c.Email, DeletedAt: time.Now()}, func(map[string]any) {}), true},
		{"metadata_updated is valid", events.CustomerMetadataUpdated,
			mutate(t, events.CustomerMetadataUpdatedData{ID: c.ID, Metadata: map[string]string{"a": "b"}, ChangedKeys: []string{"a"}, Version: 3, UpdatedAt: time.Now()}, func(map[string]any) {}), true},
		{"private_metadata in metadata_updated is rejected", events.CustomerMetadataUpdated,
			mutate(t, events.CustomerMetadataUpdatedData{ID: c.ID, Metadata: map[string]string{}, ChangedKeys: []string{"a"}, Version: 3, UpdatedAt: time.Now()}, func(m map[string]any) { m["private_metadata"] = map[string]string{"a": "b"} }), false},
		{"note_added is valid", events.CustomerNoteAdded,
			mutate(t, events.CustomerNoteAddedData{ID: c.ID, CustomerID: c.ID, Author: events.NoteAuthor{Type: events.AuthUser, ID: "u1", Name: "Sam"}, Text: "called", CreatedAt: time.Now(), Version: 2}, func(map[string]any) {}), true},
		{"note_added without text is rejected", events.CustomerNoteAdded,
			mutate(t, events.CustomerNoteAddedData{ID: c.ID, CustomerID: c.ID, Author: events.NoteAuthor{Type: events.AuthUser, ID: "u1"}, CreatedAt: time.Now(), Version: 2}, func(map[string]any) {}), false},
		{"private_metadata in created is rejected", events.CustomerCreated,
			mutate(t, created, func(m map[string]any) { m["private_metadata"] = map[string]string{"a": "b"} }), false},
		{"private_metadata in updated is rejected", events.CustomerUpdated,
			mutate(t, events.CustomerUpdatedData{Customer: c, Changed: []string{"email"}}, func(m map[string]any) { m["private_metadata"] = map[string]string{} }), false},
		{"missing email is rejected", events.CustomerCreated, mutate(t, created, func(m map[string]any) { delete(m, "email") }), false},
		{"version as string is rejected", events.CustomerCreated, mutate(t, created, func(m map[string]any) { m["version"] = "2" }), false},
		{"updated without changed is rejected", events.CustomerUpdated, mutate(t, c, func(map[string]any) {}), false},
		{"phone not in E.164 is rejected", events.CustomerCreated, mutate(t, created, func(m map[string]any) { m["phone"] = "030 123" }), false},
		{"webhook.disabled is valid", events.WebhookDisabled, mutate(t, disabled, func(map[string]any) {}), true},
		{"webhook.disabled with a secret is rejected", events.WebhookDisabled,
			mutate(t, disabled, func(m map[string]any) { m["webhook"].(map[string]any)["secret"] = "whsec_x" }), false},
		{"webhook.disabled with another reason is rejected", events.WebhookDisabled,
			mutate(t, disabled, func(m map[string]any) { m["reason"] = "staff" }), false},
		{"webhook.ping is valid", events.WebhookPing,
			mutate(t, events.WebhookPingData{WebhookID: disabled.Webhook.ID, Message: "hi"}, func(map[string]any) {}), true},
		{"id not a uuid is rejected", events.CustomerDeleted, []byte(`{"id":"x","email":"a@b.co","deleted_at":"2026-01-01T00:00:00Z"}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := events.ValidateData(tt.eventType, tt.data)
			if (err == nil) != tt.wantValid {
				t.Errorf("ValidateData(%s) error = %v, want valid = %v", tt.eventType, err, tt.wantValid)
			}
		})
	}
}

func TestEverySchemaIDIsRelativeToWhereItIsServed(t *testing.T) {
	files, err := fs.Glob(events.Schemas, "schemas/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas: %v", err)
	}
	for _, f := range files {
		b, _ := events.Schemas.ReadFile(f)
		var doc struct {
			ID string `json:"$id"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(f, "schemas/"), ".json")
		// Relative, so it is the URL the schema is read from: served at
		// SchemaPath, the dataschema that names it.
		if doc.ID != name+".json" {
			t.Errorf("%s: $id %q, want %q", f, doc.ID, name+".json")
		}
	}
	for _, typ := range events.PublicTypes {
		if _, err := fs.Stat(events.Schemas, "schemas/"+typ+".json"); err != nil {
			t.Errorf("event type %s has no schema", typ)
		}
	}
}

func TestEnvelopeIsStructuredModeThatBothSDKBindingsRead(t *testing.T) {
	c := sampleCustomer()
	e, err := events.New(events.Meta{
		Type: events.CustomerCreated, Source: events.SourceCustomers, Subject: c.ID.String(),
		PartitionKey: c.ID.String(), Sequence: 7, Time: time.Now(), TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Actor: events.Actor{Type: events.AuthUser, ID: "staff-1"},
	}, events.CustomerCreatedData{Customer: c, Addresses: []events.Address{}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := events.ToMsg(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "customerbus.events.customer.created" || msg.Header.Get("Nats-Msg-Id") != e.ID() ||
		msg.Header.Get("content-type") != "application/cloudevents+json" {
		t.Errorf("message subject %q headers %v", msg.Subject, msg.Header)
	}
	for k := range msg.Header {
		if strings.HasPrefix(strings.ToLower(k), "ce-") {
			t.Errorf("structured mode carries header %s", k)
		}
	}
	var raw struct {
		SpecVersion, ID, Type, Sequence string
		Data                            map[string]any
	}
	if err := json.Unmarshal(msg.Data, &raw); err != nil || raw.SpecVersion != "1.0" || raw.ID != e.ID() || raw.Type != e.Type() || raw.Sequence != "7" || raw.Data["email"] != c.Email {
		t.Errorf("body is not the event as JSON (%v): %s", err, msg.Data)
	}
	readers := map[string]func(*nats.Msg) (*cloudevents.Event, error){
		"events.FromMsg": func(m *nats.Msg) (*cloudevents.Event, error) { e, err := events.FromMsg(m); return &e, err },
		"protocol/nats": func(m *nats.Msg) (*cloudevents.Event, error) {
			return binding.ToEvent(t.Context(), cenats.NewMessage(m))
		},
		"protocol/nats_jetstream": func(m *nats.Msg) (*cloudevents.Event, error) {
			return binding.ToEvent(t.Context(), cejs.NewMessage(m))
		},
	}
	for name, read := range readers {
		got, err := read(msg)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got.ID() != e.ID() || got.Type() != e.Type() || events.Sequence(*got) != 7 || string(got.Data()) != string(e.Data()) {
			t.Errorf("%s changed the event: %v vs %v", name, got, e)
		}
		if err := events.ValidateData(got.Type(), got.Data()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Integrators may send commands in binary mode (sdk-go's JetStream writer),
// and FromMsg reads them.
func TestFromMsgReadsBinaryMode(t *testing.T) {
	e := cloudevents.NewEvent()
	e.SetID("c-1")
	e.SetType("customer.create")
	e.SetSource("/erp")
	if err := e.SetData(cloudevents.ApplicationJSON, map[string]string{"email": "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	header, err := cejs.WriteMsg(t.Context(), binding.ToMessage(&e), &body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.FromMsg(&nats.Msg{Subject: "customerbus.commands.customer.create", Header: header, Data: body.Bytes()})
	if err != nil || got.ID() != "c-1" || got.Type() != "customer.create" || string(got.Data()) != `{"email":"ann@example.com"}` {
		t.Errorf("FromMsg = %v, %v", got, err)
	}
}

// The AsyncAPI document describes every public event type, and only those.
func TestAsyncAPIListsEveryPublicEventType(t *testing.T) {
	raw, err := os.ReadFile("asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Channels map[string]struct {
			Address string `yaml:"address"`
		} `yaml:"channels"`
		Components struct {
			Messages map[string]struct {
				Name        string `yaml:"name"`
				ContentType string `yaml:"contentType"`
				Payload     struct {
					Schema struct {
						AllOf []struct {
							Ref string `yaml:"$ref"`
						} `yaml:"allOf"`
						Properties struct {
							Type struct {
								Const string `yaml:"const"`
							} `yaml:"type"`
							Data struct {
								Ref string `yaml:"$ref"`
							} `yaml:"data"`
						} `yaml:"properties"`
					} `yaml:"schema"`
				} `yaml:"payload"`
			} `yaml:"messages"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var addresses, messages []string
	for _, ch := range doc.Channels {
		if strings.HasPrefix(ch.Address, "customerbus.deadletter.") || strings.HasPrefix(ch.Address, events.CommandsSubjectPrefix) {
			continue // dead letters and commands: documented, not public events
		}
		addresses = append(addresses, ch.Address)
	}
	for _, m := range doc.Components.Messages {
		// Structured mode: the body is the CloudEvent, its data of the type's schema.
		sch := m.Payload.Schema
		if m.ContentType != "application/cloudevents+json" || len(sch.AllOf) != 1 || sch.AllOf[0].Ref != "#/components/schemas/cloudEvent" ||
			sch.Properties.Type.Const != m.Name || sch.Properties.Data.Ref != "./schemas/"+m.Name+".json" {
			t.Errorf("message %s: content type %q, payload %+v", m.Name, m.ContentType, sch)
		}
		messages = append(messages, m.Name)
	}
	var want []string
	for _, typ := range events.PublicTypes {
		want = append(want, events.Subject(typ))
	}
	slices.Sort(addresses)
	slices.Sort(messages)
	slices.Sort(want)
	if !slices.Equal(addresses, want) {
		t.Errorf("channels\n%v\nwant\n%v", addresses, want)
	}
	if want := slices.Sorted(slices.Values(events.PublicTypes)); !slices.Equal(messages, want) {
		t.Errorf("messages\n%v\nwant\n%v", messages, want)
	}
}

// The relay's fast path sends the stored bytes with the dataschema put in
// front; every reader gets the event the long way would give, and a stored
// event that names a dataschema already (in its data, here) goes the long way.
func TestStoredToMsgIsTheEventWithItsDataschema(t *testing.T) {
	c := sampleCustomer()
	for name, md := range map[string]map[string]string{"plain": {"k": "v"}, "data names a dataschema": {"note": `"dataschema": "x"`}} {
		c.Metadata = md
		e, err := events.New(events.Meta{
			Type: events.CustomerCreated, Source: events.SourceCustomers, Subject: c.ID.String(), PartitionKey: c.ID.String(),
			Sequence: 1, Time: time.Now(), TraceParent: events.NewTraceParent(), Actor: events.Actor{Type: events.AuthUser, ID: "staff-1"},
		}, events.CustomerCreatedData{Customer: c, Addresses: []events.Address{}})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := events.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		const schema = "http://api.example/schemas/events/customer.created.json"
		msg, err := events.StoredToMsg(t.Context(), stored, e.ID(), events.Subject(e.Type()), schema)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Header.Get("Nats-Msg-Id") != e.ID() || msg.Header.Get("content-type") != "application/cloudevents+json" || msg.Subject != "customerbus.events.customer.created" {
			t.Errorf("%s: subject %s headers %v", name, msg.Subject, msg.Header)
		}
		got, err := binding.ToEvent(t.Context(), cenats.NewMessage(msg))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := e.Clone()
		want.SetDataSchema(schema)
		if got.String() != want.String() {
			t.Errorf("%s: read\n%v\nwant\n%v", name, got, want)
		}
	}
}
