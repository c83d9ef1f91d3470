package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// erasedAnswer replaces a kept answer that showed an erased customer (an
// Idempotency-Key's first answer, a bus command's reply): a replay gets
// this problem instead of the person's data.
const erasedAnswer = `{"type":"https://customerbus.dev/problems/` + customer.CodeAnonymized + `","title":"Gone","status":410,` +
	`"detail":"this answer showed a customer whose personal data has been erased since",` +
	`"errors":[{"field":"","code":"` + customer.CodeAnonymized + `","message":"the customer was anonymized"}]}`

// erase does, in the erasure's transaction, everything of the erasure
// that the customer's row does not hold: the customer's addresses, notes,
// one-time tokens, sessions and consent history go; its orders (and the guest orders placed
// with its email) and transfer requests keep all but the email (the
// customer service cancels the open ones); kept
// answers that show it become erasedAnswer; what orders its bus commands
// and counts its failed logins goes, and so do its events waiting for
// delivery to webhooks (with their deliveries); and the relay is left the
// erasure of the streams. The row itself is written by the caller.
func erase(ctx context.Context, q *gen.Queries, cur customer.Customer, e *customer.Erasure) error {
	id := cur.ID
	for what, del := range map[string]func(context.Context, uuid.UUID) error{
		"addresses": q.DeleteCustomerAddresses, "notes": q.DeleteCustomerNotes,
		"tokens": q.DeleteCustomerTokens, "sessions": q.DeleteCustomerSessions, "consent history": q.DeleteConsentChanges,
		"identities": q.DeleteCustomerIdentities,
	} {
		if err := del(ctx, id); err != nil {
			return fmt.Errorf("store: erase %s: %w", what, err)
		}
	}
	orders, err := q.ScrubCustomerOrders(ctx, gen.ScrubCustomerOrdersParams{Placeholder: e.Placeholder, CustomerID: &id, Email: e.Email})
	if err != nil {
		return fmt.Errorf("store: erase orders' email: %w", err)
	}
	if err := q.ScrubTransferEmails(ctx, gen.ScrubTransferEmailsParams{Placeholder: e.Placeholder, CustomerID: &id, OrderIds: orders}); err != nil {
		return fmt.Errorf("store: erase transfer requests: %w", err)
	}
	if err := q.ScrubIdempotencyAnswers(ctx, gen.ScrubIdempotencyAnswersParams{
		Body: []byte(erasedAnswer), Needle: []byte(id.String()), IDText: id.String(),
	}); err != nil {
		return fmt.Errorf("store: erase kept answers: %w", err)
	}
	if err := q.ScrubCommandReplies(ctx, gen.ScrubCommandRepliesParams{Reply: []byte(erasedAnswer), CustomerID: &id}); err != nil {
		return fmt.Errorf("store: erase command replies: %w", err)
	}
	if err := q.DeleteCommandOrderKeys(ctx, []string{id.String(), e.Email}); err != nil {
		return fmt.Errorf("store: erase command order: %w", err)
	}
	for _, k := range e.LoginKeys {
		if err := q.ClearLoginFailures(ctx, k); err != nil {
			return fmt.Errorf("store: erase login failures: %w", err)
		}
	}
	if err := q.MarkCustomerAnonymized(ctx, id); err != nil {
		return fmt.Errorf("store: mark anonymized: %w", err)
	}
	// The customer's events, and those of its orders' guest-order days.
	keys := []string{id.String()}
	for _, o := range orders {
		keys = append(keys, o.String())
	}
	if err := q.DeleteWebhookEventsOf(ctx, keys); err != nil {
		return fmt.Errorf("store: erase webhook events: %w", err)
	}
	if err := q.InsertErasure(ctx, gen.InsertErasureParams{
		CustomerID: id, KeepEventID: e.KeepEventID, PartitionKeys: keys, Emails: []string{e.Email}, RequestedAt: time.Now(),
	}); err != nil {
		return fmt.Errorf("store: erasure: %w", err)
	}
	return nil
}
