package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/webhook"
)

var _ webhook.Store = (*Store)(nil)

// CreateWebhook inserts the endpoint, creations one at a time, so that the
// limit holds however many run at once.
func (s *Store) CreateWebhook(ctx context.Context, w webhook.Webhook, max int) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.LockWebhookCount(ctx); err != nil {
			return fmt.Errorf("store: lock webhooks: %w", err)
		}
		n, err := q.InsertWebhook(ctx, gen.InsertWebhookParams{
			ID: w.ID, Url: w.URL, EventTypes: w.EventTypes, ContentMode: w.ContentMode, Description: w.Description,
			IsActive: w.IsActive, Secret: w.Secret, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, MaxWebhooks: int64(max),
		})
		if err != nil {
			return fmt.Errorf("store: insert webhook: %w", err)
		}
		if n == 0 {
			return webhook.ErrTooMany
		}
		return nil
	})
}

// GetWebhook reads one endpoint.
func (s *Store) GetWebhook(ctx context.Context, id uuid.UUID) (webhook.Webhook, error) {
	return readWebhook(s.q.GetWebhook(ctx, id))
}

// ListWebhooks reads one page of endpoints, newest first.
func (s *Store) ListWebhooks(ctx context.Context, limit int, after *customer.Cursor) ([]webhook.Webhook, error) {
	p := gen.ListWebhooksParams{RowLimit: int32(limit)}
	p.AfterID, p.AfterTime = keyset(after)
	rows, err := s.q.ListWebhooks(ctx, p)
	return converted(rows, err, "list webhooks", fromWebhookRow)
}

// UpdateWebhook locks the endpoint, runs fn and writes what it decides.
func (s *Store) UpdateWebhook(ctx context.Context, id uuid.UUID, fn func(webhook.Webhook) (*webhook.Webhook, error)) (webhook.Webhook, error) {
	var result webhook.Webhook
	err := s.onWebhook(ctx, id, (*gen.Queries).GetWebhookForUpdate, func(q *gen.Queries, cur webhook.Webhook) error {
		next, err := fn(cur)
		if err != nil || next == nil {
			result = cur
			return err
		}
		w := *next
		if err := q.UpdateWebhook(ctx, gen.UpdateWebhookParams{
			ID: w.ID, Url: w.URL, EventTypes: w.EventTypes, ContentMode: w.ContentMode, Description: w.Description,
			IsActive: w.IsActive, DisabledReason: w.DisabledReason, DisabledAt: w.DisabledAt, FailingSince: w.FailingSince,
			Secret: w.Secret, PreviousSecret: w.PreviousSecret, PreviousSecretExpiresAt: w.PreviousSecretExpiresAt, UpdatedAt: w.UpdatedAt,
		}); err != nil {
			return fmt.Errorf("store: update webhook: %w", err)
		}
		result = w
		return nil
	})
	return result, err
}

// DeleteWebhook deletes the endpoint; its deliveries cascade.
func (s *Store) DeleteWebhook(ctx context.Context, id uuid.UUID) error {
	n, err := s.q.DeleteWebhook(ctx, id)
	if err != nil {
		return fmt.Errorf("store: delete webhook: %w", err)
	}
	if n == 0 {
		return webhook.ErrNotFound
	}
	return nil
}

// QueueDelivery writes the event fn builds and its delivery, the endpoint
// kept meanwhile.
func (s *Store) QueueDelivery(ctx context.Context, webhookID uuid.UUID, fn func(webhook.Webhook) (webhook.Queued, error)) (webhook.Delivery, error) {
	var result webhook.Delivery
	err := s.onWebhook(ctx, webhookID, (*gen.Queries).GetWebhookForShare, func(q *gen.Queries, w webhook.Webhook) error {
		e, err := fn(w)
		if err != nil {
			return err
		}
		if err := q.InsertPingEvent(ctx, gen.InsertPingEventParams{
			ID: e.EventID, Type: e.EventType, PartitionKey: e.PartitionKey, Seq: e.Seq, Payload: e.Payload, CreatedAt: e.At,
		}); err != nil {
			return fmt.Errorf("store: insert webhook event: %w", err)
		}
		row, err := q.InsertPingDelivery(ctx, gen.InsertPingDeliveryParams{
			ID: e.DeliveryID, WebhookID: w.ID, EventID: e.EventID, EventType: e.EventType,
			PartitionKey: e.PartitionKey, Seq: e.Seq, NextAttemptAt: e.At,
		})
		if err != nil {
			return fmt.Errorf("store: insert webhook delivery: %w", err)
		}
		result = fromDeliveryRow(row)
		return nil
	})
	return result, err
}

