package customers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// transferJSON is the API's transfer request resource.
type transferJSON struct {
	ID             string    `json:"id"`
	OrderID        string    `json:"order_id"`
	FromCustomerID *string   `json:"from_customer_id"`
	ToCustomerID   string    `json:"to_customer_id"`
	Status         string    `json:"status"`
	Version        int64     `json:"version"`
	ExpiresAt      time.Time `json:"expires_at"`
}

func (s *system) requestTransfer(orderID, to string) reply {
	s.t.Helper()
	return request(s.t, s, http.MethodPost, "/v1/orders/"+orderID+"/transfer-requests",
		map[string]any{"customer_id": to, "redirect_url": shopURL, "channel": "web"}, nil)
}

// notification is the newest notification of this type with the partition
// key, as the notifier will get it.
func (s *system) notification(partitionKey, eventType string) events.NotificationData {
	s.t.Helper()
	var raw []byte
	if err := s.pool.QueryRow(context.Background(),
		`SELECT event FROM outbox WHERE nats_subject = $1 AND partition_key = $2 ORDER BY id DESC LIMIT 1`,
		events.Subject(eventType), partitionKey).Scan(&raw); err != nil {
		s.t.Fatalf("no %s for %s in the outbox: %v", eventType, partitionKey, err)
	}
	e, err := events.Unmarshal(raw)
	if err != nil {
		s.t.Fatal(err)
	}
	var d events.NotificationData
	if err := e.DataAs(&d); err != nil {
		s.t.Fatal(err)
	}
	return d
}

// The owner accepts with the approval email's token: the order moves to
// the new owner at once, with its counts and events, and both are told.
func TestOrderTransferAcceptedMovesTheOrder(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	ann, bob := s.newShopper(), s.newShopper()
	ord := s.recordOrder(orderBody(&ann.ID, time.Now().Add(-time.Hour)))

	var tr transferJSON
	r := s.requestTransfer(ord.ID, bob.ID)
	r.expectStatus(t, http.StatusCreated)
	r.decode(t, &tr)
	if tr.Status != "open" || tr.OrderID != ord.ID || tr.ToCustomerID != bob.ID || tr.FromCustomerID == nil || *tr.FromCustomerID != ann.ID {
		t.Errorf("transfer request %s", r.body)
	}
	s.requestTransfer(ord.ID, bob.ID).expectProblem(t, http.StatusConflict, "id", "transfer_pending")

	note := s.notification(ann.ID, events.OrderTransferApprovalRequested)
	if note.Email != ann.Email || note.Order == nil || note.Order.ID.String() != ord.ID || note.Order.Number != ord.Number || note.Token == "" {
		t.Fatalf("approval notification %+v", note)
	}
	other := s.recordOrder(orderBody(&ann.ID, time.Now()))
	decide := func(orderID, action string, body map[string]any) reply {
		return s.public(http.MethodPost, "/v1/store/orders/"+orderID+"/transfer/"+action, body)
	}
	decide(other.ID, "accept", map[string]any{"token": note.Token}).expectProblem(t, http.StatusBadRequest, "token", "invalid")
	decide(ord.ID, "accept", map[string]any{"token": "cbt_wrong"}).expectProblem(t, http.StatusBadRequest, "token", "invalid")

	r = decide(ord.ID, "accept", map[string]any{"token": note.Token, "redirect_url": shopURL, "channel": "web"})
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &tr)
	if tr.Status != "accepted" || tr.Version != 2 {
		t.Errorf("accepted transfer %s", r.body)
	}
	decide(ord.ID, "decline", map[string]any{"token": note.Token}).expectProblem(t, http.StatusBadRequest, "token", "already_used")

	var bobs, anns struct{ Orders []orderJSON }
	s.as(bob.AccessToken, http.MethodGet, "/v1/store/me/orders", nil).decode(t, &bobs)
	s.as(ann.AccessToken, http.MethodGet, "/v1/store/me/orders", nil).decode(t, &anns)
	if len(bobs.Orders) != 1 || bobs.Orders[0].ID != ord.ID || bobs.Orders[0].Version != 2 || len(anns.Orders) != 1 || anns.Orders[0].ID != other.ID {
		t.Errorf("after the transfer Bob has %+v and Ann %+v", bobs.Orders, anns.Orders)
	}
	counts := func(id string) (n int) {
		return s.count(`SELECT number_of_orders FROM customers WHERE id = $1`, id)
	}
	if counts(ann.ID) != 1 || counts(bob.ID) != 1 {
		t.Errorf("number_of_orders Ann %d Bob %d, want 1 and 1", counts(ann.ID), counts(bob.ID))
	}
	for _, who := range []string{ann.Email, bob.Email} {
		if n := s.count(`SELECT count(*) FROM outbox WHERE nats_subject = $1 AND convert_from(event, 'UTF8')::jsonb -> 'data' ->> 'email' = $2`,
			events.Subject(events.OrderTransferCompleted), who); n != 1 {
			t.Errorf("%d transfer_completed notifications for %s, want 1", n, who)
		}
	}
	// Public events: requested and accepted about the request (sequence 1,
	// 2), transferred about the order (its version 2); no token anywhere.
	evs, msgs := s.streamEvents(9) // 2×(created, verified), 2 recorded, requested, accepted, transferred
	seen := map[string]string{}
	for i, e := range evs {
		seen[e.Type()] = ext(e, "sequence") + "/" + e.Subject()
		if strings.Contains(string(msgs[i].Data), note.Token) {
			t.Errorf("%s carries the token", e.Type())
		}
	}
	for typ, want := range map[string]string{
		events.OrderTransferRequested: "1/" + tr.ID, events.OrderTransferAccepted: "2/" + tr.ID, events.OrderTransferred: "2/" + ord.ID,
	} {
		if seen[typ] != want {
			t.Errorf("%s: sequence/subject %q, want %q", typ, seen[typ], want)
		}
	}
}

