package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// The reads of a data export (customer.DataSnapshot) beyond those of the
// routes.

// OrdersOf reads every order the customer owns, newest first.
func (s *Store) OrdersOf(ctx context.Context, customerID uuid.UUID) ([]events.Order, error) {
	rows, err := s.q.ListAllCustomerOrders(ctx, &customerID)
	if err != nil {
		return nil, fmt.Errorf("store: orders of customer: %w", err)
	}
	out := make([]events.Order, len(rows))
	for i, r := range rows {
		o, err := fromOrderRow(gen.GetOrderRow(r))
		if err != nil {
			return nil, err
		}
		out[i] = o.Public()
	}
	return out, nil
}

// GroupNames reads the names of the groups.
func (s *Store) GroupNames(ctx context.Context, ids []uuid.UUID) ([]customer.GroupName, error) {
	rows, err := s.q.GroupNamesByIDs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("store: group names: %w", err)
	}
	out := make([]customer.GroupName, len(rows))
	for i, r := range rows {
		out[i] = customer.GroupName{ID: r.ID, Name: r.Name}
	}
	return out, nil
}

// ConsentChanges reads the customer's consent history, oldest first.
func (s *Store) ConsentChanges(ctx context.Context, customerID uuid.UUID) ([]customer.ConsentChangeAt, error) {
	rows, err := s.q.ListConsentChanges(ctx, customerID)
	if err != nil {
		return nil, fmt.Errorf("store: consent changes: %w", err)
	}
	out := make([]customer.ConsentChangeAt, len(rows))
	for i, r := range rows {
		at := r.ChangedAt.UTC()
		out[i] = customer.ConsentChangeAt{At: at, ConsentChange: customer.ConsentChange{
			Channel: r.Channel, Actor: events.Actor{Type: r.ActorType, ID: r.ActorID},
			Consent: customer.Consent{State: r.State, OptInLevel: r.OptInLevel, UpdatedAt: &at, CollectedFrom: r.CollectedFrom},
		}}
	}
	return out, nil
}

// Sessions reads the customer's sessions that still last at now.
func (s *Store) Sessions(ctx context.Context, customerID uuid.UUID, now time.Time) ([]customer.SessionInfo, error) {
	rows, err := s.q.ListCustomerSessions(ctx, gen.ListCustomerSessionsParams{CustomerID: customerID, Now: now})
	if err != nil {
		return nil, fmt.Errorf("store: sessions: %w", err)
	}
	out := make([]customer.SessionInfo, len(rows))
	for i, r := range rows {
		out[i] = customer.SessionInfo{ID: r.ID, CreatedAt: r.CreatedAt.UTC(), AccessExpiresAt: r.AccessExpiresAt.UTC(), RefreshExpiresAt: r.RefreshExpiresAt.UTC()}
	}
	return out, nil
}
