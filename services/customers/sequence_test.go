package customers_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers"
)

// Every flow of the system, run against the real thing (HTTP, storefront,
// order linker, bus commands), makes events that keep the contract:
//   - every public event type, command.rejected and every notification type
//     is read alike by sdk-go's core NATS binding over a subscription, its
//     JetStream binding over a consumer, and as raw JSON (see everyReader);
//   - each event's data matches the schema its dataschema serves;
//   - every subject on the events stream has the sequences 1..N in stream
//     order, and each resource's last sequence is its version: every version
//     change has exactly one event, none is missing at the end either.
//
// Notification events (CUSTOMERBUS_NOTIFICATIONS) are left out of the
// sequences: they carry the version current when the email was requested
// and are no version change of their own, so they repeat sequences by design.
//
// The deletions keep the data (DELETE_RETAINS_DATA), so that every event
// stays on the stream to be checked; the last step, an erasure, removes a
// customer's earlier events, and what stays keeps the contract too.
func TestEveryFlowKeepsTheEventContract(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, func(c *customers.Config) { c.Privacy.RetainOnDelete = true })
	readers := s.readEveryWay()
	s.runLinker()
	s.runCommands()
	step := func(method, path string, body any, status int) reply {
		t.Helper()
		r := request(t, s, method, path, body, nil)
		r.expectStatus(t, status)
		return r
	}
	email := func(who string) string { return who + "-" + randomSuffix() + "@example.com" }

	// Staff: one customer through every kind of change.
	ann := s.createCustomer(map[string]any{"email": email("ann"), "addresses": []any{validAddress()},
		"metadata": map[string]string{"tier": "silver"}, "private_metadata": map[string]string{"erp": "1"}})
	base := "/v1/customers/" + ann.ID
	step(http.MethodPatch, base, map[string]any{"first_name": "Ann", "last_name": "Lee"}, http.StatusOK)
	step(http.MethodPatch, base, map[string]any{"private_metadata": map[string]string{"erp": "2"}}, http.StatusOK)
	step(http.MethodPatch, base, map[string]any{"note": "vip", "private_metadata": map[string]string{"erp": "3"}}, http.StatusOK)
	step(http.MethodPatch, base+"/metadata", map[string]any{"set": map[string]string{"tier": "gold"}}, http.StatusOK)
	step(http.MethodPatch, base+"/private-metadata", map[string]any{"set": map[string]string{"risk": "low"}}, http.StatusOK)
	var addr addressJSON
	step(http.MethodPost, base+"/addresses", validAddress(), http.StatusCreated).decode(t, &addr)
	step(http.MethodPatch, base+"/addresses/"+addr.ID, map[string]any{"city": "Köln"}, http.StatusOK)

	// An identity provider's sign-in links an existing customer (verifying
	// it): customer.verified and the customer.identity_linked notice.
	op := newTestOP(t)
	linked := s.createCustomer(map[string]any{"email": email("lea")})
	s.exchange(s.addProvider(op), op.idToken(shopClientID, shopClientSecret, op.addUser(linked.Email, true))).expectStatus(t, http.StatusOK)
	step(http.MethodDelete, base+"/addresses/"+addr.ID, nil, http.StatusNoContent)
	step(http.MethodPost, base+"/notes", map[string]any{"text": "called"}, http.StatusCreated)
	step(http.MethodPut, base+"/consent/email", map[string]any{"state": "subscribed", "collected_from": "checkout"}, http.StatusOK)

	// Groups, two of them deleted with members.
	bob := s.createCustomer(map[string]any{"email": email("bob")})
	vip := s.createGroup("vip-" + randomSuffix())
	step(http.MethodPatch, "/v1/customer-groups/"+vip.ID, map[string]any{"description": "the best"}, http.StatusOK)
	step(http.MethodPost, "/v1/customer-groups/"+vip.ID+"/customers", map[string]any{"add": []string{ann.ID, bob.ID}}, http.StatusOK)
	step(http.MethodPost, "/v1/customer-groups/"+vip.ID+"/customers", map[string]any{"remove": []string{bob.ID}}, http.StatusOK)
	step(http.MethodPost, "/v1/customer-groups/"+vip.ID+"/customers", map[string]any{"add": []string{bob.ID}, "remove": []string{ann.ID}}, http.StatusOK)
	other := s.createGroup("other-" + randomSuffix())
	step(http.MethodPost, "/v1/customer-groups/"+other.ID+"/customers", map[string]any{"add": []string{ann.ID}}, http.StatusOK)
	step(http.MethodDelete, "/v1/customer-groups/"+other.ID, nil, http.StatusNoContent)
	step(http.MethodDelete, "/v1/customer-groups/"+vip.ID, nil, http.StatusNoContent)
	// An attribute defined, set on ann (customer.updated), changed,
	// removed from her, and deleted.
	step(http.MethodPost, "/v1/settings/customer-attributes", map[string]any{"key": "tier", "label": "Tier", "type": "enum", "values": []string{"gold"}}, http.StatusCreated)
	step(http.MethodPatch, base, map[string]any{"attributes": map[string]any{"tier": "gold"}}, http.StatusOK)
	step(http.MethodPatch, "/v1/settings/customer-attributes/tier", map[string]any{"values": []string{"gold", "silver"}}, http.StatusOK)
	step(http.MethodPatch, base, map[string]any{"attributes": map[string]any{"tier": nil}}, http.StatusOK)
	step(http.MethodDelete, "/v1/settings/customer-attributes/tier", nil, http.StatusNoContent)

	// Bulk changes.
	cy, dee := s.createCustomer(map[string]any{"email": email("cy")}), s.createCustomer(map[string]any{"email": email("dee")})
	step(http.MethodPost, "/v1/customers/bulk-update", map[string]any{"ids": []string{ann.ID, bob.ID}, "update": map[string]any{"is_active": false}}, http.StatusOK)
	step(http.MethodPost, "/v1/customers/bulk-update", map[string]any{"ids": []string{ann.ID, bob.ID}, "update": map[string]any{"is_active": true}}, http.StatusOK)
	step(http.MethodPost, "/v1/customers/bulk-delete", map[string]any{"ids": []string{cy.ID, dee.ID}}, http.StatusOK)

	// A merge of a customer with an order and a group into another.
	mia, max := s.createCustomer(map[string]any{"email": email("mia")}), s.createCustomer(map[string]any{"email": email("max"), "phone": "+4930999888"})
	s.recordOrder(orderBody(&max.ID, time.Now()))
	maxGroup := s.createGroup("max-" + randomSuffix())
	step(http.MethodPost, "/v1/customer-groups/"+maxGroup.ID+"/customers", map[string]any{"add": []string{max.ID}}, http.StatusOK)
	step(http.MethodPost, "/v1/customers/"+mia.ID+"/merge", map[string]any{"source_id": max.ID, "override": map[string]string{"phone": max.ID}}, http.StatusOK)

	// Orders: one of a customer, guest orders linked by the order linker
	// (before and after a registration is confirmed, and on an invitation).
	annOrder := s.recordOrder(orderBody(&ann.ID, time.Now()))
	guestOrder := func(to string) orderJSON {
		b := orderBody(nil, time.Now())
		b["email"] = to
		return s.recordOrder(b)
	}
	evaEmail := email("eva")
	early := guestOrder(evaEmail)
	var eva storeCustomerJSON
	s.public(http.MethodPost, "/v1/store/register", map[string]any{
		"email": evaEmail, "password": "long enough", "redirect_url": shopURL, "channel": "web",
	}).decode(t, &eva)
	s.public(http.MethodPost, "/v1/store/confirm", map[string]any{"token": s.emailToken(eva.ID, events.CustomerVerificationRequested)}).
		expectStatus(t, http.StatusOK)
	evaSession := s.login(evaEmail, "long enough")
	s.waitOrders(evaSession.AccessToken, 1)
	guestOrder(evaEmail)
	s.waitOrders(evaSession.AccessToken, 2)
	invitedEmail := email("ivy")
	guestOrder(invitedEmail)
	ivy := s.createCustomer(map[string]any{"email": invitedEmail, "redirect_url": shopURL, "channel": "web"})
	s.public(http.MethodPost, "/v1/store/password", map[string]any{
		"token": s.emailToken(ivy.ID, events.CustomerPasswordSetupRequested), "password": "long enough",
	}).expectStatus(t, http.StatusOK)
	s.waitOrders(s.login(invitedEmail, "long enough").AccessToken, 1)

	// Transfers: accepted (of the linked guest order), declined, cancelled,
	// expired and asked again, and of a guest order.
	xan := s.newShopper()
	decide := func(orderID, owner, action string) {
		t.Helper()
		s.public(http.MethodPost, "/v1/store/orders/"+orderID+"/transfer/"+action, map[string]any{
			"token": s.notification(owner, events.OrderTransferApprovalRequested).Token, "redirect_url": shopURL, "channel": "web",
		}).expectStatus(t, http.StatusOK)
	}
	s.requestTransfer(early.ID, xan.ID).expectStatus(t, http.StatusCreated)
	decide(early.ID, eva.ID, "accept")
	s.requestTransfer(annOrder.ID, xan.ID).expectStatus(t, http.StatusCreated)
	decide(annOrder.ID, ann.ID, "decline")
	s.requestTransfer(annOrder.ID, xan.ID).expectStatus(t, http.StatusCreated)
	step(http.MethodDelete, "/v1/orders/"+annOrder.ID+"/transfer-requests", nil, http.StatusOK)
	s.requestTransfer(annOrder.ID, xan.ID).expectStatus(t, http.StatusCreated)
	if _, err := s.pool.Exec(context.Background(), `UPDATE order_transfer_requests SET expires_at = now() - interval '1 second' WHERE status = 'open'`); err != nil {
		t.Fatal(err)
	}
	s.requestTransfer(annOrder.ID, xan.ID).expectStatus(t, http.StatusCreated)
	walkIn := s.recordOrder(orderBody(nil, time.Now()))
	s.requestTransfer(walkIn.ID, xan.ID).expectStatus(t, http.StatusCreated)
	decide(walkIn.ID, walkIn.ID, "accept")

	// The storefront: a shopper's whole life.
	yu := s.newShopper()
	s.as(yu.AccessToken, http.MethodPatch, "/v1/store/me", map[string]any{"first_name": "Yu", "phone": "+4930123456"}).expectStatus(t, http.StatusOK)
	var own addressJSON
	s.as(yu.AccessToken, http.MethodPost, "/v1/store/me/addresses", validAddress()).decode(t, &own)
	s.as(yu.AccessToken, http.MethodPatch, "/v1/store/me/addresses/"+own.ID, map[string]any{"city": "Bonn"}).expectStatus(t, http.StatusOK)
	s.as(yu.AccessToken, http.MethodDelete, "/v1/store/me/addresses/"+own.ID, nil).expectStatus(t, http.StatusNoContent)
	s.as(yu.AccessToken, http.MethodPut, "/v1/store/me/consent/email", map[string]any{
		"state": "subscribed", "opt_in_level": "confirmed_opt_in", "redirect_url": shopURL, "channel": "web",
	}).expectStatus(t, http.StatusOK)
	s.public(http.MethodPost, "/v1/store/consent/confirm", map[string]any{"token": s.emailToken(yu.ID, events.CustomerConsentConfirmationRequested)}).
		expectStatus(t, http.StatusOK)
	var refreshed sessionJSON
	s.public(http.MethodPost, "/v1/store/token/refresh", map[string]any{"refresh_token": yu.RefreshToken}).decode(t, &refreshed)
	s.as(refreshed.AccessToken, http.MethodPost, "/v1/store/logout", nil).expectStatus(t, http.StatusNoContent)
	s.public(http.MethodPost, "/v1/store/password-reset", map[string]any{"email": yu.Email, "redirect_url": shopURL, "channel": "web"}).
		expectStatus(t, http.StatusAccepted)
	s.public(http.MethodPost, "/v1/store/password", map[string]any{
		"token": s.emailToken(yu.ID, events.CustomerPasswordResetRequested), "password": "a new password",
	}).expectStatus(t, http.StatusOK)
	session := s.login(yu.Email, "a new password")
	s.as(session.AccessToken, http.MethodPost, "/v1/store/me/email-change", map[string]any{
		"new_email": email("yu-new"), "password": "a new password", "redirect_url": shopURL, "channel": "web",
	}).expectStatus(t, http.StatusAccepted)
	s.as(session.AccessToken, http.MethodPost, "/v1/store/me/email-change/confirm", map[string]any{
		"token": s.emailToken(yu.ID, events.CustomerEmailChangeRequested),
	}).expectStatus(t, http.StatusOK)
	s.as(session.AccessToken, http.MethodPost, "/v1/store/me/deletion-request", map[string]any{"redirect_url": shopURL, "channel": "web"}).
		expectStatus(t, http.StatusAccepted)
	s.as(session.AccessToken, http.MethodPost, "/v1/store/me/delete", map[string]any{
		"token": s.emailToken(yu.ID, events.CustomerDeletionRequested),
	}).expectStatus(t, http.StatusNoContent)

	// Bus commands, a rejected one among them.
	busEmail := email("bus")
	s.command("", events.CmdCustomerCreate, map[string]any{"email": busEmail})
	s.command("", events.CmdCustomerCreate, map[string]any{"email": "not an email"}) // rejected
	s.waitCommands(2)
	var busID, busGroup string
	if err := s.pool.QueryRow(context.Background(), `SELECT id::text FROM customers WHERE email = $1`, busEmail).Scan(&busID); err != nil {
		t.Fatal(err)
	}
	busGroup = s.createGroup("bus-" + randomSuffix()).ID
	busAddress := validAddress()
	busAddress["customer_id"] = busID
	for _, c := range []struct {
		typ  string
		data any
	}{
		{events.CmdCustomerUpdate, map[string]any{"id": busID, "last_name": "Bus"}},
		{events.CmdCustomerUpdate, map[string]any{"id": busID, "phone": "not a phone"}}, // rejected
		{events.CmdCustomerMetadataUpdate, map[string]any{"id": busID, "set": map[string]string{"via": "bus"}}},
		{events.CmdCustomerPrivateMetadataUpdate, map[string]any{"id": busID, "set": map[string]string{"risk": "high"}}},
		{events.CmdCustomerAddressCreate, busAddress},
		{events.CmdGroupCustomersAdd, map[string]any{"group_id": busGroup, "customer_ids": []string{busID}}},
		{events.CmdGroupCustomersRemove, map[string]any{"group_id": busGroup, "customer_ids": []string{busID}}},
		{events.CmdOrderRecord, orderBody(&busID, time.Now())},
	} {
		s.command("", c.typ, c.data)
	}
	s.waitCommands(10)
	var busAddressID string
	if err := s.pool.QueryRow(context.Background(), `SELECT id::text FROM customer_addresses WHERE customer_id = $1`, busID).Scan(&busAddressID); err != nil {
		t.Fatal(err)
	}
	s.command("", events.CmdCustomerAddressUpdate, map[string]any{"customer_id": busID, "address_id": busAddressID, "city": "Hamburg"})
	s.command("", events.CmdCustomerAddressDelete, map[string]any{"customer_id": busID, "address_id": busAddressID})
	s.command("", events.CmdCustomerDelete, map[string]any{"id": busID})
	s.waitCommands(13)

	// Last: a customer with orders and addresses is deleted.
	step(http.MethodDelete, base, nil, http.StatusNoContent)

	all := readers.read()
	seen := map[string]bool{}
	var public []cloudevents.Event
	for _, e := range all {
		seen[e.Type()] = true
		if !events.IsNotification(e.Type()) {
			public = append(public, e)
		}
	}
	validateAgainstDataschema(t, all)
	s.checkSequences(public)

	// An erasure: bob's earlier events leave the stream; customer.anonymized,
	// the one that stays, is read every way, matches its schema, and takes
	// bob's next version.
	var erased customerJSON
	step(http.MethodPost, "/v1/customers/"+bob.ID+"/anonymize", nil, http.StatusOK).decode(t, &erased)
	s.waitErased(bob.ID)
	after := readers.read()
	validateAgainstDataschema(t, after)
	var bobs []string
	for _, e := range after {
		seen[e.Type()] = true
		if e.Subject() == bob.ID {
			bobs = append(bobs, e.Type()+" "+ext(e, events.ExtSequence))
		}
	}
	if want := events.CustomerAnonymized + " " + fmt.Sprint(erased.Version); !slices.Equal(bobs, []string{want}) {
		t.Errorf("after bob's erasure the stream holds %v about bob, want [%s]", bobs, want)
	}
	for _, typ := range append(slices.Clone(events.PublicTypes), events.NotificationTypes...) {
		// The webhooks service emits webhook.disabled, not this one; its
		// tests in services/webhooks prove it flows.
		if !seen[typ] && typ != events.WebhookDisabled {
			t.Errorf("no %s event among the flows", typ)
		}
	}
}

