// Package jsonview holds the JSON documents of a customer's data that
// more than one adapter answers with: the API's notes, history, linked
// identities and data export, whose data export the console downloads as is. One type each,
// so that both answer the same document.
package jsonview

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Note is a note as the API shows it.
type Note struct {
	ID         uuid.UUID         `json:"id"`
	CustomerID uuid.UUID         `json:"customer_id"`
	Author     events.NoteAuthor `json:"author"`
	Text       string            `json:"text"`
	CreatedAt  time.Time         `json:"created_at"`
}

// NewNote is the note as the API shows it.
func NewNote(n customer.Note) Note {
	return Note{ID: n.ID, CustomerID: n.CustomerID, Author: n.Author, Text: n.Text, CreatedAt: n.CreatedAt}
}

// HistoryEntry is one entry of GET /v1/customers/{id}/history.
type HistoryEntry struct {
	ID         uuid.UUID `json:"id"` // the event's
	Kind       string    `json:"kind"`
	Type       string    `json:"type"`
	ResourceID string    `json:"resource_id"`
	Sequence   int64     `json:"sequence"`
	OccurredAt time.Time `json:"occurred_at"`
	Actor      struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"actor"`
	Changed     []string   `json:"changed"`
	EmailSentAt *time.Time `json:"email_sent_at"`
}

// Kinds of history entries.
const (
	HistoryChange = "change"
	HistoryEmail  = "email"
)

// NewHistoryEntry is the entry as the API shows it.
func NewHistoryEntry(e customer.HistoryEntry) HistoryEntry {
	h := HistoryEntry{
		ID: e.EventID, Kind: HistoryChange, Type: e.Type, ResourceID: e.Subject, Sequence: e.Sequence,
		OccurredAt: e.At, Changed: e.Changed, EmailSentAt: e.SentAt,
	}
	if e.Email {
		h.Kind = HistoryEmail
	}
	if h.Changed == nil {
		h.Changed = []string{}
	}
	h.Actor.Type, h.Actor.ID = e.Actor.Type, e.Actor.ID
	return h
}

// DataExport is GET …/data-export: everything held about the customer in
// one document (see DataExport in openapi.yaml), which the console's
// download is too.
type DataExport struct {
	ExportedAt time.Time `json:"exported_at"`
	// Customer is the staff view (with private metadata) for staff, the
	// public one for the customer itself.
	Customer  any                 `json:"customer"`
	Addresses []events.Address    `json:"addresses"`
	Orders    []events.Order      `json:"orders"`
	Groups    []DataExportGroup   `json:"groups"`
	Notes     []Note              `json:"notes"`
	Consents  DataExportConsents  `json:"consents"`
	History   []HistoryEntry      `json:"history"`
	Emails    []DataExportEmail   `json:"emails"`
	Sessions  []DataExportSession `json:"sessions"`
	// Identities are the accounts at identity providers that sign in to it.
	Identities []Identity `json:"identities"`
}

// DataExportGroup is part of DataExport.
type DataExportGroup struct {
	ID   uuid.UUID `json:"id"`
	Name string    `json:"name"`
}

// DataExportConsents is part of DataExport.
type DataExportConsents struct {
	Email   events.MarketingConsent   `json:"email"`
	SMS     events.MarketingConsent   `json:"sms"`
	History []DataExportConsentChange `json:"history"`
}

// DataExportConsentChange is part of DataExport.
type DataExportConsentChange struct {
	Channel       string    `json:"channel"`
	State         string    `json:"state"`
	OptInLevel    string    `json:"opt_in_level"`
	CollectedFrom string    `json:"collected_from"`
	ActorType     string    `json:"actor_type"`
	ActorID       string    `json:"actor_id"`
	ChangedAt     time.Time `json:"changed_at"`
}

// DataExportEmail is an email sent (or to be sent) to the customer: its
// type and times, never its token.
type DataExportEmail struct {
	Type        string     `json:"type"`
	RequestedAt time.Time  `json:"requested_at"`
	SentAt      *time.Time `json:"sent_at"`
}

// DataExportSession is a login that still lasts, never its tokens.
type DataExportSession struct {
	CreatedAt        time.Time `json:"created_at"`
	AccessExpiresAt  time.Time `json:"access_expires_at"`
	RefreshExpiresAt time.Time `json:"expires_at"`
}

// NewDataExport is the document of the export, with the staff view of
// the customer when staff, the public one for the customer itself.
func NewDataExport(d customer.DataExport, staff bool, now time.Time) DataExport {
	c := d.Customer
	out := DataExport{
		ExportedAt: now, Customer: c.Public(),
		Addresses: make([]events.Address, len(d.Addresses)), Orders: d.Orders,
		Groups: make([]DataExportGroup, len(d.Groups)), Notes: make([]Note, len(d.Notes)),
		Consents: DataExportConsents{Email: c.EmailConsent.Public(), SMS: c.SMSConsent.Public(),
			History: make([]DataExportConsentChange, len(d.ConsentChanges))},
		History: make([]HistoryEntry, len(d.History)), Emails: []DataExportEmail{},
		Sessions:   make([]DataExportSession, len(d.Sessions)),
		Identities: NewIdentities(d.Identities),
	}
	if staff {
		out.Customer = c.Staff()
	}
	if out.Orders == nil {
		out.Orders = []events.Order{}
	}
	for i, a := range d.Addresses {
		out.Addresses[i] = a.Public(c)
	}
	for i, g := range d.Groups {
		out.Groups[i] = DataExportGroup(g)
	}
	for i, n := range d.Notes {
		out.Notes[i] = NewNote(n)
	}
	for i, ch := range d.ConsentChanges {
		out.Consents.History[i] = DataExportConsentChange{
			Channel: ch.Channel, State: ch.Consent.State, OptInLevel: ch.Consent.OptInLevel, CollectedFrom: ch.Consent.CollectedFrom,
			ActorType: ch.Actor.Type, ActorID: ch.Actor.ID, ChangedAt: ch.At,
		}
	}
	for i, h := range d.History {
		out.History[i] = NewHistoryEntry(h)
		if h.Email {
			out.Emails = append(out.Emails, DataExportEmail{Type: h.Type, RequestedAt: h.At, SentAt: h.SentAt})
		}
	}
	for i, s := range d.Sessions {
		out.Sessions[i] = DataExportSession{CreatedAt: s.CreatedAt, AccessExpiresAt: s.AccessExpiresAt, RefreshExpiresAt: s.RefreshExpiresAt}
	}
	return out
}

// Identity is a linked identity as its customer (and staff, in
// the data export) see it.
type Identity struct {
	ID        uuid.UUID `json:"id"`
	Provider  string    `json:"provider"`
	Issuer    string    `json:"issuer"`
	Subject   string    `json:"subject"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
}

// NewIdentities are the identities as the API shows them.
func NewIdentities(ids []customer.Identity) []Identity {
	out := make([]Identity, len(ids))
	for i, id := range ids {
		out[i] = Identity{ID: id.ID, Provider: id.ProviderID, Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, CreatedAt: id.CreatedAt}
	}
	return out
}

// WriteDataExport answers a customer's data export as a JSON file to
// download (the staff view when staff).
func WriteDataExport(w http.ResponseWriter, d customer.DataExport, staff bool) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="customer-`+d.Customer.ID.String()+`.json"`)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(NewDataExport(d, staff, time.Now().UTC()))
}
