package customer

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// Marketing consent, per channel, as Shopify models it.
const (
	ChannelEmail = "email"
	ChannelSMS   = "sms"

	ConsentSubscribed    = "subscribed"
	ConsentUnsubscribed  = "unsubscribed"
	ConsentPending       = "pending" // a confirmed opt-in waiting for its confirmation
	ConsentNotSubscribed = "not_subscribed"

	OptInSingle    = "single_opt_in"
	OptInConfirmed = "confirmed_opt_in"

	// PurposeConsentConfirmation is the token of a confirmed opt-in's email.
	PurposeConsentConfirmation = "consent_confirmation"
)

// ConsentChannels are the channels that have a consent.
var ConsentChannels = []string{ChannelEmail, ChannelSMS}

// CheckChannel refuses a consent channel that is not one of
// ConsentChannels.
func CheckChannel(channel string) error {
	if !slices.Contains(ConsentChannels, channel) {
		return FieldErr("channel", CodeInvalid, "the consent channel is email or sms")
	}
	return nil
}

// Consent is a customer's marketing consent on one channel.
type Consent struct {
	State      string
	OptInLevel string
	// UpdatedAt is when the state last changed; nil while never set.
	UpdatedAt *time.Time
	// CollectedFrom says where it was given: what the caller names (a
	// checkout, a point of sale, an import), or staff, storefront.
	CollectedFrom string
}

// Equal reports whether two consents are the same (times by value).
func (c Consent) Equal(d Consent) bool {
	sameTime := c.UpdatedAt == nil && d.UpdatedAt == nil || c.UpdatedAt != nil && d.UpdatedAt != nil && c.UpdatedAt.Equal(*d.UpdatedAt)
	return c.State == d.State && c.OptInLevel == d.OptInLevel && c.CollectedFrom == d.CollectedFrom && sameTime
}

// DefaultConsent is a new customer's, on each channel.
var DefaultConsent = Consent{State: ConsentNotSubscribed, OptInLevel: OptInSingle}

// Public is the consent as the API and events show it.
func (c Consent) Public() events.MarketingConsent {
	return events.MarketingConsent{State: c.State, OptInLevel: c.OptInLevel, UpdatedAt: c.UpdatedAt, CollectedFrom: c.CollectedFrom}
}

// ConsentChange is one change of a consent, as its history keeps it.
type ConsentChange struct {
	Channel string
	Consent Consent
	Actor   events.Actor
}

// consentOf is a pointer to the customer's consent on the channel.
func consentOf(c *Customer, channel string) *Consent {
	if channel == ChannelSMS {
		return &c.SMSConsent
	}
	return &c.EmailConsent
}

// ConsentInput sets a consent: PUT …/consent/{channel}.
type ConsentInput struct {
	State         string `json:"state"`
	OptInLevel    string `json:"opt_in_level"`
	CollectedFrom string `json:"collected_from"`
	// A confirmed opt-in to email sends a confirmation email: where its
	// link goes.
	EmailLink
}

// MaxCollectedFromLength bounds where a consent was collected.
const MaxCollectedFromLength = 256

