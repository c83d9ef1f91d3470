// Package events is the contract every service and consumer shares: event type
// names, NATS subjects and streams, the Go types of each event's data, and how a
// CloudEvent is built, written to and read from a NATS message.
package events

import (
	"slices"
	"strings"
)

// Public event types, published on customerbus.events.<type>.
const (
	CustomerCreated = "customer.created"
	CustomerUpdated = "customer.updated"
	CustomerDeleted = "customer.deleted"
	// CustomerMetadataUpdated carries public metadata only; private metadata
	// changes emit no public event.
	CustomerMetadataUpdated = "customer.metadata_updated"
	CustomerNoteAdded       = "customer.note_added"
	CustomerAddressCreated  = "customer.address_created"
	CustomerAddressUpdated  = "customer.address_updated"
	CustomerAddressDeleted  = "customer.address_deleted"
	// CustomerVerified and CustomerPasswordChanged carry the customer after
	// the change (never a secret).
	CustomerVerified        = "customer.verified"
	CustomerPasswordChanged = "customer.password_changed"
	// CustomerEmailChanged carries the customer after a confirmed email
	// change and the address it replaced.
	CustomerEmailChanged = "customer.email_changed"
	// CustomerAnonymized says the customer's personal data was erased: it
	// carries the id and the time only. Apps erase their copy.
	CustomerAnonymized = "customer.anonymized"
	// CustomerConsentUpdated is a change of the customer's marketing
	// consent on one channel; the customer's version moves.
	CustomerConsentUpdated = "customer.consent_updated"
	// CustomerMerged says another customer (merged_id) was merged into this
	// one and is gone; its id now answers with this one's (merged_into).
	CustomerMerged = "customer.merged"

	// Order events have the order's id as subject and sequence the order's
	// version; the partition key is the owner's customer id (the order id for
	// a guest order). order.linked is one guest order attached to a customer:
	// about the order like the others, partition key the new owner.
	OrderRecorded = "order.recorded"
	OrderLinked   = "order.linked"
	// Transfer request events have the request's id as subject and its
	// version as sequence; order.transferred is about the order.
	OrderTransferRequested = "order.transfer_requested"
	OrderTransferAccepted  = "order.transfer_accepted"
	OrderTransferDeclined  = "order.transfer_declined"
	OrderTransferCancelled = "order.transfer_cancelled"
	OrderTransferred       = "order.transferred"

	// Group events have the group's id as subject and partition key, and the
	// group's version as sequence.
	CustomerGroupCreated          = "customer_group.created"
	CustomerGroupUpdated          = "customer_group.updated"
	CustomerGroupDeleted          = "customer_group.deleted"
	CustomerGroupCustomersAdded   = "customer_group.customers_added"
	CustomerGroupCustomersRemoved = "customer_group.customers_removed"
)

// Notification event types, published on customerbus.notifications.<type>.
// They carry a one-time token, so only notification workers may read them;
// their data is NotificationData. Subject and partition key are the
// customer's id, sequence its version when the notification was requested.
const (
	CustomerPasswordSetupRequested = "customer.password_setup_requested"
	CustomerVerificationRequested  = "customer.verification_requested"
	CustomerPasswordResetRequested = "customer.password_reset_requested"
	CustomerEmailChangeRequested   = "customer.email_change_requested"
	CustomerDeletionRequested      = "customer.deletion_requested"
	// CustomerConsentConfirmationRequested asks the customer to confirm a
	// subscription to marketing email (a confirmed opt-in).
	CustomerConsentConfirmationRequested = "customer.consent_confirmation_requested"
	// Order notifications have the transfer request as subject and its
	// version as sequence. The approval request carries the token; the
	// completion (sent to both parties) carries none.
	OrderTransferApprovalRequested = "order.transfer_approval_requested"
	OrderTransferCompleted         = "order.transfer_completed"
	// CustomerIdentityLinked is a security notice to an existing account
	// that a sign-in method (an identity provider's account) was added to
	// it. It carries no token and no link, and names the provider only by
	// its id and display name (never the provider's subject).
	CustomerIdentityLinked = "customer.identity_linked"
)

