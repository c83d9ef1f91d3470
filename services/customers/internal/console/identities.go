package console

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// A customer's sign-in methods: the identities linked at identity
// providers (customer.Identities), each removable by staff through the
// same use case as the customer's own DELETE /v1/store/me/identities/{id}
// (customer.RemoveIdentity, which keeps a passwordless customer's last).

// signInMethod is a linked identity as the customer's page shows it.
type signInMethod struct {
	customer.Identity
	// Provider is the provider's display name (its id if it has none).
	Provider string
}

// Subject is the issuer's subject shortened: enough to tell two apart,
// not a whole identifier to copy elsewhere.
func (m signInMethod) Subject() string {
	const shown = 6
	if r := []rune(m.Identity.Subject); len(r) > shown {
		return string(r[:shown]) + "…"
	}
	return "…"
}

func (c *Console) signInMethods(ctx context.Context, customerID uuid.UUID) ([]signInMethod, error) {
	ids, err := c.Customers.Identities(ctx, customerID)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	// The providers' display names are public (the storefront lists them).
	choices, err := c.IdentityProviders.Choices(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, ch := range choices {
		names[ch.ID] = ch.DisplayName
	}
	out := make([]signInMethod, len(ids))
	for i, id := range ids {
		out[i] = signInMethod{Identity: id, Provider: id.ProviderID}
		if name := names[id.ProviderID]; name != "" {
			out[i].Provider = name
		}
	}
	return out, nil
}

// identityOf reads the customer and the identity of the path.
func (c *Console) identityOf(r *http.Request) (customer.Customer, signInMethod, error) {
	id, err := pathUUID(r, "id")
	if err != nil {
		return customer.Customer{}, signInMethod{}, err
	}
	iid, err := uuid.Parse(r.PathValue("iid"))
	if err != nil {
		return customer.Customer{}, signInMethod{}, customer.ErrIdentityNotFound
	}
	cu, err := c.Customers.Get(r.Context(), id)
	if err != nil {
		return customer.Customer{}, signInMethod{}, err
	}
	methods, err := c.signInMethods(r.Context(), id)
	if err != nil {
		return customer.Customer{}, signInMethod{}, err
	}
	for _, m := range methods {
		if m.ID == iid {
			return cu, m, nil
		}
	}
	return customer.Customer{}, signInMethod{}, customer.ErrIdentityNotFound
}

// confirmRemoveIdentity asks before unlinking the identity.
func (c *Console) confirmRemoveIdentity(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cu, m, err := c.identityOf(r)
	if err != nil {
		return err
	}
	c.confirmPage(w, r, p, "customers", http.StatusOK, newForm(nil), confirmation{
		Title: "Remove the sign-in with " + m.Provider + " from " + cu.Email + "?",
		Explain: []string{
			"The account " + m.Email + " at " + m.Provider + " no longer signs in to this customer. A later sign-in with it links again only by a verified email, as a first one does.",
			"The customer's only way to sign in is kept: without a password, the last linked identity cannot be removed.",
		},
		Action: customerPath(cu.ID) + "/identities/" + m.ID.String() + "/remove", Button: "Remove sign-in method",
		Cancel: customerPath(cu.ID) + "#sign-in", Crumbs: []crumb{{Prefix + "/customers", "Customers"}, {customerPath(cu.ID), cu.Email}},
	})
	return nil
}

// removeIdentity unlinks the identity; a refusal (the last way in) is
// shown in the customer page's sign-in methods.
func (c *Console) removeIdentity(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cu, m, err := c.identityOf(r)
	if err != nil {
		return err
	}
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	if err := c.Customers.RemoveIdentity(r.Context(), cu.ID, m.ID); err != nil {
		return showAgain(f, err, c.customerPageOf(w, r, p, cu.ID, "identities"))
	}
	return done(w, r, customerPath(cu.ID)+"#sign-in", "Sign-in with "+m.Provider+" removed.")
}