// ListDeliveries reads one page of an endpoint's deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, webhookID uuid.UUID, status *string, limit int, after *customer.Cursor) ([]webhook.Delivery, error) {
	p := gen.ListWebhookDeliveriesParams{WebhookID: webhookID, Status: status, RowLimit: int32(limit)}
	p.AfterID, p.AfterTime = keyset(after)
	rows, err := s.q.ListWebhookDeliveries(ctx, p)
	return converted(rows, err, "list webhook deliveries", fromDeliveryRow)
}

// RetryDelivery locks the endpoint and the delivery, lets fn refuse, and
// makes the delivery due at.
func (s *Store) RetryDelivery(ctx context.Context, webhookID, deliveryID uuid.UUID, at time.Time,
	fn func(webhook.Webhook, bool) error) (webhook.Delivery, error) {
	var result webhook.Delivery
	err := s.onWebhook(ctx, webhookID, (*gen.Queries).GetWebhookForShare, func(q *gen.Queries, w webhook.Webhook) error {
		payloadKept, err := q.LockWebhookDelivery(ctx, gen.LockWebhookDeliveryParams{ID: deliveryID, WebhookID: webhookID})
		if errors.Is(err, pgx.ErrNoRows) {
			return webhook.ErrDeliveryNotFound
		}
		if err != nil {
			return fmt.Errorf("store: lock webhook delivery: %w", err)
		}
		if err := fn(w, payloadKept); err != nil {
			return err
		}
		row, err := q.RetryWebhookDelivery(ctx, gen.RetryWebhookDeliveryParams{ID: deliveryID, Now: at})
		if err != nil {
			return fmt.Errorf("store: retry webhook delivery: %w", err)
		}
		result = fromDeliveryRow(row)
		return nil
	})
	return result, err
}

// onWebhook runs fn in a transaction on the endpoint as lock reads it
// (GetWebhookForUpdate or GetWebhookForShare); ErrNotFound when there is none.
func (s *Store) onWebhook(ctx context.Context, id uuid.UUID, lock func(*gen.Queries, context.Context, uuid.UUID) (gen.Webhook, error),
	fn func(q *gen.Queries, w webhook.Webhook) error) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		w, err := readWebhook(lock(q, ctx, id))
		if err != nil {
			return err
		}
		return fn(q, w)
	})
}

// keyset is a page cursor as the list queries take it: nil for the first page.
func keyset(after *customer.Cursor) (*uuid.UUID, *time.Time) {
	if after == nil {
		return nil, nil
	}
	return &after.ID, &after.Time
}

// converted is the rows a list query read, converted by from; what names
// the query in its error.
func converted[R, T any](rows []R, err error, what string, from func(R) T) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i] = from(r)
	}
	return out, nil
}

// readWebhook maps a read endpoint row, and no row to ErrNotFound.
func readWebhook(r gen.Webhook, err error) (webhook.Webhook, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return webhook.Webhook{}, webhook.ErrNotFound
	}
	if err != nil {
		return webhook.Webhook{}, fmt.Errorf("store: read webhook: %w", err)
	}
	return fromWebhookRow(r), nil
}

func fromWebhookRow(r gen.Webhook) webhook.Webhook {
	return webhook.Webhook{
		ID: r.ID, URL: r.Url, EventTypes: r.EventTypes, ContentMode: r.ContentMode, Description: r.Description,
		IsActive: r.IsActive, DisabledReason: r.DisabledReason, DisabledAt: utcPtr(r.DisabledAt), FailingSince: utcPtr(r.FailingSince),
		Secret: r.Secret, PreviousSecret: r.PreviousSecret, PreviousSecretExpiresAt: utcPtr(r.PreviousSecretExpiresAt),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

func fromDeliveryRow(r gen.WebhookDelivery) webhook.Delivery {
	d := webhook.Delivery{
		ID: r.ID, EventID: r.EventID, EventType: r.EventType, Status: r.Status, Attempts: int(r.Attempts),
		LastAttemptAt: utcPtr(r.LastAttemptAt), LastLatencyMS: r.LastLatencyMs, LastError: r.LastError,
		CreatedAt: r.CreatedAt.UTC(), DeliveredAt: utcPtr(r.DeliveredAt),
	}
	if r.Status == webhook.StatusPending {
		next := r.NextAttemptAt.UTC()
		d.NextAttemptAt = &next
	}
	if r.LastResponseCode != nil {
		code := int(*r.LastResponseCode)
		d.LastResponseCode = &code
	}
	return d
}
