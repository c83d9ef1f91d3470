package order

import (
	"context"
	"errors"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Transfer statuses. A request is open until its owner accepts or declines
// it, staff cancel it, or it expires.
const (
	TransferOpen      = "open"
	TransferAccepted  = "accepted"
	TransferDeclined  = "declined"
	TransferCancelled = "cancelled"
	TransferExpired   = "expired"
)

// Transfer problems.
var (
	// ErrTransferNotFound: the order has no open transfer request.
	ErrTransferNotFound = errors.New("no open transfer request")
	// ErrTransferPending: the order has an open request already.
	ErrTransferPending = errors.New("the order has an open transfer request")
)

// Transfer is a request to move an order to another customer.
type Transfer struct {
	ID             uuid.UUID
	OrderID        uuid.UUID
	FromCustomerID *uuid.UUID // the owner when it was asked; nil for a guest order
	FromEmail      string     // where the approval email went
	ToCustomerID   uuid.UUID
	TokenHash      []byte
	Status         string
	Version        int64
	CreatedAt      time.Time
	ExpiresAt      time.Time
	UpdatedAt      time.Time
}

// Public is the transfer request as the API and events show it: no token.
func (t Transfer) Public() events.OrderTransfer {
	return events.OrderTransfer{
		ID: t.ID, OrderID: t.OrderID, FromCustomerID: t.FromCustomerID, ToCustomerID: t.ToCustomerID,
		Status: t.Status, Version: t.Version, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, UpdatedAt: t.UpdatedAt,
	}
}

// TransferChange is what a transfer action decides inside the store's
// transaction.
type TransferChange struct {
	// Transfer is inserted when its version is 1, else its status and
	// version are written.
	Transfer Transfer
	// Expired is an open request past its expiry, closed first: its
	// status is written, its version is not moved.
	Expired *Transfer
	// Order, when set, is the order with its new owner (an accepted transfer).
	Order  *Order
	Events []cloudevents.Event
}

// TransferInput asks to move an order to another (registered) customer.
type TransferInput struct {
	CustomerID string `json:"customer_id"`
	customer.EmailLink
}

// RequestTransfer opens a transfer request and sends the order's owner (a
// guest order's email) an approval email with the token.
func (s *Service) RequestTransfer(ctx context.Context, o customer.Origin, orderID uuid.UUID, in TransferInput) (Transfer, error) {
	var r customer.Checks
	toID, err := uuid.Parse(in.CustomerID)
	if err != nil {
		r.Fail("customer_id", customer.CodeInvalid, "customer_id must be the new owner's UUID")
	}
	r.Link(in.EmailLink, true)
	if err := r.Err(); err != nil {
		return Transfer{}, err
	}
	to, err := s.customers.Get(ctx, toID)
	if errors.Is(err, customer.ErrNotFound) {
		return Transfer{}, customer.FieldErr("customer_id", customer.CodeNotFound, "no customer has this id")
	}
	if err != nil {
		return Transfer{}, err
	}
	if !to.HasAccount {
		return Transfer{}, customer.FieldErr("customer_id", "not_registered", "the new owner must be a registered customer, not a guest")
	}
	var out Transfer
	err = s.store.WithOrder(ctx, orderID, func(ord Order, open *Transfer) (*TransferChange, error) {
		now := s.now()
		change := &TransferChange{}
		if open != nil {
			if now.Before(open.ExpiresAt) {
				return nil, ErrTransferPending
			}
			// The request expired at its expires_at, which its events
			// carry; marking it now only frees the order for a new one.
			// That is no change a consumer could see, so it keeps its
			// version (and updated_at) and emits nothing.
			expired := *open
			expired.Status = TransferExpired
			change.Expired = &expired
		}
		if ord.CustomerID != nil && *ord.CustomerID == to.ID {
			return nil, customer.FieldErr("customer_id", "same_owner", "the order belongs to this customer already")
		}
		recipient := customer.Customer{Email: ord.Email, LanguageCode: to.LanguageCode}
		if ord.CustomerID != nil {
			if owner, err := s.customers.Get(ctx, *ord.CustomerID); err == nil {
				recipient = owner
			} else if !errors.Is(err, customer.ErrNotFound) {
				return nil, err
			}
		}
		plain, err := auth.NewEmailToken()
		if err != nil {
			return nil, err
		}
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("transfer id: %w", err)
		}
		t := Transfer{
			ID: id, OrderID: ord.ID, FromCustomerID: ord.CustomerID, FromEmail: recipient.Email, ToCustomerID: to.ID,
			TokenHash: auth.Hash(plain), Status: TransferOpen, Version: 1,
			CreatedAt: now, ExpiresAt: now.Add(s.cfg.TransferTTL), UpdatedAt: now,
		}
		requested, err := transferEvent(o, events.OrderTransferRequested, t, ord, t.Public())
		if err != nil {
			return nil, err
		}
		note, err := transferNotification(o, events.OrderTransferApprovalRequested, t, ord, recipient, plain, in.EmailLink)
		if err != nil {
			return nil, err
		}
		change.Transfer, change.Events = t, []cloudevents.Event{requested, note}
		out = t
		return change, nil
	})
	return out, err
}

