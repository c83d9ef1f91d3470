package events

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Customer is a customer as the public API returns it and as customer.created and
// customer.updated carry it. It has no private metadata by construction: that
// field exists only in the staff API's own response type.
type Customer struct {
	ID                uuid.UUID         `json:"id"`
	Email             string            `json:"email"`
	FirstName         string            `json:"first_name"`
	LastName          string            `json:"last_name"`
	CompanyName       string            `json:"company_name"`
	Phone             *string           `json:"phone"`
	Note              string            `json:"note"`
	IsActive          bool              `json:"is_active"`
	LanguageCode      string            `json:"language_code"`
	ExternalReference *string           `json:"external_reference"`
	Metadata          map[string]string `json:"metadata"`
	// Attributes are the values of the customer's typed custom attributes,
	// by their definitions' keys (see AttributeDefinition).
	Attributes map[string]json.RawMessage `json:"attributes"`
	HasAccount bool                       `json:"has_account"`
	IsVerified bool                       `json:"is_verified"`
	// IsAnonymized: the customer's personal data was erased.
	IsAnonymized bool `json:"is_anonymized"`
	// Marketing consent, by channel.
	EmailMarketingConsent MarketingConsent `json:"email_marketing_consent"`
	SMSMarketingConsent   MarketingConsent `json:"sms_marketing_consent"`
	// The customer's default addresses, among its addresses; null when unset.
	DefaultShippingAddressID *uuid.UUID `json:"default_shipping_address_id"`
	DefaultBillingAddressID  *uuid.UUID `json:"default_billing_address_id"`
	// Groups lists the ids of the groups the customer belongs to.
	Groups []uuid.UUID `json:"groups"`
	// Order statistics, derived from the customer's orders: a change to them
	// alone emits no event and keeps the version.
	NumberOfOrders int        `json:"number_of_orders"`
	LastOrderAt    *time.Time `json:"last_order_at"`
	Version        int64      `json:"version"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// CustomerCreatedData is the data of customer.created: the customer and the
// addresses created with it.
type CustomerCreatedData struct {
	Customer
	Addresses []Address `json:"addresses"`
}

// Address is a customer's address as the API returns it and the address
// events carry it.
type Address struct {
	ID                uuid.UUID `json:"id"`
	CustomerID        uuid.UUID `json:"customer_id"`
	FirstName         string    `json:"first_name"`
	LastName          string    `json:"last_name"`
	CompanyName       string    `json:"company_name"`
	StreetAddress1    string    `json:"street_address_1"`
	StreetAddress2    string    `json:"street_address_2"`
	City              string    `json:"city"`
	CityArea          string    `json:"city_area"`
	PostalCode        string    `json:"postal_code"`
	Country           string    `json:"country"` // ISO 3166-1 alpha-2
	CountryArea       string    `json:"country_area"`
	Phone             *string   `json:"phone"` // E.164
	IsDefaultShipping bool      `json:"is_default_shipping"`
	IsDefaultBilling  bool      `json:"is_default_billing"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// CustomerAddressData is the data of customer.address_created and
// customer.address_updated. When an address becomes a default, the one that
// was the default before stops being it without an event of its own.
type CustomerAddressData struct {
	Address
	Version int64 `json:"version"` // the customer's version after the change
}

// CustomerAddressDeletedData is the data of customer.address_deleted.
type CustomerAddressDeletedData struct {
	ID         uuid.UUID `json:"id"`
	CustomerID uuid.UUID `json:"customer_id"`
	DeletedAt  time.Time `json:"deleted_at"`
	Version    int64     `json:"version"`
}

// CustomerUpdatedData is the data of customer.updated: the customer after the
// change and the names of the fields that changed.
type CustomerUpdatedData struct {
	Customer
	Changed []string `json:"changed"`
}

// CustomerEmailChangedData is the data of customer.email_changed.
type CustomerEmailChangedData struct {
	Customer
	PreviousEmail string `json:"previous_email"`
}

// CustomerDeletedData is the data of customer.deleted.
type CustomerDeletedData struct {
	ID        uuid.UUID `json:"id"`
	Email     string    `json:"email"`
	DeletedAt time.Time `json:"deleted_at"`
}

// CustomerMetadataUpdatedData is the data of customer.metadata_updated: the
// customer's public metadata after the change and the keys set or removed.
type CustomerMetadataUpdatedData struct {
	ID          uuid.UUID         `json:"id"`
	Metadata    map[string]string `json:"metadata"`
	ChangedKeys []string          `json:"changed_keys"`
	Version     int64             `json:"version"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

// NoteAuthor is who wrote a customer note.
type NoteAuthor struct {
	Type string `json:"type"` // an Auth* constant
	ID   string `json:"id"`
	Name string `json:"name"`
}

// CustomerNoteAddedData is the data of customer.note_added.
type CustomerNoteAddedData struct {
	ID         uuid.UUID  `json:"id"`
	CustomerID uuid.UUID  `json:"customer_id"`
	Author     NoteAuthor `json:"author"`
	Text       string     `json:"text"`
	CreatedAt  time.Time  `json:"created_at"`
	Version    int64      `json:"version"` // the customer's version after the note
}

// CustomerGroup is a customer group as the API returns it and the group events
// carry it.
type CustomerGroup struct {
	ID            uuid.UUID `json:"id"`
	Name          string    `json:"name"`
	Description   string    `json:"description"`
	CustomerCount int64     `json:"customer_count"`
	Version       int64     `json:"version"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// CustomerGroupDeletedData is the data of customer_group.deleted.
type CustomerGroupDeletedData struct {
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	DeletedAt time.Time `json:"deleted_at"`
	Version   int64     `json:"version"`
}

// CustomerGroupMembersData is the data of customer_group.customers_added and
// customer_group.customers_removed: the customers whose membership changed
// (already-members and non-members asked for are left out).
type CustomerGroupMembersData struct {
	GroupID     uuid.UUID   `json:"group_id"`
	CustomerIDs []uuid.UUID `json:"customer_ids"`
	Version     int64       `json:"version"` // the group's version after the change
	ChangedAt   time.Time   `json:"changed_at"`
}

// NotificationData is the data of every notification event: what the email
// needs, including the one-time token its link carries. The link is
// RedirectURL with the email and the token added as query parameters.
type NotificationData struct {
	// CustomerID is the recipient's account; null for a guest order's email.
	CustomerID   *uuid.UUID `json:"customer_id"`
	Email        string     `json:"email"` // the recipient
	FirstName    string     `json:"first_name"`
	LastName     string     `json:"last_name"`
	LanguageCode string     `json:"language_code"` // of the emails, e.g. "en"; may be empty
	Channel      string     `json:"channel"`
	RedirectURL  string     `json:"redirect_url"`
	// Token is the one-time token the email's link carries; empty for an
	// email without one (LinklessNotifications).
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	// Order is set for order notifications.
	Order *NotificationOrder `json:"order,omitempty"`
	// Identity is set for customer.identity_linked.
	Identity *NotificationIdentity `json:"identity,omitempty"`
}

// NotificationIdentity names the identity provider whose account was
// linked, as the storefront shows it.
type NotificationIdentity struct {
	Provider    string `json:"provider"`
	DisplayName string `json:"display_name"`
}

// NotificationOrder names the order and transfer request an order
// notification is about.
type NotificationOrder struct {
	ID         uuid.UUID `json:"id"`
	Number     string    `json:"number"`
	TransferID uuid.UUID `json:"transfer_id"`
}

// Order is an order as the API returns it and order.recorded carries it.
type Order struct {
	ID         uuid.UUID         `json:"id"`
	Number     string            `json:"number"`
	Email      string            `json:"email"`
	CustomerID *uuid.UUID        `json:"customer_id"` // null for a guest order
	Channel    string            `json:"channel"`
	Total      string            `json:"total"`    // a decimal number, as a string to keep it exact
	Currency   string            `json:"currency"` // ISO 4217
	Status     string            `json:"status"`
	PlacedAt   time.Time         `json:"placed_at"`
	Metadata   map[string]string `json:"metadata"`
	Version    int64             `json:"version"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
}

// OrderLinkedData is the data of order.linked: a guest order attached to
// the customer whose verified email it carries, as it is after linking
// (customer_id is the new owner). Each linked order has an event of its
// own, since each one's version changes; OrderIDs names that one order,
// so that readers of order_ids keep working.
type OrderLinkedData struct {
	Order
	OrderIDs []uuid.UUID `json:"order_ids"`
}

// OrderTransfer is a request to move an order to another customer, as the
// API returns it and the transfer events carry it (never its token).
type OrderTransfer struct {
	ID             uuid.UUID  `json:"id"`
	OrderID        uuid.UUID  `json:"order_id"`
	FromCustomerID *uuid.UUID `json:"from_customer_id"` // null for a guest order
	ToCustomerID   uuid.UUID  `json:"to_customer_id"`
	Status         string     `json:"status"` // open, accepted, declined, cancelled, expired
	Version        int64      `json:"version"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// OrderTransferredData is the data of order.transferred: the order with
// its new owner.
type OrderTransferredData struct {
	Order
	PreviousCustomerID *uuid.UUID `json:"previous_customer_id"`
	// TransferID is the accepted transfer request; null when the order
	// moved because its customer was merged into another (MergedInto).
	TransferID *uuid.UUID `json:"transfer_id"`
}

// CustomerAnonymizedData is the data of customer.anonymized: the customer
// whose personal data was erased, and when. Every app that keeps a copy of
// the customer erases its own.
type CustomerAnonymizedData struct {
	ID           uuid.UUID `json:"id"`
	AnonymizedAt time.Time `json:"anonymized_at"`
}

// MarketingConsent is a customer's consent to marketing on one channel:
// state subscribed, unsubscribed, pending (a confirmed opt-in waiting for
// its confirmation) or not_subscribed; opt-in level single_opt_in or
// confirmed_opt_in; when it last changed; where it was collected.
type MarketingConsent struct {
	State         string     `json:"state"`
	OptInLevel    string     `json:"opt_in_level"`
	UpdatedAt     *time.Time `json:"consent_updated_at"`
	CollectedFrom string     `json:"collected_from"`
}

// CustomerConsentUpdatedData is the data of customer.consent_updated: the
// channel whose consent changed, the consent now, and the customer's
// version after the change.
type CustomerConsentUpdatedData struct {
	ID      uuid.UUID        `json:"id"`
	Channel string           `json:"channel"`
	Consent MarketingConsent `json:"consent"`
	Version int64            `json:"version"`
}

// CustomerMergedData is the data of customer.merged: the customer merged
// into (id) and the one merged and gone (merged_id), whose orders,
// addresses, notes, memberships and history now are the target's.
type CustomerMergedData struct {
	ID       uuid.UUID `json:"id"`
	MergedID uuid.UUID `json:"merged_id"`
	MergedAt time.Time `json:"merged_at"`
}
