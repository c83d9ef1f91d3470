package httpapi

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// dataExport is GET …/data-export: everything held about the customer in
// one document (see DataExport in openapi.yaml).
type dataExport struct {
	ExportedAt time.Time `json:"exported_at"`
	// Customer is the staff view (with private metadata) for staff, the
	// public one for the customer itself.
	Customer  any                 `json:"customer"`
	Addresses []events.Address    `json:"addresses"`
	Orders    []events.Order      `json:"orders"`
	Groups    []dataExportGroup   `json:"groups"`
	Notes     []noteResponse      `json:"notes"`
	Consents  dataExportConsents  `json:"consents"`
	History   []historyEntry      `json:"history"`
	Emails    []dataExportEmail   `json:"emails"`
	Sessions  []dataExportSession `json:"sessions"`
	// Identities are the accounts at identity providers that sign in to it.
	Identities []identityResponse `json:"identities"`
}

type dataExportGroup struct {
	ID   uuid.UUID `json:"id"`
	Name string    `json:"name"`
}

type dataExportConsents struct {
	Email   events.MarketingConsent   `json:"email"`
	SMS     events.MarketingConsent   `json:"sms"`
	History []dataExportConsentChange `json:"history"`
}

type dataExportConsentChange struct {
	Channel       string    `json:"channel"`
	State         string    `json:"state"`
	OptInLevel    string    `json:"opt_in_level"`
	CollectedFrom string    `json:"collected_from"`
	ActorType     string    `json:"actor_type"`
	ActorID       string    `json:"actor_id"`
	ChangedAt     time.Time `json:"changed_at"`
}

// dataExportEmail is an email sent (or to be sent) to the customer: its
// type and times, never its token.
type dataExportEmail struct {
	Type        string     `json:"type"`
	RequestedAt time.Time  `json:"requested_at"`
	SentAt      *time.Time `json:"sent_at"`
}

// dataExportSession is a login that still lasts, never its tokens.
type dataExportSession struct {
	CreatedAt        time.Time `json:"created_at"`
	AccessExpiresAt  time.Time `json:"access_expires_at"`
	RefreshExpiresAt time.Time `json:"expires_at"`
}

func toDataExport(d customer.DataExport, staff bool, now time.Time) dataExport {
	c := d.Customer
	out := dataExport{
		ExportedAt: now, Customer: c.Public(),
		Addresses: make([]events.Address, len(d.Addresses)), Orders: d.Orders,
		Groups: make([]dataExportGroup, len(d.Groups)), Notes: make([]noteResponse, len(d.Notes)),
		Consents: dataExportConsents{Email: c.EmailConsent.Public(), SMS: c.SMSConsent.Public(),
			History: make([]dataExportConsentChange, len(d.ConsentChanges))},
		History: make([]historyEntry, len(d.History)), Emails: []dataExportEmail{},
		Sessions:   make([]dataExportSession, len(d.Sessions)),
		Identities: toIdentityResponses(d.Identities),
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
		out.Groups[i] = dataExportGroup(g)
	}
	for i, n := range d.Notes {
		out.Notes[i] = toNoteResponse(n)
	}
	for i, ch := range d.ConsentChanges {
		out.Consents.History[i] = dataExportConsentChange{
			Channel: ch.Channel, State: ch.Consent.State, OptInLevel: ch.Consent.OptInLevel, CollectedFrom: ch.Consent.CollectedFrom,
			ActorType: ch.Actor.Type, ActorID: ch.Actor.ID, ChangedAt: ch.At,
		}
	}
	for i, h := range d.History {
		out.History[i] = toHistoryEntry(h)
		if h.Email {
			out.Emails = append(out.Emails, dataExportEmail{Type: h.Type, RequestedAt: h.At, SentAt: h.SentAt})
		}
	}
	for i, s := range d.Sessions {
		out.Sessions[i] = dataExportSession{CreatedAt: s.CreatedAt, AccessExpiresAt: s.AccessExpiresAt, RefreshExpiresAt: s.RefreshExpiresAt}
	}
	return out
}

// customerDataExport is GET /v1/customers/{id}/data-export (staff).
func (a *API) customerDataExport(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	return a.writeDataExport(w, r, id, true)
}

// myDataExport is GET /v1/store/me/data-export: the customer's own.
func (a *API) myDataExport(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return a.writeDataExport(w, r, p.CustomerID, false)
}

func (a *API) writeDataExport(w http.ResponseWriter, r *http.Request, id uuid.UUID, staff bool) error {
	d, err := a.customers.DataExport(r.Context(), id)
	if err != nil {
		return err
	}
	WriteDataExport(w, d, staff)
	return nil
}

// WriteDataExport answers a customer's data export as the API's document
// (the staff view when staff), a JSON file to download. The console's
// download is this document too.
func WriteDataExport(w http.ResponseWriter, d customer.DataExport, staff bool) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="customer-`+d.Customer.ID.String()+`.json"`)
	writeJSON(w, http.StatusOK, toDataExport(d, staff, time.Now().UTC()))
}
