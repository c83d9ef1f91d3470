package customer

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// ErrOrderNotFound means no order has the id.
var ErrOrderNotFound = errors.New("order not found")

// Order is an order as customer management keeps it: the order system
// owns the order itself and records it here.
type Order struct {
	ID         uuid.UUID
	Number     string
	Email      string
	CustomerID *uuid.UUID // nil for a guest order
	Channel    string
	Total      string // a decimal number, kept exact
	Currency   string
	Status     string
	PlacedAt   time.Time
	Metadata   map[string]string
	Version    int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Public is the order as the API and events show it.
func (o Order) Public() events.Order {
	return events.Order{
		ID: o.ID, Number: o.Number, Email: o.Email, CustomerID: o.CustomerID, Channel: o.Channel,
		Total: o.Total, Currency: o.Currency, Status: o.Status, PlacedAt: o.PlacedAt,
		Metadata: nonNil(o.Metadata), Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
}

// partitionKey keeps an order's events in order with its owner's: the
// customer id, or the order's own id while it is a guest order.
func (o Order) partitionKey() string {
	if o.CustomerID != nil {
		return o.CustomerID.String()
	}
	return o.ID.String()
}

// OrderInput records an order, as the order system sends it.
type OrderInput struct {
	ID         string            `json:"id"`
	Number     string            `json:"number"`
	Email      string            `json:"email"`
	CustomerID *string           `json:"customer_id"`
	Channel    string            `json:"channel"`
	Total      string            `json:"total"`
	Currency   string            `json:"currency"`
	Status     string            `json:"status"`
	PlacedAt   *time.Time        `json:"placed_at"`
	Metadata   map[string]string `json:"metadata"`
}

// Limits of order fields.
const (
	MaxOrderNumberLength = 64
	MaxOrderStatusLength = 64
)

var (
	totalRE    = regexp.MustCompile(`^[0-9]{1,15}(\.[0-9]{1,4})?$`)
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
)

// OrderStore keeps orders.
type OrderStore interface {
	// RecordOrder inserts the order with its events and counts it for its
	// customer, unless an order with its id exists: then it writes nothing
	// and returns the stored order with created false. An unknown customer
	// is ErrNotFound.
	RecordOrder(ctx context.Context, o Order, evs []cloudevents.Event) (stored Order, created bool, err error)
	// ListOrders reads a customer's orders, newest first.
	ListOrders(ctx context.Context, customerID uuid.UUID, limit int, after *Cursor) ([]Order, error)
}

// RecordOrder records an order once: recording the same id again returns
// the stored order and emits nothing (created is false). The first
// recording wins; the order system changes orders in its own events.
func (s *Service) RecordOrder(ctx context.Context, o Origin, in OrderInput) (Order, bool, error) {
	r := rules{}
	now := s.now()
	ord := Order{
		Email:   r.email("email", in.Email),
		Number:  r.requiredText("number", in.Number, MaxOrderNumberLength),
		Channel: r.requiredText("channel", in.Channel, MaxNameLength),
		Status:  r.requiredText("status", in.Status, MaxOrderStatusLength),
		Version: 1, CreatedAt: now, UpdatedAt: now,
		Metadata: r.metadata("metadata", in.Metadata),
	}
	var err error
	if ord.ID, err = uuid.Parse(in.ID); err != nil {
		r.fail("id", CodeInvalid, "id must be the order's UUID")
	}
	if in.CustomerID != nil {
		id, err := uuid.Parse(*in.CustomerID)
		if err != nil {
			r.fail("customer_id", CodeInvalid, "customer_id must be a UUID or null (a guest order)")
		}
		ord.CustomerID = &id
	}
	if ord.Total = strings.TrimSpace(in.Total); !totalRE.MatchString(ord.Total) {
		r.fail("total", CodeInvalid, "total must be a decimal number like \"12.50\" (at most 15 digits and 4 decimals), as a string")
	} else {
		ord.Total = numericText(ord.Total)
	}
	if ord.Currency = strings.ToUpper(strings.TrimSpace(in.Currency)); !currencyRE.MatchString(ord.Currency) {
		r.fail("currency", CodeInvalid, "currency must be an ISO 4217 code like EUR")
	}
	if in.PlacedAt == nil {
		r.fail("placed_at", CodeRequired, "placed_at is required")
	} else {
		ord.PlacedAt = in.PlacedAt.UTC().Truncate(time.Microsecond)
	}
	if err := r.err(); err != nil {
		return Order{}, false, err
	}
	ev, err := orderEvent(o, events.OrderRecorded, ord, now, ord.Public())
	if err != nil {
		return Order{}, false, err
	}
	stored, created, err := s.store.RecordOrder(ctx, ord, []cloudevents.Event{ev})
	if errors.Is(err, ErrNotFound) {
		return Order{}, false, FieldErr("customer_id", CodeNotFound, "no customer has this id")
	}
	if err != nil {
		return Order{}, false, fmt.Errorf("record order: %w", err)
	}
	return stored, created, nil
}

func orderEvent(o Origin, typ string, ord Order, at time.Time, data any) (cloudevents.Event, error) {
	return events.New(events.Meta{
		Type: typ, Source: events.SourceCustomers, Subject: ord.ID.String(), PartitionKey: ord.partitionKey(),
		Sequence: ord.Version, Time: at, TraceParent: o.TraceParent, CausationID: o.CausationID, Actor: o.Actor,
	}, data)
}

// OrdersPage is one page of a customer's orders.
type OrdersPage struct {
	Orders     []Order
	NextCursor string
}

const ordersOrder = "-placed_at"

// ListOrders returns one page of a customer's orders, newest first.
func (s *Service) ListOrders(ctx context.Context, customerID uuid.UUID, limit int, cursor string) (OrdersPage, error) {
	var r rules
	limit = r.limit(limit)
	after := r.cursor(cursor, ordersOrder)
	if err := r.err(); err != nil {
		return OrdersPage{}, err
	}
	if _, err := s.store.Get(ctx, customerID); err != nil {
		return OrdersPage{}, err
	}
	rows, err := s.store.ListOrders(ctx, customerID, limit+1, after)
	if err != nil {
		return OrdersPage{}, err
	}
	page := OrdersPage{Orders: rows}
	if len(rows) > limit {
		last := rows[limit-1]
		page.Orders = rows[:limit]
		page.NextCursor = Cursor{Order: ordersOrder, ID: last.ID, Time: last.PlacedAt}.encode()
	}
	return page, nil
}

// numericText is a valid total as PostgreSQL's numeric gives it back:
// without the leading zeros of its whole part, its decimals as given. The
// answer and the event show it so, as every later read does.
func numericText(total string) string {
	t := strings.TrimLeft(total, "0")
	if t == "" || t[0] == '.' {
		return "0" + t
	}
	return t
}

// requiredText is text that must not be empty.
func (r *rules) requiredText(field, v string, max int) string {
	if strings.TrimSpace(v) == "" {
		r.fail(field, CodeRequired, "%s is required", field)
		return ""
	}
	return r.text(field, v, max)
}
