package events

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Customer attribute definition events have the definition's id as subject
// and partition key, and its version as sequence. Consumers learn what a
// customer's attributes mean from them (or from GET
// /v1/settings/customer-attributes): a customer's attributes object holds
// values by the definitions' keys.
const (
	CustomerAttributeDefined = "customer_attribute.defined"
	CustomerAttributeUpdated = "customer_attribute.updated"
	CustomerAttributeDeleted = "customer_attribute.deleted"
)

// AttributeDefinition says what one typed custom attribute of customers
// holds and who may see and set it: the data of customer_attribute.defined
// and the API's definition resource.
type AttributeDefinition struct {
	ID    uuid.UUID `json:"id"`
	Key   string    `json:"key"`
	Label string    `json:"label"`
	// Type is string, integer, decimal, boolean, date, datetime, enum,
	// email or url.
	Type string `json:"type"`
	// MaxLength and Pattern (an RE2 expression the whole value must match)
	// apply to strings; null when unset.
	MaxLength *int    `json:"max_length"`
	Pattern   *string `json:"pattern"`
	// Min and Max bound integers and decimals, inclusive; null when unset.
	Min *json.Number `json:"min"`
	Max *json.Number `json:"max"`
	// Values are an enum's allowed values (empty for other types).
	Values []string `json:"values"`
	// Required: every new customer must have a value, and none may remove it.
	Required bool `json:"required"`
	// Storefront: customers may set it themselves.
	Storefront bool `json:"storefront"`
	// VisibleToCustomer: customers see it in their own profile.
	VisibleToCustomer bool `json:"visible_to_customer"`
	// Indexed: the customers list can filter on it.
	Indexed   bool      `json:"indexed"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// AttributeDefinitionUpdatedData is the data of customer_attribute.updated.
type AttributeDefinitionUpdatedData struct {
	AttributeDefinition
	Changed []string `json:"changed"`
}

// AttributeDefinitionDeletedData is the data of customer_attribute.deleted.
type AttributeDefinitionDeletedData struct {
	ID        uuid.UUID `json:"id"`
	Key       string    `json:"key"`
	DeletedAt time.Time `json:"deleted_at"`
}