// Declining leaves the order; staff cancel an open request; an expired
// request cannot be decided and does not block a new one; a guest order's
// approval goes to its email.
func TestOrderTransferDeclineCancelExpiryAndRefusals(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	ann, bob := s.newShopper(), s.newShopper()
	guestCustomer := s.createCustomer(map[string]any{"email": "guest-" + randomSuffix() + "@example.com"})
	ord := s.recordOrder(orderBody(&ann.ID, time.Now()))

	s.requestTransfer(ord.ID, guestCustomer.ID).expectProblem(t, http.StatusBadRequest, "customer_id", "not_registered")
	s.requestTransfer(ord.ID, ann.ID).expectProblem(t, http.StatusBadRequest, "customer_id", "same_owner")
	s.requestTransfer(ord.ID, uuid.NewString()).expectProblem(t, http.StatusBadRequest, "customer_id", "not_found")
	s.requestTransfer(uuid.NewString(), bob.ID).expectProblem(t, http.StatusNotFound, "id", "not_found")
	request(t, s, http.MethodDelete, "/v1/orders/"+ord.ID+"/transfer-requests", nil, nil).expectProblem(t, http.StatusNotFound, "id", "not_found")

	decide := func(action, token string) reply {
		return s.public(http.MethodPost, "/v1/store/orders/"+ord.ID+"/transfer/"+action, map[string]any{"token": token})
	}
	// Declined: the order stays.
	s.requestTransfer(ord.ID, bob.ID).expectStatus(t, http.StatusCreated)
	var tr transferJSON
	r := decide("decline", s.notification(ann.ID, events.OrderTransferApprovalRequested).Token)
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &tr)
	if tr.Status != "declined" {
		t.Errorf("declined transfer %s", r.body)
	}
	// Cancelled by staff: its token no longer works.
	s.requestTransfer(ord.ID, bob.ID).expectStatus(t, http.StatusCreated)
	token := s.notification(ann.ID, events.OrderTransferApprovalRequested).Token
	r = request(t, s, http.MethodDelete, "/v1/orders/"+ord.ID+"/transfer-requests", nil, nil)
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &tr)
	if tr.Status != "cancelled" {
		t.Errorf("cancelled transfer %s", r.body)
	}
	decide("accept", token).expectProblem(t, http.StatusBadRequest, "token", "cancelled")
	// Expired: refused, and a new request may be made.
	s.requestTransfer(ord.ID, bob.ID).expectStatus(t, http.StatusCreated)
	token = s.notification(ann.ID, events.OrderTransferApprovalRequested).Token
	if _, err := s.pool.Exec(context.Background(), `UPDATE order_transfer_requests SET expires_at = now() - interval '1 second' WHERE status = 'open'`); err != nil {
		t.Fatal(err)
	}
	decide("accept", token).expectProblem(t, http.StatusBadRequest, "token", "expired")
	s.requestTransfer(ord.ID, bob.ID).expectStatus(t, http.StatusCreated)
	if n := s.count(`SELECT count(*) FROM order_transfer_requests WHERE status = 'expired'`); n != 1 {
		t.Errorf("%d expired requests, want the old one marked expired", n)
	}
	var owner *string
	if err := s.pool.QueryRow(context.Background(), `SELECT customer_id::text FROM orders WHERE id = $1`, ord.ID).Scan(&owner); err != nil || owner == nil || *owner != ann.ID {
		t.Errorf("order owner %v after decline, cancel and expiry, want Ann", deref(owner))
	}

	// A guest order: the approval goes to the order's email.
	g := orderBody(nil, time.Now())
	gord := s.recordOrder(g)
	s.requestTransfer(gord.ID, bob.ID).expectStatus(t, http.StatusCreated)
	note := s.notification(gord.ID, events.OrderTransferApprovalRequested)
	if note.Email != g["email"] || note.CustomerID != nil {
		t.Errorf("guest approval notification to %s (customer %v), want %s", note.Email, note.CustomerID, g["email"])
	}
	s.public(http.MethodPost, "/v1/store/orders/"+gord.ID+"/transfer/accept", map[string]any{"token": note.Token}).expectStatus(t, http.StatusOK)
	if n := s.count(`SELECT number_of_orders FROM customers WHERE id = $1`, bob.ID); n != 1 {
		t.Errorf("Bob has %d orders after the guest order's transfer, want 1", n)
	}
}