// DecideInput is the token of an approval email.
type DecideInput struct {
	Token string `json:"token"`
	customer.EmailLink
}

// DecideTransfer accepts or declines the transfer of the order with the
// token of its approval email. Accepting moves the order to the new owner
// at once; both parties are told, when a redirect URL and channel are given
// for the emails' links.
func (s *Service) DecideTransfer(ctx context.Context, o customer.Origin, orderID uuid.UUID, in DecideInput, accept bool) (Transfer, error) {
	var r customer.Checks
	if in.Token == "" {
		r.Fail("token", customer.CodeRequired, "token is required")
	}
	r.Link(in.EmailLink, false)
	if err := r.Err(); err != nil {
		return Transfer{}, err
	}
	var out Transfer
	err := s.store.WithTransferToken(ctx, auth.Hash(in.Token), func(t Transfer, ord Order) (*TransferChange, error) {
		now := s.now()
		switch {
		case t.OrderID != orderID:
			return nil, customer.ErrTokenInvalid
		case t.Status == TransferCancelled:
			return nil, customer.FieldErr("token", "cancelled", "this transfer was cancelled")
		case t.Status == TransferExpired || (t.Status == TransferOpen && !now.Before(t.ExpiresAt)):
			return nil, customer.FieldErr("token", customer.CodeExpired, "this transfer request expired at %s", t.ExpiresAt.Format(time.RFC3339))
		case t.Status != TransferOpen:
			return nil, customer.FieldErr("token", customer.CodeUsed, "this transfer was %s already", t.Status)
		}
		// The link's holder decides: the owner, or for a guest order whoever
		// reads the order's email.
		if o.Actor.Type == "" && t.FromCustomerID != nil {
			o = o.OrCustomer(*t.FromCustomerID)
		} else if o.Actor.Type == "" {
			o.Actor = events.Actor{Type: events.AuthUnauthenticated, ID: "transfer:" + t.ID.String()}
		}
		t.Version++
		t.UpdatedAt = now
		if !accept {
			t.Status = TransferDeclined
			ev, err := transferEvent(o, events.OrderTransferDeclined, t, ord, t.Public())
			out = t
			return &TransferChange{Transfer: t, Events: []cloudevents.Event{ev}}, err
		}
		t.Status = TransferAccepted
		previous := ord.CustomerID
		moved := ord
		moved.CustomerID = &t.ToCustomerID
		moved.Version++
		moved.UpdatedAt = now
		accepted, err := transferEvent(o, events.OrderTransferAccepted, t, ord, t.Public())
		if err != nil {
			return nil, err
		}
		transferred, err := orderEvent(o, events.OrderTransferred, moved, now,
			events.OrderTransferredData{Order: moved.Public(), PreviousCustomerID: previous, TransferID: &t.ID})
		if err != nil {
			return nil, err
		}
		change := &TransferChange{Transfer: t, Order: &moved, Events: []cloudevents.Event{accepted, transferred}}
		if in.EmailLink.Given() {
			notes, err := s.completedNotifications(ctx, o, t, moved, in.EmailLink)
			if err != nil {
				return nil, err
			}
			change.Events = append(change.Events, notes...)
		}
		out = t
		return change, nil
	})
	return out, err
}

