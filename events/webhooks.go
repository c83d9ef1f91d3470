package events

import (
	"time"

	"github.com/google/uuid"
)

// Webhook event types. webhook.disabled is public (on the events stream):
// the webhooks service switched an endpoint off, its subject and partition
// key the endpoint's id, its sequence how often the endpoint was disabled.
// webhook.ping is sent to one endpoint only, when staff ask for a test
// (POST /v1/webhooks/{id}/ping); it is never on the bus.
const (
	WebhookDisabled = "webhook.disabled"
	WebhookPing     = "webhook.ping"
)

// SourceWebhooks is the source of the webhooks service's events.
const SourceWebhooks = "/customerbus/webhooks"

// Reasons an endpoint was disabled by the webhooks service.
const (
	WebhookDisabledGone    = "gone"    // it answered 410 Gone
	WebhookDisabledFailing = "failing" // every attempt failed for WEBHOOKS_DISABLE_AFTER
)

// Webhook is an endpoint as the API returns it and events carry it: never
// its secret.
type Webhook struct {
	ID          uuid.UUID `json:"id"`
	URL         string    `json:"url"`
	EventTypes  []string  `json:"event_types"`
	ContentMode string    `json:"content_mode"`
	Description string    `json:"description"`
	IsActive    bool      `json:"is_active"`
	// DisabledReason and DisabledAt say why and when the webhooks service
	// switched it off (null when staff did, or when it is active).
	DisabledReason *string    `json:"disabled_reason"`
	DisabledAt     *time.Time `json:"disabled_at"`
	// FailingSince is the first failed attempt since the last delivery.
	FailingSince *time.Time `json:"failing_since"`
	// PreviousSecretExpiresAt is when the secret replaced by the last
	// rotation stops signing (null when none does).
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
}

// WebhookDisabledData is the data of webhook.disabled.
type WebhookDisabledData struct {
	Webhook Webhook `json:"webhook"`
	// Reason is WebhookDisabledGone or WebhookDisabledFailing.
	Reason string `json:"reason"`
	// LastError is what the last attempt got (a status, a timeout).
	LastError string `json:"last_error"`
}

// WebhookPingData is the data of webhook.ping.
type WebhookPingData struct {
	WebhookID uuid.UUID `json:"webhook_id"`
	Message   string    `json:"message"`
}