// transferRouteCall prepares a staff transfer route's call that succeeds:
// an order of one shopper, and for DELETE an open request to another.
func transferRouteCall(s *system, method, pattern string) (path string, body any) {
	s.t.Helper()
	owner, next := s.newShopper(), s.newShopper()
	ord := s.recordOrder(orderBody(&owner.ID, time.Now()))
	path = strings.ReplaceAll(pattern, "{id}", ord.ID)
	if method == http.MethodDelete {
		s.requestTransfer(ord.ID, next.ID).expectStatus(s.t, http.StatusCreated)
		return path, nil
	}
	return path, map[string]any{"customer_id": next.ID, "redirect_url": shopURL, "channel": "web"}
}

// storeTransferCall prepares an accept or decline that succeeds.
func storeTransferCall(s *system, pattern string) (path string, body any) {
	s.t.Helper()
	owner, next := s.newShopper(), s.newShopper()
	ord := s.recordOrder(orderBody(&owner.ID, time.Now()))
	s.requestTransfer(ord.ID, next.ID).expectStatus(s.t, http.StatusCreated)
	token := s.notification(owner.ID, events.OrderTransferApprovalRequested).Token
	return strings.ReplaceAll(pattern, "{id}", ord.ID), map[string]any{"token": token}
}

// The whole transfer through the emails: the owner gets accept and decline
// links; following accept moves the order and both parties are told;
// following decline on another order leaves it.
func TestOrderTransferThroughTheEmails(t *testing.T) {
	t.Parallel()
	m := newMailSystem(t)
	ann, bob := m.newShopper(), m.newShopper() // mails 1 and 2: their verifications
	first := m.recordOrder(orderBody(&ann.ID, time.Now()))
	second := m.recordOrder(orderBody(&ann.ID, time.Now()))

	follow := func(n int, action string) (orderID string) {
		t.Helper()
		mails := m.smtp.WaitMails(n)
		mail := mails[n-1]
		if mail.Rcpt != ann.Email {
			t.Fatalf("approval mail went to %s, want %s", mail.Rcpt, ann.Email)
		}
		var link *url.URL
		for _, l := range strings.Fields(mail.Text) {
			if strings.Contains(l, "action="+action) {
				if u, err := url.Parse(l); err == nil {
					link = u
				}
			}
		}
		if link == nil {
			t.Fatalf("no %s link in:\n%s", action, mail.Text)
		}
		q := link.Query()
		m.public(http.MethodPost, "/v1/store/orders/"+q.Get("order_id")+"/transfer/"+action, map[string]any{
			"token": q.Get("token"), "redirect_url": shopURL, "channel": "web",
		}).expectStatus(t, http.StatusOK)
		return q.Get("order_id")
	}

	m.requestTransfer(first.ID, bob.ID).expectStatus(t, http.StatusCreated)
	if got := follow(3, "accept"); got != first.ID {
		t.Fatalf("the accept link names order %s, want %s", got, first.ID)
	}
	mails := m.smtp.WaitMails(5)
	told := map[string]bool{mails[3].Rcpt: true, mails[4].Rcpt: true}
	if !told[ann.Email] || !told[bob.Email] || !strings.Contains(mails[3].Subject, first.Number) {
		t.Errorf("completion mails to %v about %q, want Ann and Bob about %s", told, mails[3].Subject, first.Number)
	}

	m.requestTransfer(second.ID, bob.ID).expectStatus(t, http.StatusCreated)
	follow(6, "decline")
	var bobs struct{ Orders []orderJSON }
	m.as(bob.AccessToken, http.MethodGet, "/v1/store/me/orders", nil).decode(t, &bobs)
	if len(bobs.Orders) != 1 || bobs.Orders[0].ID != first.ID {
		t.Errorf("Bob's orders %+v, want only the accepted one", bobs.Orders)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(m.smtp.Mails()); n != 6 {
		t.Errorf("%d mails, want 6 (a decline tells no one)", n)
	}
}
