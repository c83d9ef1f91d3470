package httpapi

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/webhook"
)

// webhookRoute is a handler about the endpoint of the path's id: it runs do
// and answers status with do's result as JSON, or with no body when it is
// nil.
func webhookRoute(status int, do func(w http.ResponseWriter, r *http.Request, p auth.Principal, id uuid.UUID) (any, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := pathUUID(r, "id", webhook.ErrNotFound)
		if err != nil {
			return err
		}
		out, err := do(w, r, p, id)
		if err != nil {
			return err
		}
		writeAnswer(w, status, out)
		return nil
	}
}

// answer is a use case's result as webhookRoute's do returns it.
func answer[T any](v T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

// public is an endpoint as the API shows it: never its secret.
func public(wh webhook.Webhook, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return wh.Public(), nil
}

// noStore keeps caches from keeping an answer that shows a secret.
func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

func (a *API) createWebhook(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	var in webhook.Input
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	wh, err := a.webhooks.Create(r.Context(), in)
	if err != nil {
		return err
	}
	noStore(w)
	w.Header().Set("Location", "/v1/webhooks/"+wh.ID.String())
	writeJSON(w, http.StatusCreated, wh)
	return nil
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	limit, cursor, err := pageQuery(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := a.webhooks.List(r.Context(), limit, cursor)
	if err != nil {
		return err
	}
	out := make([]events.Webhook, len(page.Webhooks))
	for i, wh := range page.Webhooks {
		out[i] = wh.Public()
	}
	writePage(w, "webhooks", out, page.NextCursor)
	return nil
}

func (a *API) getWebhook() handler {
	return webhookRoute(http.StatusOK, func(_ http.ResponseWriter, r *http.Request, _ auth.Principal, id uuid.UUID) (any, error) {
		return public(a.webhooks.Get(r.Context(), id))
	})
}

func (a *API) updateWebhook() handler {
	return webhookRoute(http.StatusOK, func(w http.ResponseWriter, r *http.Request, _ auth.Principal, id uuid.UUID) (any, error) {
		var in webhook.Input
		if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
			return nil, err
		}
		return public(a.webhooks.Update(r.Context(), id, in))
	})
}

func (a *API) deleteWebhook() handler {
	return webhookRoute(http.StatusNoContent, func(_ http.ResponseWriter, r *http.Request, _ auth.Principal, id uuid.UUID) (any, error) {
		return noBody(a.webhooks.Delete(r.Context(), id))
	})
}

func (a *API) rotateWebhookSecret() handler {
	return webhookRoute(http.StatusOK, func(w http.ResponseWriter, r *http.Request, _ auth.Principal, id uuid.UUID) (any, error) {
		noStore(w)
		return answer(a.webhooks.RotateSecret(r.Context(), id))
	})
}

func (a *API) pingWebhook() handler {
	return webhookRoute(http.StatusAccepted, func(_ http.ResponseWriter, r *http.Request, p auth.Principal, id uuid.UUID) (any, error) {
		return answer(a.webhooks.Ping(r.Context(), origin(r, p), id))
	})
}

func (a *API) retryWebhookDelivery() handler {
	return webhookRoute(http.StatusAccepted, func(_ http.ResponseWriter, r *http.Request, _ auth.Principal, id uuid.UUID) (any, error) {
		did, err := pathUUID(r, "did", webhook.ErrDeliveryNotFound)
		if err != nil {
			return nil, err
		}
		return answer(a.webhooks.Retry(r.Context(), id, did))
	})
}

func (a *API) listWebhookDeliveries(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := pathUUID(r, "id", webhook.ErrNotFound)
	if err != nil {
		return err
	}
	qs := r.URL.Query()
	limit, cursor, err := pageQuery(qs, "status")
	if err != nil {
		return err
	}
	page, err := a.webhooks.Deliveries(r.Context(), id, qs.Get("status"), limit, cursor)
	if err != nil {
		return err
	}
	writePage(w, "deliveries", page.Deliveries, page.NextCursor)
	return nil
}
