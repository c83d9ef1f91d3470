package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// PingMessage is the message of every webhook.ping.
const PingMessage = "a test event from customerbus"

// Delivery is one event's delivery to one endpoint, as the API shows it.
type Delivery struct {
	ID        uuid.UUID `json:"id"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts"`
	// NextAttemptAt is when it is tried next: null unless pending.
	NextAttemptAt    *time.Time `json:"next_attempt_at"`
	LastAttemptAt    *time.Time `json:"last_attempt_at"`
	LastResponseCode *int       `json:"last_response_code"`
	LastLatencyMS    *float64   `json:"last_latency_ms"`
	LastError        *string    `json:"last_error"`
	CreatedAt        time.Time  `json:"created_at"`
	DeliveredAt      *time.Time `json:"delivered_at"`
}

// DeliveriesPage is one page of an endpoint's deliveries, newest first.
type DeliveriesPage struct {
	Deliveries []Delivery
	NextCursor string
}

// Queued is an event to deliver to one endpoint, and its delivery, as a
// ping writes them.
type Queued struct {
	DeliveryID   uuid.UUID
	EventID      string
	EventType    string
	PartitionKey string
	Seq          int64
	Payload      []byte // the CloudEvent in JSON (structured mode)
	At           time.Time
}

// DeliveryStore keeps an endpoint's deliveries.
type DeliveryStore interface {
	// QueueDelivery locks the endpoint (ErrNotFound), lets fn build the
	// event, and writes it with its pending delivery.
	QueueDelivery(ctx context.Context, webhookID uuid.UUID, fn func(Webhook) (Queued, error)) (Delivery, error)
	// ListDeliveries reads an endpoint's deliveries newest first; status
	// nil reads all.
	ListDeliveries(ctx context.Context, webhookID uuid.UUID, status *string, limit int, after *customer.Cursor) ([]Delivery, error)
	// RetryDelivery locks the endpoint and its delivery (ErrNotFound,
	// ErrDeliveryNotFound), lets fn refuse, given whether the delivery's
	// event is still kept, and makes the delivery due at.
	RetryDelivery(ctx context.Context, webhookID, deliveryID uuid.UUID, at time.Time, fn func(w Webhook, payloadKept bool) error) (Delivery, error)
}

// Ping queues a webhook.ping for the endpoint, to be delivered like any
// event: the receiver can check its signature and its answer shows in the
// deliveries.
func (s *Service) Ping(ctx context.Context, o customer.Origin, id uuid.UUID) (Delivery, error) {
	return s.store.QueueDelivery(ctx, id, func(w Webhook) (Queued, error) {
		if !w.IsActive {
			return Queued{}, ErrInactive
		}
		now := s.now()
		// Its own partition key: a ping waits for no event, and none for it.
		key := "ping:" + w.ID.String()
		ev, err := events.New(events.Meta{
			Type: events.WebhookPing, Source: events.SourceCustomers, Subject: w.ID.String(), PartitionKey: key,
			Sequence: 0, Time: now, TraceParent: o.TraceParent, Actor: o.Actor, CausationID: o.CausationID,
		}, events.WebhookPingData{WebhookID: w.ID, Message: PingMessage})
		if err != nil {
			return Queued{}, fmt.Errorf("ping webhook: %w", err)
		}
		payload, err := events.Marshal(ev)
		if err != nil {
			return Queued{}, fmt.Errorf("ping webhook: %w", err)
		}
		did, err := uuid.NewV7()
		if err != nil {
			return Queued{}, fmt.Errorf("ping webhook: %w", err)
		}
		return Queued{DeliveryID: did, EventID: ev.ID(), EventType: ev.Type(), PartitionKey: key, Payload: payload, At: now}, nil
	})
}

// deliveriesOrder names the deliveries cursor's order (newest first).
const deliveriesOrder = "webhook_deliveries"

// Deliveries returns one page of the endpoint's deliveries, newest first;
// status ("" for any) filters them.
func (s *Service) Deliveries(ctx context.Context, id uuid.UUID, status string, limit int, cursor string) (DeliveriesPage, error) {
	var c customer.Checks
	limit = c.Limit(limit)
	after := c.Cursor(cursor, deliveriesOrder)
	var filter *string
	switch status {
	case "":
	case StatusPending, StatusDelivered, StatusFailed:
		filter = &status
	default:
		c.Fail("status", customer.CodeInvalid, "status must be %s, %s or %s", StatusPending, StatusDelivered, StatusFailed)
	}
	if err := c.Err(); err != nil {
		return DeliveriesPage{}, err
	}
	if _, err := s.store.GetWebhook(ctx, id); err != nil {
		return DeliveriesPage{}, err
	}
	rows, err := s.store.ListDeliveries(ctx, id, filter, limit+1, after)
	if err != nil {
		return DeliveriesPage{}, err
	}
	var p DeliveriesPage
	p.Deliveries, p.NextCursor = page(rows, limit, func(d Delivery) customer.Cursor {
		return customer.Cursor{Order: deliveriesOrder, ID: d.ID, Time: d.CreatedAt}
	})
	return p, nil
}

// Retry makes a delivery due again at once, whatever became of it; its
// attempts so far stay counted. Its event must still be kept.
func (s *Service) Retry(ctx context.Context, id, deliveryID uuid.UUID) (Delivery, error) {
	return s.store.RetryDelivery(ctx, id, deliveryID, s.now(), func(w Webhook, payloadKept bool) error {
		switch {
		case !w.IsActive:
			return ErrInactive
		case !payloadKept:
			return ErrPayloadGone
		}
		return nil
	})
}
