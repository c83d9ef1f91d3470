package console

import (
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/webhook"
)

const webhooksPath = Prefix + "/webhooks"

func webhookPath(id uuid.UUID) string { return webhooksPath + "/" + id.String() }

// webhookFields are the create form's inputs, named as the API's fields.
var webhookFields = []string{"url", "event_types", "content_mode", "description"}

func (c *Console) listWebhooks(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return c.webhooksPage(w, r, p, http.StatusOK, newForm(nil))
}

func (c *Console) webhooksPage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form) error {
	page, err := c.Webhooks.List(r.Context(), customer.MaxLimit, "")
	if err != nil {
		return err
	}
	if f.Values.Get("content_mode") == "" {
		f.Values.Set("content_mode", webhook.ContentStructured)
	}
	c.render(w, r, status, "webhooks", view{Title: "Webhooks", Nav: "webhooks", Staff: p, Form: f, Data: page})
	return nil
}

// createWebhook creates the endpoint and shows its secret, this once.
// Event types are typed comma- or space-separated, as the API's list.
func (c *Console) createWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	url, mode, description := f.Get("url"), f.Get("content_mode"), f.Get("description")
	types := strings.FieldsFunc(f.Get("event_types"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' })
	if types == nil {
		types = []string{}
	}
	created, err := c.Webhooks.Create(r.Context(), webhook.Input{URL: &url, EventTypes: types, ContentMode: &mode, Description: &description})
	if err != nil {
		return showAgain(f, err, func(status int, f form) error { return c.webhooksPage(w, r, p, status, f) }, webhookFields...)
	}
	return c.showSecret(w, r, p, "Webhook created", created)
}

func (c *Console) showSecret(w http.ResponseWriter, r *http.Request, p auth.Principal, title string, wh webhook.Revealed) error {
	c.render(w, r, http.StatusOK, "secret", view{Title: title, Nav: "webhooks", Staff: p, Data: secretPage{
		What: "Signing secret of " + wh.URL, Secret: wh.Secret, Back: webhookPath(wh.ID),
		Hint: "The endpoint checks each delivery's signature with it. Copy it now: it is not shown again.",
	}})
	return nil
}

type webhookPage struct {
	Webhook    webhook.Webhook
	Deliveries []webhook.Delivery
}

// deliveriesShown is how many of the newest deliveries the page lists.
const deliveriesShown = 20

func webhookID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("wid"))
	if err != nil {
		return uuid.Nil, webhook.ErrNotFound
	}
	return id, nil
}

func (c *Console) showWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := webhookID(r)
	if err != nil {
		return err
	}
	wh, err := c.Webhooks.Get(r.Context(), id)
	if err != nil {
		return err
	}
	deliveries, err := c.Webhooks.Deliveries(r.Context(), id, "", deliveriesShown, "")
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "webhook", view{Title: wh.URL, Nav: "webhooks", Staff: p,
		Data: webhookPage{Webhook: wh, Deliveries: deliveries.Deliveries}})
	return nil
}

// webhookForm is the shape of the endpoint's buttons: run changes the
// endpoint of the path, then the console goes to the page to, saying msg.
func webhookForm(run func(r *http.Request, p auth.Principal, id uuid.UUID) (to, msg string, err error)) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := webhookID(r)
		if err != nil {
			return err
		}
		to, msg, err := run(r, p, id)
		if err != nil {
			return err
		}
		return done(w, r, to, msg)
	}
}

// setWebhookActive switches the endpoint off, or on again, as the API's
// PATCH with is_active.
func (c *Console) setWebhookActive() handler {
	return webhookForm(func(r *http.Request, _ auth.Principal, id uuid.UUID) (string, string, error) {
		f, err := parseForm(r)
		if err != nil {
			return "", "", err
		}
		active := f.Get("active") == "true"
		if _, err := c.Webhooks.Update(r.Context(), id, webhook.Input{IsActive: &active}); err != nil {
			return "", "", err
		}
		if active {
			return webhookPath(id), "Webhook activated.", nil
		}
		return webhookPath(id), "Webhook deactivated: nothing is delivered to it until it is activated.", nil
	})
}

func (c *Console) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := webhookID(r)
	if err != nil {
		return err
	}
	rotated, err := c.Webhooks.RotateSecret(r.Context(), id)
	if err != nil {
		return err
	}
	return c.showSecret(w, r, p, "New secret", rotated)
}

// confirmDeleteWebhook asks before deleting the endpoint.
func (c *Console) confirmDeleteWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := webhookID(r)
	if err != nil {
		return err
	}
	wh, err := c.Webhooks.Get(r.Context(), id)
	if err != nil {
		return err
	}
	c.confirmPage(w, r, p, "webhooks", http.StatusOK, newForm(nil), confirmation{
		Title:   "Delete the webhook " + wh.URL + "?",
		Explain: []string{"Nothing is delivered to it any more, and its deliveries are deleted with it. This cannot be undone; to pause it, deactivate it instead."},
		Action:  webhookPath(id) + "/delete", Button: "Delete webhook", Cancel: webhookPath(id),
		Crumbs: []crumb{{webhooksPath, "Webhooks"}, {webhookPath(id), wh.URL}},
	})
	return nil
}

// pingWebhook queues a webhook.ping delivery to the endpoint, as the API's
// POST /v1/webhooks/{id}/ping.
func (c *Console) pingWebhook() handler {
	return webhookForm(func(r *http.Request, p auth.Principal, id uuid.UUID) (string, string, error) {
		_, err := c.Webhooks.Ping(r.Context(), origin(p), id)
		return webhookPath(id) + "#deliveries", "Ping queued: it is listed below.", err
	})
}

// retryDelivery sends a delivery again, as the API's POST
// /v1/webhooks/{id}/deliveries/{did}/retry.
func (c *Console) retryDelivery() handler {
	return webhookForm(func(r *http.Request, _ auth.Principal, id uuid.UUID) (string, string, error) {
		did, err := uuid.Parse(r.PathValue("did"))
		if err != nil {
			return "", "", webhook.ErrDeliveryNotFound
		}
		_, err = c.Webhooks.Retry(r.Context(), id, did)
		return webhookPath(id) + "#deliveries", "Delivery queued again.", err
	})
}

func (c *Console) deleteWebhook() handler {
	return webhookForm(func(r *http.Request, _ auth.Principal, id uuid.UUID) (string, string, error) {
		return webhooksPath, "Webhook deleted, with its deliveries.", c.Webhooks.Delete(r.Context(), id)
	})
}