// completedNotifications tell the previous and the new owner that the
// order moved.
func (s *Service) completedNotifications(ctx context.Context, o customer.Origin, t Transfer, ord Order, l customer.EmailLink) ([]cloudevents.Event, error) {
	to, err := s.customers.Get(ctx, t.ToCustomerID)
	if err != nil {
		return nil, err
	}
	from := customer.Customer{Email: t.FromEmail, LanguageCode: to.LanguageCode}
	if t.FromCustomerID != nil {
		if c, err := s.customers.Get(ctx, *t.FromCustomerID); err == nil {
			from = c
		} else if !errors.Is(err, customer.ErrNotFound) {
			return nil, err
		}
	}
	var out []cloudevents.Event
	for _, c := range []customer.Customer{from, to} {
		ev, err := transferNotification(o, events.OrderTransferCompleted, t, ord, c, "", l)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// CancelTransfer cancels the order's open transfer request (staff).
func (s *Service) CancelTransfer(ctx context.Context, o customer.Origin, orderID uuid.UUID) (Transfer, error) {
	var out Transfer
	err := s.store.WithOrder(ctx, orderID, func(ord Order, open *Transfer) (*TransferChange, error) {
		now := s.now()
		if open == nil || !now.Before(open.ExpiresAt) {
			return nil, ErrTransferNotFound
		}
		t := *open
		t.Status, t.Version, t.UpdatedAt = TransferCancelled, t.Version+1, now
		ev, err := transferEvent(o, events.OrderTransferCancelled, t, ord, t.Public())
		out = t
		return &TransferChange{Transfer: t, Events: []cloudevents.Event{ev}}, err
	})
	return out, err
}

// EndTransfersOf cancels the open transfer requests to or from the
// customer, each with its order.transfer_cancelled (before the customer is
// erased: customer.TransferEnder).
func (s *Service) EndTransfersOf(ctx context.Context, o customer.Origin, customerID uuid.UUID) error {
	orders, err := s.store.OpenTransfersOf(ctx, customerID)
	if err != nil {
		return err
	}
	for _, id := range orders {
		if _, err := s.CancelTransfer(ctx, o, id); err != nil && !errors.Is(err, ErrTransferNotFound) {
			return err
		}
	}
	return nil
}

// transferEvent is an event about a transfer request: the request is its
// subject and its version the sequence; the order's owner is the partition
// key, so it stays in order with the order's other events.
func transferEvent(o customer.Origin, typ string, t Transfer, ord Order, data any) (cloudevents.Event, error) {
	return events.New(events.Meta{
		Type: typ, Source: events.SourceCustomers, Subject: t.ID.String(), PartitionKey: ord.partitionKey(),
		Sequence: t.Version, Time: t.UpdatedAt, TraceParent: o.TraceParent, CausationID: o.CausationID, Actor: o.Actor,
	}, data)
}

// transferNotification is an order notification to recipient; token is
// empty for a notification without a link to act on.
func transferNotification(o customer.Origin, typ string, t Transfer, ord Order, recipient customer.Customer, token string, l customer.EmailLink) (cloudevents.Event, error) {
	var id *uuid.UUID
	if recipient.ID != uuid.Nil {
		id = &recipient.ID
	}
	return transferEvent(o, typ, t, ord, events.NotificationData{
		CustomerID: id, Email: recipient.Email, FirstName: recipient.FirstName, LastName: recipient.LastName,
		LanguageCode: recipient.LanguageCode, Channel: l.Channel, RedirectURL: l.RedirectURL,
		Token: token, ExpiresAt: t.ExpiresAt,
		Order: &events.NotificationOrder{ID: ord.ID, Number: ord.Number, TransferID: t.ID},
	})
}

// Reassigned is the customer's orders after its merge into another: each
// takes the new owner and its next version, with its order.transferred
// (no transfer request: a merge moved it).
func Reassigned(o customer.Origin, orders []Order, to uuid.UUID, now time.Time) ([]Order, []cloudevents.Event, error) {
	moved := make([]Order, len(orders))
	evs := make([]cloudevents.Event, len(orders))
	for i, ord := range orders {
		previous := ord.CustomerID
		ord.CustomerID, ord.Version, ord.UpdatedAt = &to, ord.Version+1, now
		ev, err := orderEvent(o, events.OrderTransferred, ord, now, events.OrderTransferredData{Order: ord.Public(), PreviousCustomerID: previous})
		if err != nil {
			return nil, nil, err
		}
		moved[i], evs[i] = ord, ev
	}
	return moved, evs, nil
}

// PendingTransfers are the open requests of these orders, by order: those
// past their expiry are no longer pending (a new request may be made), even
// while their row still says open.
func (s *Service) PendingTransfers(ctx context.Context, orderIDs []uuid.UUID) (map[uuid.UUID]Transfer, error) {
	open, err := s.store.OpenTransfers(ctx, orderIDs)
	if err != nil {
		return nil, err
	}
	now, out := s.now(), map[uuid.UUID]Transfer{}
	for _, t := range open {
		if now.Before(t.ExpiresAt) {
			out[t.OrderID] = t
		}
	}
	return out, nil
}