// SetConsent changes the customer's consent on the channel and emits
// customer.consent_updated, unless nothing changes. Unsubscribing is always
// allowed. SMS needs a phone to subscribe. A confirmed opt-in to email
// makes the state pending and sends a confirmation email (redirect_url and
// channel required), whose link subscribes (ConfirmConsent). self is a
// customer setting its own (collected from the storefront unless said).
func (s *Service) SetConsent(ctx context.Context, o Origin, id uuid.UUID, channel string, in ConsentInput, self bool) (Customer, error) {
	var r rules
	if err := CheckChannel(channel); err != nil {
		return Customer{}, err
	}
	switch in.State {
	case "":
		r.fail("state", CodeRequired, "state is required: subscribed, unsubscribed or not_subscribed")
	case ConsentSubscribed, ConsentUnsubscribed, ConsentNotSubscribed:
	default:
		r.fail("state", CodeInvalid, "state must be subscribed, unsubscribed or not_subscribed (pending is the state of a confirmed opt-in waiting for its confirmation)")
	}
	level := in.OptInLevel
	switch level {
	case "":
		level = OptInSingle
	case OptInSingle, OptInConfirmed:
	default:
		r.fail("opt_in_level", CodeInvalid, "opt_in_level must be single_opt_in or confirmed_opt_in")
	}
	confirming := in.State == ConsentSubscribed && level == OptInConfirmed
	if confirming && channel == ChannelSMS {
		r.fail("opt_in_level", CodeInvalid, "a confirmed opt-in to SMS needs an SMS sender, which customerbus has not; use single_opt_in")
	}
	r.link(in.EmailLink, confirming && channel == ChannelEmail)
	from := r.text("collected_from", in.CollectedFrom, MaxCollectedFromLength)
	if from == "" {
		from = "staff"
		if self {
			from = "storefront"
		}
	}
	if err := r.err(); err != nil {
		return Customer{}, err
	}
	return update(ctx, s.store, id, func(cur Customer) (*Mutation, error) {
		now := s.now()
		want := Consent{State: in.State, OptInLevel: level, UpdatedAt: &now, CollectedFrom: from}
		if confirming && channel == ChannelEmail {
			want.State = ConsentPending
		}
		old := *consentOf(&cur, channel)
		if old.State == want.State && old.OptInLevel == want.OptInLevel && old.CollectedFrom == want.CollectedFrom {
			return nil, nil
		}
		if channel == ChannelSMS && in.State == ConsentSubscribed && cur.Phone == nil {
			return nil, FieldErr("state", "phone_required", "SMS consent needs the customer's phone number; set it first")
		}
		next := cur
		*consentOf(&next, channel) = want
		m, err := s.consentChanged(o, next, channel, now)
		if err != nil || want.State != ConsentPending {
			return m, err
		}
		plain, tok, err := newToken(PurposeConsentConfirmation, cur.ID, now, s.accounts.EmailTokenTTL)
		if err != nil {
			return nil, err
		}
		note, err := notification(o, events.CustomerConsentConfirmationRequested, m.Customer, plain, tok, in.EmailLink, now)
		if err != nil {
			return nil, err
		}
		m.Events, m.NewTokens = append(m.Events, note), []Token{tok}
		return m, nil
	})
}

// ConfirmConsent subscribes the customer to email with the token of its
// confirmation email: the confirmed opt-in.
func (s *Service) ConfirmConsent(ctx context.Context, o Origin, in TokenInput) (Customer, error) {
	return s.useToken(ctx, in, tokenUse{purposes: []string{PurposeConsentConfirmation}}, func(cur Customer, _ Token, now time.Time) (*Mutation, error) {
		if cur.EmailConsent.State != ConsentPending {
			// Unsubscribed (or confirmed) since: the link no longer says so.
			return nil, FieldErr("token", CodeUsed, "the email consent is %s now; this link no longer applies", cur.EmailConsent.State)
		}
		next := cur
		next.EmailConsent = Consent{State: ConsentSubscribed, OptInLevel: OptInConfirmed, UpdatedAt: &now, CollectedFrom: cur.EmailConsent.CollectedFrom}
		return s.consentChanged(o.OrCustomer(cur.ID), next, ChannelEmail, now)
	})
}

// consentChanged is the mutation of a consent change: the next version,
// customer.consent_updated and the change for the consent's history.
func (s *Service) consentChanged(o Origin, next Customer, channel string, now time.Time) (*Mutation, error) {
	m, err := changed(o, events.CustomerConsentUpdated, next, now, func(c Customer) any {
		return events.CustomerConsentUpdatedData{ID: c.ID, Channel: channel, Consent: consentOf(&c, channel).Public(), Version: c.Version}
	})
	if err != nil {
		return nil, err
	}
	m.Consent = &ConsentChange{Channel: channel, Consent: *consentOf(&m.Customer, channel), Actor: o.Actor}
	return m, nil
}