// LinklessNotifications are the notification types without a one-time
// token; their redirect_url and channel may be empty.
var LinklessNotifications = []string{OrderTransferCompleted, CustomerIdentityLinked}

// NotificationTypes lists every notification event type.
var NotificationTypes = []string{
	CustomerPasswordSetupRequested, CustomerVerificationRequested, CustomerPasswordResetRequested,
	CustomerEmailChangeRequested, CustomerDeletionRequested, CustomerConsentConfirmationRequested,
	OrderTransferApprovalRequested, OrderTransferCompleted, CustomerIdentityLinked,
}

// PublicTypes lists every public event type; each has a schema in schemas/.
var PublicTypes = []string{
	CustomerCreated, CustomerUpdated, CustomerDeleted, CustomerMetadataUpdated, CustomerNoteAdded,
	CustomerAddressCreated, CustomerAddressUpdated, CustomerAddressDeleted,
	CustomerVerified, CustomerPasswordChanged, CustomerEmailChanged, CustomerAnonymized, CustomerConsentUpdated, CustomerMerged,
	OrderRecorded, OrderLinked, OrderTransferRequested, OrderTransferAccepted, OrderTransferDeclined,
	OrderTransferCancelled, OrderTransferred, CommandRejected,
	CustomerGroupCreated, CustomerGroupUpdated, CustomerGroupDeleted,
	CustomerGroupCustomersAdded, CustomerGroupCustomersRemoved,
	CustomerAttributeDefined, CustomerAttributeUpdated, CustomerAttributeDeleted,
	// Emitted by the webhooks service, not the command service (webhooks.go).
	WebhookDisabled,
}

// Streams and subjects.
const (
	// EventsStream holds public events; apps subscribe to its subjects.
	EventsStream = "CUSTOMERBUS_EVENTS"
	// EventsSubjectPrefix starts every public event's subject.
	EventsSubjectPrefix = "customerbus.events."
	// NotificationsStream holds notification events; only notification
	// workers may read it.
	NotificationsStream = "CUSTOMERBUS_NOTIFICATIONS"
	// NotificationsSubjectPrefix starts every notification event's subject.
	NotificationsSubjectPrefix = "customerbus.notifications."
)

// Sources name the service that emitted an event (CloudEvents `source`).
const (
	SourceCustomers = "/customerbus/customers"
)

// SchemaPath is where the command service serves the event schemas: an
// event's dataschema is the public base URL, SchemaPath, its type and
// ".json"; the file of the same name is in events/schemas.
const SchemaPath = "/schemas/events/"

// DefaultPublicBaseURL is the API's own address under the default HTTP_ADDR,
// the base of dataschema when no public base URL is configured.
const DefaultPublicBaseURL = "http://127.0.0.1:8080"

// Auth types (CloudEvents authcontext extension `authtype`).
const (
	AuthServiceAccount = "service_account"
	AuthUser           = "user"
	AuthAppUser        = "app_user"
	// AuthUnauthenticated is a caller without an account who proved control
	// of an email with a link's token (a guest deciding an order transfer).
	AuthUnauthenticated = "unauthenticated"
)

// Subject is the NATS subject an event of the given type is published on:
// notifications on their own subjects, everything else as a public event.
func Subject(eventType string) string {
	if IsNotification(eventType) {
		return NotificationsSubjectPrefix + eventType
	}
	return EventsSubjectPrefix + eventType
}

// IsNotification reports whether the type is a notification event type.
func IsNotification(eventType string) bool { return slices.Contains(NotificationTypes, eventType) }

// SchemaURL is the `dataschema` of an event type: where the command service
// whose public base URL is baseURL (DefaultPublicBaseURL when empty) serves
// its schema.
func SchemaURL(baseURL, eventType string) string {
	if baseURL == "" {
		baseURL = DefaultPublicBaseURL
	}
	return strings.TrimRight(baseURL, "/") + SchemaPath + eventType + ".json"
}

// TypeOf is the event type a subject of Subject carries: the inverse of
// Subject for public events and notifications alike.
func TypeOf(subject string) string {
	if t, ok := strings.CutPrefix(subject, NotificationsSubjectPrefix); ok {
		return t
	}
	return strings.TrimPrefix(subject, EventsSubjectPrefix)
}
