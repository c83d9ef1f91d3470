package webhook

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// checkURL returns the endpoint's URL, trimmed: absolute, https (or http
// when allowed), with a host and without a user or password.
func checkURL(c *customer.Checks, raw string, allowHTTP bool) string {
	s := strings.TrimSpace(raw)
	schemes := "https"
	if allowHTTP {
		schemes = "https or http"
	}
	u, err := url.Parse(s)
	switch {
	case s == "":
		c.Fail("url", customer.CodeRequired, "url must not be blank")
	case len(s) > MaxURLLength:
		c.Fail("url", customer.CodeTooLong, "url must be at most %d characters", MaxURLLength)
	case err != nil || !u.IsAbs():
		c.Fail("url", customer.CodeInvalid, "url must be an absolute URL, as https://hooks.example.com/customerbus")
	case u.Scheme != "https" && (u.Scheme != "http" || !allowHTTP):
		c.Fail("url", customer.CodeInvalid, "url must use %s (http only where WEBHOOKS_ALLOW_HTTP is set), not %s", schemes, u.Scheme)
	case u.Hostname() == "":
		c.Fail("url", customer.CodeInvalid, "url must name a host")
	case u.User != nil:
		c.Fail("url", customer.CodeInvalid, "url must not carry a user or password: receivers check a delivery by its signature")
	}
	return s
}

// patternPrefixes are what a pattern may name before ".*": the part of some
// public event type before its dot (customer, customer_group, order, …).
var patternPrefixes = func() []string {
	var out []string
	for _, t := range events.PublicTypes {
		if p, _, ok := strings.Cut(t, "."); ok && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}()

// checkEventTypes returns the event types an endpoint subscribes to, trimmed
// and without repeats: public event types, prefix patterns as customer.*,
// or * for every public event. Notifications are never sent to webhooks:
// they carry one-time tokens.
func checkEventTypes(c *customer.Checks, in []string) []string {
	switch {
	case len(in) == 0:
		c.Fail("event_types", customer.CodeRequired, "event_types needs at least one event type, pattern as customer.*, or *")
		return nil
	case len(in) > MaxEventTypes:
		c.Fail("event_types", customer.CodeTooMany, "event_types takes at most %d entries; use a pattern as customer.* or *", MaxEventTypes)
		return nil
	}
	out := make([]string, 0, len(in))
	for i, raw := range in {
		t := strings.TrimSpace(raw)
		field := fmt.Sprintf("event_types[%d]", i)
		prefix, isPattern := strings.CutSuffix(t, ".*")
		switch {
		case t == "*", slices.Contains(events.PublicTypes, t), isPattern && slices.Contains(patternPrefixes, prefix):
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		case events.IsNotification(t):
			c.Fail(field, customer.CodeInvalid, "%s is a notification: it carries a one-time token, so only the notifier gets it, never a webhook", t)
		case t == events.WebhookPing:
			c.Fail(field, customer.CodeInvalid, "%s needs no subscription: POST /v1/webhooks/{id}/ping sends it", t)
		case isPattern:
			c.Fail(field, customer.CodeInvalid, "%q matches no public event type; patterns are %s.* (or * for all)", t, strings.Join(patternPrefixes, ".*, "))
		default:
			c.Fail(field, customer.CodeInvalid, "%q is not a public event type, a pattern as customer.*, or *", t)
		}
	}
	return out
}
