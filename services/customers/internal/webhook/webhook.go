// Package webhook manages the endpoints that receive the public events over
// HTTP: staff create, change, delete and ping them, rotate their secrets,
// and read and retry their deliveries. The webhooks service
// (services/webhooks) fans the events out into deliveries and sends them;
// this package only writes what staff ask for.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Refusals (problem.For gives each its status and code).
var (
	ErrNotFound         = errors.New("webhook not found")
	ErrDeliveryNotFound = errors.New("webhook delivery not found")
	// ErrInactive refuses a ping or a retry to a switched-off endpoint.
	ErrInactive = errors.New("webhook is not active")
	// ErrPayloadGone refuses a retry of a delivery whose event is no
	// longer kept (its deliveries were done, and it held personal data).
	ErrPayloadGone = errors.New("webhook event payload is gone")
	// ErrTooMany refuses a creation beyond MaxWebhooks.
	ErrTooMany = errors.New("too many webhooks")
)

// Limits of an endpoint.
const (
	MaxWebhooks          = 500
	MaxEventTypes        = 50
	MaxURLLength         = 2048
	MaxDescriptionLength = 500
)

// Content modes: how a delivery carries its event.
const (
	// ContentStructured posts the whole CloudEvent as JSON (the default).
	ContentStructured = "structured"
	// ContentBinary posts the event's data, its attributes as ce- headers.
	ContentBinary = "binary"
)

// secretPrefix starts a Standard Webhooks secret; base64 of 32 random bytes follow.
const secretPrefix = "whsec_"

// DefaultSecretGrace is Config.SecretGrace when none is set.
const DefaultSecretGrace = 24 * time.Hour

// Config tunes the endpoints.
type Config struct {
	// AllowHTTP accepts http:// endpoints besides https:// (development).
	AllowHTTP bool `env:"WEBHOOKS_ALLOW_HTTP" envDefault:"false"`
	// SecretGrace is how long the secret a rotation replaces still signs.
	SecretGrace time.Duration `env:"WEBHOOKS_SECRET_GRACE" envDefault:"24h"`
}

// Webhook is an endpoint, its secrets included.
type Webhook struct {
	ID          uuid.UUID
	URL         string
	EventTypes  []string
	ContentMode string
	Description string
	IsActive    bool
	// DisabledReason and DisabledAt are set by the webhooks service when it
	// switches the endpoint off (events.WebhookDisabledGone, …Failing).
	DisabledReason *string
	DisabledAt     *time.Time
	FailingSince   *time.Time
	Secret         string
	// PreviousSecret signs beside Secret until PreviousSecretExpiresAt.
	PreviousSecret          *string
	PreviousSecretExpiresAt *time.Time
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

// Public is the endpoint as the API shows it: no secret, and no expiry of a
// previous secret that signs no more.
func (w Webhook) Public() events.Webhook {
	expires := w.PreviousSecretExpiresAt
	if expires != nil && !expires.After(time.Now()) {
		expires = nil
	}
	return events.Webhook{
		ID: w.ID, URL: w.URL, EventTypes: w.EventTypes, ContentMode: w.ContentMode, Description: w.Description,
		IsActive: w.IsActive, DisabledReason: w.DisabledReason, DisabledAt: w.DisabledAt, FailingSince: w.FailingSince,
		PreviousSecretExpiresAt: expires, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt,
	}
}

// Revealed is the endpoint with its secret: what its creation and a
// rotation answer, the only times the secret is shown.
type Revealed struct {
	events.Webhook
	Secret string `json:"secret"`
}

func (w Webhook) revealed() Revealed { return Revealed{Webhook: w.Public(), Secret: w.Secret} }

// Input creates an endpoint (url and event_types required) or changes one
// (absent fields stay).
type Input struct {
	URL         *string  `json:"url"`
	EventTypes  []string `json:"event_types"`
	ContentMode *string  `json:"content_mode"`
	Description *string  `json:"description"`
	IsActive    *bool    `json:"is_active"`
}

// Page is one page of endpoints, newest first.
type Page struct {
	Webhooks   []Webhook
	NextCursor string
}

// Store keeps the endpoints and their deliveries.
type Store interface {
	// CreateWebhook inserts the endpoint unless max exist (ErrTooMany).
	CreateWebhook(ctx context.Context, w Webhook, max int) error
	GetWebhook(ctx context.Context, id uuid.UUID) (Webhook, error)
	// ListWebhooks reads endpoints newest first.
	ListWebhooks(ctx context.Context, limit int, after *customer.Cursor) ([]Webhook, error)
	// UpdateWebhook locks the endpoint, lets fn decide the change (nil:
	// none) and writes it; ErrNotFound when there is no such endpoint.
	UpdateWebhook(ctx context.Context, id uuid.UUID, fn func(current Webhook) (*Webhook, error)) (Webhook, error)
	// DeleteWebhook deletes the endpoint and its deliveries.
	DeleteWebhook(ctx context.Context, id uuid.UUID) error
	DeliveryStore
}

// Service runs the endpoint use cases.
type Service struct {
	store Store
	cfg   Config
	now   func() time.Time
}

// NewService returns a Service.
func NewService(store Store, cfg Config) *Service {
	if cfg.SecretGrace <= 0 {
		cfg.SecretGrace = DefaultSecretGrace
	}
	return &Service{store: store, cfg: cfg, now: func() time.Time {
		// Microseconds: what PostgreSQL keeps, so answers and reads agree.
		return time.Now().UTC().Truncate(time.Microsecond)
	}}
}

// Create checks the input and creates the endpoint with a new secret,
// which the answer shows once.
func (s *Service) Create(ctx context.Context, in Input) (Revealed, error) {
	var c customer.Checks
	if in.URL == nil {
		c.Fail("url", customer.CodeRequired, "url is required")
	}
	if in.EventTypes == nil {
		c.Fail("event_types", customer.CodeRequired, "event_types is required: event types, patterns as customer.*, or *")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Revealed{}, fmt.Errorf("create webhook: %w", err)
	}
	now := s.now()
	w := Webhook{ID: id, ContentMode: ContentStructured, IsActive: true, CreatedAt: now, UpdatedAt: now}
	s.apply(&c, &w, in)
	if err := c.Err(); err != nil {
		return Revealed{}, err
	}
	if w.Secret, err = newSecret(); err != nil {
		return Revealed{}, err
	}
	if err := s.store.CreateWebhook(ctx, w, MaxWebhooks); err != nil {
		return Revealed{}, err
	}
	return w.revealed(), nil
}

// Get returns one endpoint.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (Webhook, error) {
	return s.store.GetWebhook(ctx, id)
}

