// Package events is the contract every service and consumer shares: event type
// names, NATS subjects and streams, the Go types of each event's data, and how a
// CloudEvent is built, written to and read from a NATS message.
package events

import "strings"

// Public event types, published on customerbus.events.<type>.
const (
	CustomerCreated = "customer.created"
	CustomerUpdated = "customer.updated"
	CustomerDeleted = "customer.deleted"
	// CustomerMetadataUpdated carries public metadata only; private metadata
	// changes emit no public event.
	CustomerMetadataUpdated = "customer.metadata_updated"
	CustomerNoteAdded       = "customer.note_added"
)

// Streams and subjects.
const (
	// EventsStream holds public events; apps subscribe to its subjects.
	EventsStream = "CUSTOMERBUS_EVENTS"
	// EventsSubjectPrefix starts every public event's subject.
	EventsSubjectPrefix = "customerbus.events."
)

// Sources name the service that emitted an event (CloudEvents `source`).
const (
	SourceCustomers = "/customerbus/customers"
)

// SchemaBaseURI prefixes every event's `dataschema`; the file of the same name
// is in events/schemas.
const SchemaBaseURI = "https://customerbus.dev/schemas/events/"

// Auth types (CloudEvents authcontext extension `authtype`).
const (
	AuthServiceAccount = "service_account"
	AuthUser           = "user"
	AuthAppUser        = "app_user"
)

// Subject is the NATS subject an event of the given type is published on.
func Subject(eventType string) string { return EventsSubjectPrefix + eventType }

// SchemaURI is the `dataschema` of an event type.
func SchemaURI(eventType string) string { return SchemaBaseURI + eventType + ".json" }

// TypeFromSubject is the inverse of Subject; ok is false for foreign subjects.
func TypeFromSubject(subject string) (eventType string, ok bool) {
	return strings.CutPrefix(subject, EventsSubjectPrefix)
}
