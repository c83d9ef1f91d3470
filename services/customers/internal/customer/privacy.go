package customer

import (
	"context"
	"errors"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// ErrAnonymized refuses a change to an anonymized customer: nothing of the
// person is left to change, and nothing may come back.
var ErrAnonymized = errors.New("the customer is anonymized")

// PrivacyConfig says how deletions treat personal data.
type PrivacyConfig struct {
	// RetainOnDelete keeps a deleted customer's earlier events on the
	// streams and its orders' email, as before erasure existed, for those
	// who must retain them. By default a deletion erases as Anonymize does.
	RetainOnDelete bool `env:"DELETE_RETAINS_DATA" envDefault:"false"`
}

// TransferEnder cancels the open order transfers to or from a customer
// (the order service, which owns transfers and their events).
type TransferEnder interface {
	EndTransfersOf(ctx context.Context, o Origin, customerID uuid.UUID) error
}

// EndTransfersWith makes erasures cancel the customer's open transfers
// through t. Without it, they stay open (a deletion removes those to the
// customer).
func (s *Service) EndTransfersWith(t TransferEnder) { s.transfers = t }

// Erasure is what an erasure does beyond the customer's row, in its
// transaction: the store scrubs the rest of the database and leaves the
// streams to the relay.
type Erasure struct {
	// Email is the customer's email before the erasure: orders placed with
	// it lose it, and it is looked for in the dead-letter streams.
	Email string
	// Placeholder replaces the email wherever it is kept (orders, transfer
	// requests).
	Placeholder string
	// LoginKeys are the customer's login-failure counters.
	LoginKeys []string
	// KeepEventID is the erasure's first event: the relay erases every
	// earlier message about the customer, and keeps it and later ones.
	KeepEventID uuid.UUID
}

// Anonymize erases every piece of the customer's personal data and emits
// customer.anonymized (see anonymized). It is idempotent: an anonymized
// customer is answered as it is.
//
// The customer's open order transfers are cancelled right after, each with
// its order.transfer_cancelled: after, so that those events are not erased
// with the earlier ones, and apps hear of them. Anonymizing again finishes
// a cancellation that an error cut short.
func (s *Service) Anonymize(ctx context.Context, o Origin, id uuid.UUID) (Customer, error) {
	cs, err := s.store.UpdateMany(ctx, []uuid.UUID{id}, func(cur Customer) (*Mutation, error) {
		if cur.IsAnonymized {
			return nil, nil
		}
		return s.erasure(o, cur)
	})
	if err != nil {
		return Customer{}, err
	}
	return cs[0], s.endTransfers(ctx, o, id)
}

// endTransfers cancels the customer's open transfers (an erasure's).
func (s *Service) endTransfers(ctx context.Context, o Origin, id uuid.UUID) error {
	if s.transfers == nil {
		return nil
	}
	return s.transfers.EndTransfersOf(ctx, o, id)
}

// deletion is the mutation that deletes cur: customer.deleted, and unless
// deletions retain data (or cur is anonymized already), the erasure first,
// with its customer.anonymized. The callers cancel the customer's open
// transfers before: a deletion removes them.
func (s *Service) deletion(o Origin, cur Customer) (*Mutation, error) {
	if s.privacy.RetainOnDelete || cur.IsAnonymized {
		evs, err := s.deletedEvents(o, cur)
		return &Mutation{Customer: cur, Events: evs, Delete: true}, err
	}
	m, err := s.erasure(o, cur)
	if err != nil {
		return nil, err
	}
	evs, err := s.deletedEvents(o, m.Customer)
	if err != nil {
		return nil, err
	}
	m.Events, m.Delete = append(m.Events, evs...), true
	return m, nil
}

// erasure builds the anonymization of cur. The customer keeps its id, its
// creation time, its group memberships and its order counts, and is
// marked is_anonymized; everything else that could name the person goes:
// email (a placeholder no mail can reach: .invalid never resolves), names,
// company, phone, note, language, external reference, metadata and private
// metadata, addresses, notes, password, sessions, one-time tokens, and
// marketing consents with their history. It is deactivated. Its orders stay, without their email.
func (s *Service) erasure(o Origin, cur Customer) (*Mutation, error) {
	now := s.now()
	next := Customer{
		ID: cur.ID, Email: placeholderEmail(cur.ID), LanguageCode: DefaultLanguageCode,
		Metadata: map[string]string{}, PrivateMetadata: map[string]string{},
		Groups: cur.Groups, NumberOfOrders: cur.NumberOfOrders, LastOrderAt: cur.LastOrderAt,
		EmailConsent: DefaultConsent, SMSConsent: DefaultConsent,
		IsAnonymized: true, Version: cur.Version + 1, CreatedAt: cur.CreatedAt, UpdatedAt: now,
	}
	ev, err := newEvent(o, events.CustomerAnonymized, next, now, events.CustomerAnonymizedData{ID: cur.ID, AnonymizedAt: now})
	if err != nil {
		return nil, err
	}
	id, _ := uuid.Parse(ev.ID()) // events.New made it a UUID
	return &Mutation{
		Customer: next, Events: []cloudevents.Event{ev},
		Erase: &Erasure{Email: cur.Email, Placeholder: next.Email, LoginKeys: []string{loginKey(cur.Email)}, KeepEventID: id},
	}, nil
}

// placeholderEmail is the unique email of an anonymized customer.
func placeholderEmail(id uuid.UUID) string {
	return "anonymized-" + id.String() + "@anonymized.invalid"
}

// changeable refuses a change to an anonymized customer.
func changeable(c Customer) error {
	if c.IsAnonymized {
		return ErrAnonymized
	}
	return nil
}
