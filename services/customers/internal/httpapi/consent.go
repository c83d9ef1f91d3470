package httpapi

import (
	"net/http"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// consentResponse is a customer's marketing consent on one channel.
type consentResponse struct {
	Channel string `json:"channel"`
	events.MarketingConsent
}

// consent answers the customer's consent on the channel of the change.
func consent(channel string) func(customer.Customer, error) (any, error) {
	return func(c customer.Customer, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		return consentOn(c, channel), nil
	}
}

func consentOn(c customer.Customer, channel string) consentResponse {
	p := c.Public()
	out := consentResponse{Channel: channel, MarketingConsent: p.EmailMarketingConsent}
	if channel == customer.ChannelSMS {
		out.MarketingConsent = p.SMSMarketingConsent
	}
	return out
}

// setConsent is PUT /v1/customers/{id}/consent/{channel} (staff).
func (a *API) setConsent() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, p auth.Principal, in customer.ConsentInput) (any, error) {
		id, err := pathID(r)
		if err != nil {
			return nil, err
		}
		channel := r.PathValue("channel")
		return consent(channel)(a.customers.SetConsent(r.Context(), origin(r, p), id, channel, in, false))
	})
}

// setMyConsent is PUT /v1/store/me/consent/{channel}: the customer's own.
func (a *API) setMyConsent() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, p auth.Principal, in customer.ConsentInput) (any, error) {
		channel := r.PathValue("channel")
		return consent(channel)(a.customers.SetConsent(r.Context(), origin(r, p), p.CustomerID, channel, in, true))
	})
}

// getMyConsent is GET /v1/store/me/consent/{channel}.
func (a *API) getMyConsent(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	channel := r.PathValue("channel")
	if err := customer.CheckChannel(channel); err != nil {
		return err
	}
	c, err := a.customers.Get(r.Context(), p.CustomerID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, consentOn(c, channel))
	return nil
}

// confirmConsent is POST /v1/store/consent/confirm: the link of a confirmed
// opt-in's email.
func (a *API) confirmConsent() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, p auth.Principal, in customer.TokenInput) (any, error) {
		return consent(customer.ChannelEmail)(a.customers.ConfirmConsent(r.Context(), origin(r, p), in))
	})
}