// waitCommands waits until n bus commands were applied or rejected.
func (s *system) waitCommands(n int) {
	s.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s.count(`SELECT count(*) FROM processed_commands`) >= n {
			return
		}
	}
	s.t.Fatalf("fewer than %d commands processed after 20 s", n)
}

// checkSequences groups the events by subject and fails for every subject
// whose sequences are not 1..N in stream order, and for every resource in
// the database whose version is not its last event's sequence.
func (s *system) checkSequences(evs []cloudevents.Event) {
	s.t.Helper()
	type seen struct{ types, seqs []string }
	bySubject := map[string]*seen{}
	var subjects []string
	for _, e := range evs {
		sn := bySubject[e.Subject()]
		if sn == nil {
			sn = &seen{}
			bySubject[e.Subject()] = sn
			subjects = append(subjects, e.Subject())
		}
		sn.types = append(sn.types, e.Type())
		sn.seqs = append(sn.seqs, ext(e, events.ExtSequence))
	}
	describe := func(sn *seen) string {
		parts := make([]string, len(sn.types))
		for i := range sn.types {
			parts[i] = sn.types[i] + " " + sn.seqs[i]
		}
		return strings.Join(parts, ", ")
	}
	for _, subject := range subjects {
		sn := bySubject[subject]
		for i, seq := range sn.seqs {
			if seq != fmt.Sprint(i+1) {
				s.t.Errorf("subject %s: sequences not 1..%d in stream order: %s", subject, len(sn.seqs), describe(sn))
				break
			}
		}
	}
	rows, err := s.pool.Query(context.Background(), `
		SELECT 'customer', id::text, version FROM customers
		UNION ALL SELECT 'order', id::text, version FROM orders
		UNION ALL SELECT 'order transfer request', id::text, version FROM order_transfer_requests
		UNION ALL SELECT 'customer group', id::text, version FROM customer_groups`)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var kind, id string
		var version int64
		if err := rows.Scan(&kind, &id, &version); err != nil {
			s.t.Fatal(err)
		}
		n++
		sn := bySubject[id]
		if sn == nil || sn.seqs[len(sn.seqs)-1] != fmt.Sprint(version) {
			got := "no events"
			if sn != nil {
				got = describe(sn)
			}
			s.t.Errorf("%s %s: version %d, but its events are: %s", kind, id, version, got)
		}
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	if n == 0 || len(evs) == 0 {
		s.t.Fatalf("%d resources, %d events: nothing was checked", n, len(evs))
	}
}
