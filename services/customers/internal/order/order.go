// Package order keeps the orders the order system records and the requests
// to move one to another customer: a different aggregate from the customer,
// with its own version and events (order.recorded, order.linked,
// order.transfer_*, order.transferred). It reads customers through the
// customer package, never the other way round.
package order

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
	"github.com/customerbus/customerbus/services/customers/internal/customer"
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
		Metadata: nonNilMetadata(o.Metadata), Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
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

// Service runs the order use cases.
type Service struct {
	store     Store
	customers Customers
	cfg       Config
	now       func() time.Time
}

// Config tunes orders.
type Config struct {
	// TransferTTL is how long an order's owner has to approve a transfer.
	TransferTTL time.Duration `env:"ORDER_TRANSFER_TTL" envDefault:"168h"`
}

// DefaultTransferTTL is the TransferTTL when none is set.
const DefaultTransferTTL = 7 * 24 * time.Hour

// Customers reads the customers that orders belong to and move between.
type Customers interface {
	Get(ctx context.Context, id uuid.UUID) (customer.Customer, error)
}

// NewService returns a Service.
func NewService(store Store, customers Customers, cfg Config) *Service {
	if cfg.TransferTTL <= 0 {
		cfg.TransferTTL = DefaultTransferTTL
	}
	return &Service{store: store, customers: customers, cfg: cfg, now: func() time.Time {
		// Microseconds: what PostgreSQL keeps, so events and reads agree.
		return time.Now().UTC().Truncate(time.Microsecond)
	}}
}

// Store keeps orders and their transfer requests.
type Store interface {
	// RecordOrder inserts the order with its events and counts it for its
	// customer, unless an order with its id exists: then it writes nothing
	// and returns the stored order with created false. An unknown customer
	// is customer.ErrNotFound.
	RecordOrder(ctx context.Context, o Order, evs []cloudevents.Event) (stored Order, created bool, err error)
	// ListOrders reads a customer's orders, newest first.
	ListOrders(ctx context.Context, customerID uuid.UUID, limit int, after *customer.Cursor) ([]Order, error)
	// WithOrder locks the order and its open request (nil when none), lets
	// fn decide, and writes the change; ErrOrderNotFound for an unknown order.
	WithOrder(ctx context.Context, orderID uuid.UUID, fn func(o Order, open *Transfer) (*TransferChange, error)) error
	// WithTransferToken locks the request with this token hash and its
	// order, lets fn decide, and writes the change; customer.ErrTokenInvalid
	// when no request has the hash.
	WithTransferToken(ctx context.Context, hash []byte, fn func(t Transfer, o Order) (*TransferChange, error)) error
	// OpenTransfersOf lists the orders with an open transfer request to or
	// from the customer.
	OpenTransfersOf(ctx context.Context, customerID uuid.UUID) ([]uuid.UUID, error)
	// OpenTransfers reads the requests of these orders whose status is open.
	OpenTransfers(ctx context.Context, orderIDs []uuid.UUID) ([]Transfer, error)
}

// RecordOrder records an order once: recording the same id again returns
// the stored order and emits nothing (created is false). The first
// recording wins; the order system changes orders in its own events.
func (s *Service) RecordOrder(ctx context.Context, o customer.Origin, in OrderInput) (Order, bool, error) {
	var r customer.Checks
	now := s.now()
	ord := Order{
		Email:   r.Email("email", in.Email),
		Number:  r.RequiredText("number", in.Number, MaxOrderNumberLength),
		Channel: r.RequiredText("channel", in.Channel, customer.MaxNameLength),
		Status:  r.RequiredText("status", in.Status, MaxOrderStatusLength),
		Version: 1, CreatedAt: now, UpdatedAt: now,
		Metadata: r.Metadata("metadata", in.Metadata),
	}
	var err error
	if ord.ID, err = uuid.Parse(in.ID); err != nil {
		r.Fail("id", customer.CodeInvalid, "id must be the order's UUID")
	}
	if in.CustomerID != nil {
		id, err := uuid.Parse(*in.CustomerID)
		if err != nil {
			r.Fail("customer_id", customer.CodeInvalid, "customer_id must be a UUID or null (a guest order)")
		}
		ord.CustomerID = &id
	}
	if ord.Total = strings.TrimSpace(in.Total); !totalRE.MatchString(ord.Total) {
		r.Fail("total", customer.CodeInvalid, "total must be a decimal number like \"12.50\" (at most 15 digits and 4 decimals), as a string")
	} else {
		ord.Total = numericText(ord.Total)
	}
	if ord.Currency = strings.ToUpper(strings.TrimSpace(in.Currency)); !currencyRE.MatchString(ord.Currency) {
		r.Fail("currency", customer.CodeInvalid, "currency must be an ISO 4217 code like EUR")
	}
	if in.PlacedAt == nil {
		r.Fail("placed_at", customer.CodeRequired, "placed_at is required")
	} else {
		ord.PlacedAt = r.Time("placed_at", *in.PlacedAt)
	}
	if err := r.Err(); err != nil {
		return Order{}, false, err
	}
	ev, err := orderEvent(o, events.OrderRecorded, ord, now, ord.Public())
	if err != nil {
		return Order{}, false, err
	}
	stored, created, err := s.store.RecordOrder(ctx, ord, []cloudevents.Event{ev})
	if errors.Is(err, customer.ErrNotFound) {
		return Order{}, false, customer.FieldErr("customer_id", customer.CodeNotFound, "no customer has this id")
	}
	if err != nil {
		return Order{}, false, fmt.Errorf("record order: %w", err)
	}
	return stored, created, nil
}

func orderEvent(o customer.Origin, typ string, ord Order, at time.Time, data any) (cloudevents.Event, error) {
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
	var r customer.Checks
	limit = r.Limit(limit)
	after := r.Cursor(cursor, ordersOrder)
	if err := r.Err(); err != nil {
		return OrdersPage{}, err
	}
	if _, err := s.customers.Get(ctx, customerID); err != nil {
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
		page.NextCursor = customer.Cursor{Order: ordersOrder, ID: last.ID, Time: last.PlacedAt}.Encode()
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

func nonNilMetadata(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
