package customers_test

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/db/gen"
)

// consoleProvider configures an identity provider through the API, named
// name (its issuer is not reached: nothing here signs in with it).
func (s *system) consoleProvider(name string) string {
	s.t.Helper()
	id := "op-" + randomSuffix()
	s.as(s.token, http.MethodPost, "/v1/settings/oidc-providers", map[string]any{
		"id": id, "display_name": name, "issuer_url": "https://" + id + ".example.com", "client_id": "shop",
		"client_secret": "secret-" + id, "redirect_urls": []string{shopCallback},
	}).expectStatus(s.t, http.StatusCreated)
	return id
}

// linkIdentity stores an identity of the customer at the provider, as a
// first sign-in links one (through sqlc, as the store does), and returns
// its id.
func (s *system) linkIdentity(customerID, provider, subject, email string) string {
	s.t.Helper()
	id := uuid.Must(uuid.NewV7())
	if err := gen.New(s.pool).InsertCustomerIdentity(context.Background(), gen.InsertCustomerIdentityParams{
		ID: id, CustomerID: uuid.MustParse(customerID), ProviderID: provider, Issuer: "https://" + provider + ".example.com",
		Subject: subject, Email: email, CreatedAt: time.Now(),
	}); err != nil {
		s.t.Fatal(err)
	}
	return id.String()
}
