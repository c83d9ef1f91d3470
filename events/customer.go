package events

import (
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
	HasAccount        bool              `json:"has_account"`
	IsVerified        bool              `json:"is_verified"`
	Version           int64             `json:"version"`
	CreatedAt         time.Time         `json:"created_at"`
	UpdatedAt         time.Time         `json:"updated_at"`
}

// CustomerUpdatedData is the data of customer.updated: the customer after the
// change and the names of the fields that changed.
type CustomerUpdatedData struct {
	Customer
	Changed []string `json:"changed"`
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