// webhooksOrder names the endpoints cursor's order (newest first).
const webhooksOrder = "webhooks"

// List returns one page of endpoints, newest first.
func (s *Service) List(ctx context.Context, limit int, cursor string) (Page, error) {
	var c customer.Checks
	limit = c.Limit(limit)
	after := c.Cursor(cursor, webhooksOrder)
	if err := c.Err(); err != nil {
		return Page{}, err
	}
	rows, err := s.store.ListWebhooks(ctx, limit+1, after)
	if err != nil {
		return Page{}, err
	}
	var p Page
	p.Webhooks, p.NextCursor = page(rows, limit, func(w Webhook) customer.Cursor {
		return customer.Cursor{Order: webhooksOrder, ID: w.ID, Time: w.CreatedAt}
	})
	return p, nil
}

// Update changes the fields present. Switching an endpoint on again clears
// why and since when it was off or failing: it starts afresh.
func (s *Service) Update(ctx context.Context, id uuid.UUID, in Input) (Webhook, error) {
	return s.store.UpdateWebhook(ctx, id, func(cur Webhook) (*Webhook, error) {
		var c customer.Checks
		next := cur
		changed := s.apply(&c, &next, in)
		if err := c.Err(); err != nil || changed == 0 {
			return nil, err
		}
		if next.IsActive && !cur.IsActive {
			next.DisabledReason, next.DisabledAt, next.FailingSince = nil, nil, nil
		}
		next.UpdatedAt = s.now()
		return &next, nil
	})
}

// Delete deletes the endpoint; its deliveries go with it.
func (s *Service) Delete(ctx context.Context, id uuid.UUID) error {
	return s.store.DeleteWebhook(ctx, id)
}

// RotateSecret gives the endpoint a new secret, shown once. The one it
// replaces still signs for SecretGrace, so receivers can switch without
// refusing deliveries meanwhile; a rotation within that time replaces it
// (the oldest secret stops signing at once).
func (s *Service) RotateSecret(ctx context.Context, id uuid.UUID) (Revealed, error) {
	w, err := s.store.UpdateWebhook(ctx, id, func(cur Webhook) (*Webhook, error) {
		secret, err := newSecret()
		if err != nil {
			return nil, err
		}
		next := cur
		next.UpdatedAt = s.now()
		expires := next.UpdatedAt.Add(s.cfg.SecretGrace)
		next.Secret, next.PreviousSecret, next.PreviousSecretExpiresAt = secret, &cur.Secret, &expires
		return &next, nil
	})
	if err != nil {
		return Revealed{}, err
	}
	return w.revealed(), nil
}

// apply checks the fields present in the input and sets them on w; it
// returns how many it changed.
func (s *Service) apply(c *customer.Checks, w *Webhook, in Input) int {
	before := *w
	changed := 0
	set := func(differ bool) {
		if differ {
			changed++
		}
	}
	if in.URL != nil {
		w.URL = checkURL(c, *in.URL, s.cfg.AllowHTTP)
		set(w.URL != before.URL)
	}
	if in.EventTypes != nil {
		w.EventTypes = checkEventTypes(c, in.EventTypes)
		set(!slices.Equal(w.EventTypes, before.EventTypes))
	}
	if in.ContentMode != nil {
		w.ContentMode = *in.ContentMode
		if w.ContentMode != ContentStructured && w.ContentMode != ContentBinary {
			c.Fail("content_mode", customer.CodeInvalid, "content_mode must be %s or %s", ContentStructured, ContentBinary)
		}
		set(w.ContentMode != before.ContentMode)
	}
	if in.Description != nil {
		w.Description = c.Text("description", *in.Description, MaxDescriptionLength)
		set(w.Description != before.Description)
	}
	if in.IsActive != nil {
		w.IsActive = *in.IsActive
		set(w.IsActive != before.IsActive)
	}
	return changed
}

// newSecret is a Standard Webhooks secret: whsec_ and 32 random bytes in base64.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// page cuts rows read one past limit to the page, and gives the cursor of
// the next page ("" on the last).
func page[T any](rows []T, limit int, cursor func(T) customer.Cursor) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	return rows[:limit], cursor(rows[limit-1]).Encode()
}
