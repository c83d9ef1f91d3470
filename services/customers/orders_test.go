package customers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/orderlinker"
)

// orderJSON is the API's order resource.
type orderJSON struct {
	ID         string            `json:"id"`
	Number     string            `json:"number"`
	Email      string            `json:"email"`
	CustomerID *string           `json:"customer_id"`
	Channel    string            `json:"channel"`
	Total      string            `json:"total"`
	Currency   string            `json:"currency"`
	Status     string            `json:"status"`
	PlacedAt   time.Time         `json:"placed_at"`
	Metadata   map[string]string `json:"metadata"`
	Version    int64             `json:"version"`
}

// orderBody is an order as the order system records it; customerID nil is
// a guest order.
func orderBody(customerID *string, placedAt time.Time) map[string]any {
	id := uuid.NewString()
	return map[string]any{
		"id": id, "number": "R-" + id[:8], "email": "buyer-" + randomSuffix() + "@example.com",
		"customer_id": customerID, "channel": "web", "total": "12.50", "currency": "eur",
		"status": "placed", "placed_at": placedAt.UTC().Format(time.RFC3339Nano), "metadata": map[string]string{"source": "pos"},
	}
}

func (s *system) recordOrder(body map[string]any) orderJSON {
	s.t.Helper()
	var o orderJSON
	r := request(s.t, s, http.MethodPost, "/v1/orders", body, nil)
	r.expectStatus(s.t, http.StatusCreated)
	r.decode(s.t, &o)
	return o
}

// Recording an order is idempotent, counts it for its customer without a
// new customer version, and the order survives its customer's deletion.
func TestOrdersAreRecordedOnceCountedAndKept(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.createCustomer(map[string]any{"email": "orders-" + randomSuffix() + "@example.com"})
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	first := orderBody(&c.ID, t0)
	o := s.recordOrder(first)
	if o.Currency != "EUR" || o.Total != "12.50" || o.CustomerID == nil || *o.CustomerID != c.ID || o.Version != 1 || !o.PlacedAt.Equal(t0) {
		t.Errorf("recorded order %+v", o)
	}
	// The same id again: the stored order, no second event, no second count.
	again := request(t, s, http.MethodPost, "/v1/orders", first, nil)
	again.expectStatus(t, http.StatusOK)
	var o2 orderJSON
	again.decode(t, &o2)
	if !reflect.DeepEqual(o2, o) {
		t.Errorf("second recording answered %+v, want the stored %+v", o2, o)
	}
	s.recordOrder(orderBody(&c.ID, t0.Add(48*time.Hour)))
	s.recordOrder(orderBody(&c.ID, t0.Add(24*time.Hour)))
	guest := s.recordOrder(orderBody(nil, t0))
	if guest.CustomerID != nil {
		t.Errorf("guest order has customer %v", *guest.CustomerID)
	}

	var got struct {
		customerJSON
		NumberOfOrders int        `json:"number_of_orders"`
		LastOrderAt    *time.Time `json:"last_order_at"`
	}
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if got.NumberOfOrders != 3 || got.LastOrderAt == nil || !got.LastOrderAt.Equal(t0.Add(48*time.Hour)) || got.Version != 1 {
		t.Errorf("customer after 3 orders: number_of_orders %d, last_order_at %v, version %d; want 3, %v, 1",
			got.NumberOfOrders, got.LastOrderAt, got.Version, t0.Add(48*time.Hour))
	}

	// Newest first, paginated.
	var page struct {
		Orders     []orderJSON `json:"orders"`
		NextCursor *string     `json:"next_cursor"`
	}
	s.do(http.MethodGet, "/v1/customers/"+c.ID+"/orders?limit=2", nil, &page)
	if len(page.Orders) != 2 || page.NextCursor == nil || !page.Orders[0].PlacedAt.Equal(t0.Add(48*time.Hour)) || !page.Orders[1].PlacedAt.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("first page %+v", page)
	}
	s.do(http.MethodGet, "/v1/customers/"+c.ID+"/orders?limit=2&cursor="+*page.NextCursor, nil, &page)
	if len(page.Orders) != 1 || page.Orders[0].ID != o.ID || page.NextCursor != nil {
		t.Errorf("second page %+v, want the oldest order and no cursor", page)
	}

	// order.recorded: one per order, the owner as partition key.
	evs, _ := s.streamEvents(5) // customer.created and four orders
	var recorded []string
	for _, e := range evs[1:] {
		if e.Type() != events.OrderRecorded || e.Subject() == "" || ext(e, "sequence") != "1" {
			t.Errorf("event %s subject %s sequence %s", e.Type(), e.Subject(), ext(e, "sequence"))
		}
		recorded = append(recorded, e.Subject())
		want := c.ID
		if e.Subject() == guest.ID {
			want = guest.ID
		}
		if ext(e, "partitionkey") != want {
			t.Errorf("order %s: partitionkey %s, want %s", e.Subject(), ext(e, "partitionkey"), want)
		}
	}
	if !slices.Contains(recorded, o.ID) {
		t.Errorf("no order.recorded for %s", o.ID)
	}

	// Deleting the customer keeps its orders, as guest orders with their email.
	s.do(http.MethodDelete, "/v1/customers/"+c.ID, nil, nil)
	if n := s.count(`SELECT count(*) FROM orders WHERE customer_id IS NULL AND email <> ''`); n != 4 {
		t.Errorf("%d orders kept without a customer, want 4", n)
	}
	// The order system replays the original body, owner and all: the stored
	// order answers, as for any known id, and nothing is recorded again.
	replay := request(t, s, http.MethodPost, "/v1/orders", first, nil)
	replay.expectStatus(t, http.StatusOK)
	var o3 orderJSON
	replay.decode(t, &o3)
	if o3.ID != o.ID || o3.CustomerID != nil || o3.Number != o.Number || o3.Version != o.Version {
		t.Errorf("replay after the owner's deletion answered %+v, want the stored order without its owner", o3)
	}
	if n := s.count(`SELECT count(*) FROM orders`); n != 4 {
		t.Errorf("%d orders after the replay, want 4", n)
	}
}

func TestOrderBadInput(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	with := func(k string, v any) map[string]any {
		b := orderBody(nil, time.Now())
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
		return b
	}
	unknown := uuid.NewString()
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
		code  string
	}{
		{"no id", with("id", nil), "id", "invalid"},
		{"id not a uuid", with("id", "R-1"), "id", "invalid"},
		{"no number", with("number", nil), "number", "required"},
		{"comma decimal", with("total", "12,50"), "total", "invalid"},
		{"negative total", with("total", "-1"), "total", "invalid"},
		{"total as number", with("total", 12.5), "total", "invalid_type"},
		{"currency name", with("currency", "EURO"), "currency", "invalid"},
		{"no placed_at", with("placed_at", nil), "placed_at", "required"},
		{"bad email", with("email", "nope"), "email", "invalid"},
		{"unknown customer", with("customer_id", unknown), "customer_id", "not_found"},
		{"unknown field", with("discount", "1"), "discount", "unknown_field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			request(t, s, http.MethodPost, "/v1/orders", tc.body, nil).expectProblem(t, http.StatusBadRequest, tc.field, tc.code)
		})
	}
	if n := s.count(`SELECT count(*) FROM orders`); n != 0 {
		t.Errorf("refused orders stored %d rows", n)
	}
}

// The staff list filters and sorts on the order statistics.
func TestListFiltersAndSortsOnOrders(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// none: 0 orders; one: 1 in January; three: 3 in January, March, May.
	none := s.createCustomer(map[string]any{"email": "none-" + randomSuffix() + "@example.com"})
	one := s.createCustomer(map[string]any{"email": "one-" + randomSuffix() + "@example.com"})
	three := s.createCustomer(map[string]any{"email": "three-" + randomSuffix() + "@example.com"})
	s.recordOrder(orderBody(&one.ID, t0.AddDate(0, 0, 10)))
	for _, m := range []int{0, 2, 4} {
		s.recordOrder(orderBody(&three.ID, t0.AddDate(0, m, 5)))
	}
	ids := func(query string) []string {
		var out []string
		for _, c := range listCustomers(t, s, query).Customers {
			out = append(out, c.ID)
		}
		return out
	}
	day := func(month, d int) string { return t0.AddDate(0, month, d).Format(time.RFC3339) }
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"number_of_orders_min=1&order=email", []string{one.ID, three.ID}},
		{"number_of_orders_max=0", []string{none.ID}},
		{"number_of_orders_min=2&number_of_orders_max=3", []string{three.ID}},
		{"placed_orders_after=" + day(1, 0), []string{three.ID}},
		{"placed_orders_before=" + day(0, 8) + "&order=email", []string{three.ID}},
		{"placed_orders_after=" + day(0, 6) + "&placed_orders_before=" + day(0, 20), []string{one.ID}},
		{"placed_orders_after=" + day(1, 0) + "&placed_orders_before=" + day(2, 1), []string{}},
		// A window holding a first order, a last one, and neither but one
		// between them.
		{"placed_orders_after=" + day(0, 0) + "&placed_orders_before=" + day(1, 0), []string{three.ID, one.ID}},
		{"placed_orders_after=" + day(3, 0) + "&placed_orders_before=" + day(5, 0), []string{three.ID}},
		{"placed_orders_after=" + day(1, 0) + "&placed_orders_before=" + day(3, 0) + "&order=email", []string{three.ID}},
		{"order=-number_of_orders", []string{three.ID, one.ID, none.ID}},
		{"order=number_of_orders", []string{none.ID, one.ID, three.ID}},
	} {
		got := ids(tc.query)
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	// Pages of one in number_of_orders order walk all three.
	var walked []string
	query := "order=-number_of_orders&limit=1"
	for range 4 {
		page := listCustomers(t, s, query)
		for _, c := range page.Customers {
			walked = append(walked, c.ID)
		}
		if page.NextCursor == nil {
			break
		}
		query = "order=-number_of_orders&limit=1&cursor=" + *page.NextCursor
	}
	if !slices.Equal(walked, []string{three.ID, one.ID, none.ID}) {
		t.Errorf("pages walked %v", walked)
	}
	request(t, s, http.MethodGet, "/v1/customers?number_of_orders_min=-1", nil, nil).expectProblem(t, 400, "number_of_orders_min", "invalid")
	request(t, s, http.MethodGet, "/v1/customers?placed_orders_after=yesterday", nil, nil).expectProblem(t, 400, "placed_orders_after", "invalid")
}

// A customer sees its own orders under /v1/store/me/orders, and no one else's.
func TestCustomerSeesItsOwnOrders(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	ann, bob := s.newShopper(), s.newShopper()
	mine := s.recordOrder(orderBody(&ann.ID, time.Now()))
	s.recordOrder(orderBody(&bob.ID, time.Now()))
	var page struct{ Orders []orderJSON }
	r := s.as(ann.AccessToken, http.MethodGet, "/v1/store/me/orders", nil)
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &page)
	if len(page.Orders) != 1 || page.Orders[0].ID != mine.ID {
		t.Errorf("Ann's orders: %+v, want only %s", page.Orders, mine.ID)
	}
	s.as(ann.AccessToken, http.MethodGet, "/v1/customers/"+bob.ID+"/orders", nil).expectProblem(t, http.StatusForbidden, "Authorization", "forbidden")
	s.as(ann.AccessToken, http.MethodPost, "/v1/orders", orderBody(&ann.ID, time.Now())).expectProblem(t, http.StatusForbidden, "Authorization", "forbidden")
}

// runLinker runs an order linker on the system until the test ends.
func (s *system) runLinker() {
	l := orderlinker.New(s.pool, s.js, zaptest.NewLogger(s.t), prometheus.NewRegistry(), orderlinker.Config{AckWait: 5 * time.Second, RetryDelay: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	s.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			s.t.Errorf("order linker: %v", err)
		}
	})
}

// waitOrders polls the customer's own order list until it holds n orders.
func (s *system) waitOrders(token string, n int) []orderJSON {
	s.t.Helper()
	var page struct{ Orders []orderJSON }
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s.as(token, http.MethodGet, "/v1/store/me/orders", nil).decode(s.t, &page)
		if len(page.Orders) >= n {
			return page.Orders
		}
	}
	s.t.Fatalf("the customer has %d orders after 10 s, want %d", len(page.Orders), n)
	return nil
}

// Guest orders with the email of an account are linked to it once its
// email is verified, not before; later guest orders follow at once; each
// order is linked once, with one order.linked about it.
func TestGuestOrdersAreLinkedToTheVerifiedAccount(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runLinker()
	email := "guest-" + randomSuffix() + "@example.com"
	guest := func(email string) orderJSON {
		b := orderBody(nil, time.Now())
		b["email"] = email
		return s.recordOrder(b)
	}
	first, second := guest(strings.ToUpper(email)), guest(email)
	guest("someone-else-" + randomSuffix() + "@example.com")

	var c storeCustomerJSON
	s.public(http.MethodPost, "/v1/store/register", map[string]any{
		"email": email, "password": "long enough", "redirect_url": shopURL, "channel": "web",
	}).decode(t, &c)
	// Registered but not verified: a guest order recorded now links to no one.
	third := guest(email)
	time.Sleep(500 * time.Millisecond)
	if n := s.count(`SELECT count(*) FROM orders WHERE customer_id IS NOT NULL`); n != 0 {
		t.Fatalf("%d orders linked to an unverified account", n)
	}

	s.public(http.MethodPost, "/v1/store/confirm", map[string]any{"token": s.emailToken(c.ID, events.CustomerVerificationRequested)}).
		expectStatus(t, http.StatusOK)
	session := s.login(email, "long enough")
	got := s.waitOrders(session.AccessToken, 3)
	var ids []string
	for _, o := range got {
		ids = append(ids, o.ID)
	}
	slices.Sort(ids)
	want := []string{first.ID, second.ID, third.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("linked orders %v, want %v", ids, want)
	}
	// A guest order recorded after the verification is linked on its own.
	fourth := guest(email)
	if got := s.waitOrders(session.AccessToken, 4); got[0].ID != fourth.ID {
		t.Errorf("newest order %s, want %s", got[0].ID, fourth.ID)
	}

	var staffView struct {
		NumberOfOrders int `json:"number_of_orders"`
	}
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &staffView)
	if staffView.NumberOfOrders != 4 {
		t.Errorf("number_of_orders %d, want 4", staffView.NumberOfOrders)
	}
	// 5 order.recorded, customer.created, customer.verified, and one
	// order.linked per order: about the order, at its new version 2.
	evs, msgs := s.streamEvents(11)
	var linked []string
	for _, e := range evs {
		if e.Type() != events.OrderLinked {
			continue
		}
		var d events.OrderLinkedData
		if err := e.DataAs(&d); err != nil {
			t.Fatal(err)
		}
		linked = append(linked, e.Subject())
		if d.ID.String() != e.Subject() || d.CustomerID == nil || d.CustomerID.String() != c.ID || d.Version != 2 ||
			len(d.OrderIDs) != 1 || d.OrderIDs[0] != d.ID || ext(e, "sequence") != "2" || ext(e, "partitionkey") != c.ID ||
			ext(e, "causationid") == "" {
			t.Errorf("order.linked %+v subject %s sequence %s partitionkey %s causationid %q, want about the order at version 2, owned by %s",
				d, e.Subject(), ext(e, "sequence"), ext(e, "partitionkey"), ext(e, "causationid"), c.ID)
		}
	}
	if len(linked) != 4 || !slices.Equal(slices.Sorted(slices.Values(linked[:3])), want) || linked[3] != fourth.ID {
		t.Errorf("order.linked about %v, want %v then %s", linked, want, fourth.ID)
	}

	// The verification delivered again (as a copy JetStream does not
	// deduplicate): nothing is left to link, so nothing is emitted.
	for i, e := range evs {
		if e.Type() != events.CustomerVerified {
			continue
		}
		again := nats.NewMsg(msgs[i].Subject)
		again.Data = msgs[i].Data
		for k, v := range msgs[i].Header {
			again.Header[k] = v
		}
		again.Header.Set(nats.MsgIdHdr, uuid.NewString())
		if _, err := s.js.PublishMsg(context.Background(), again); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	evs, _ = s.streamEvents(12)
	if n := countType(evs, events.OrderLinked); n != 4 {
		t.Errorf("%d order.linked after a redelivery, want still 4", n)
	}
}

func countType(evs []cloudevents.Event, typ string) int {
	n := 0
	for _, e := range evs {
		if e.Type() == typ {
			n++
		}
	}
	return n
}

// Confirming an email change and setting a password from a set-password
// email also prove an email, and link its guest orders.
func TestGuestOrdersFollowEmailChangeAndInvitation(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runLinker()
	guestOrder := func(email string) orderJSON {
		b := orderBody(nil, time.Now())
		b["email"] = email
		return s.recordOrder(b)
	}
	sh := s.newShopper()
	moved := "moved-" + randomSuffix() + "@example.com"
	o1 := guestOrder(moved)
	s.as(sh.AccessToken, http.MethodPost, "/v1/store/me/email-change", map[string]any{
		"new_email": moved, "password": sh.Password, "redirect_url": shopURL, "channel": "web",
	}).expectStatus(t, http.StatusAccepted)
	s.as(sh.AccessToken, http.MethodPost, "/v1/store/me/email-change/confirm", map[string]any{
		"token": s.emailToken(sh.ID, events.CustomerEmailChangeRequested),
	}).expectStatus(t, http.StatusOK)
	if got := s.waitOrders(sh.AccessToken, 1); got[0].ID != o1.ID {
		t.Errorf("after the email change: %+v, want %s", got, o1.ID)
	}

	invited := "invited-" + randomSuffix() + "@example.com"
	o2 := guestOrder(invited)
	c := s.createCustomer(map[string]any{"email": invited, "redirect_url": shopURL, "channel": "web"})
	time.Sleep(300 * time.Millisecond) // created but not verified: nothing linked yet
	if n := s.count(`SELECT count(*) FROM orders WHERE id = $1 AND customer_id IS NOT NULL`, o2.ID); n != 0 {
		t.Fatalf("the order was linked before the invitation was used")
	}
	s.public(http.MethodPost, "/v1/store/password", map[string]any{
		"token": s.emailToken(c.ID, events.CustomerPasswordSetupRequested), "password": "long enough",
	}).expectStatus(t, http.StatusOK)
	session := s.login(invited, "long enough")
	if got := s.waitOrders(session.AccessToken, 1); got[0].ID != o2.ID {
		t.Errorf("after setting the password: %+v, want %s", got, o2.ID)
	}
}

// A customer whose order predates its account (a linked guest order) still
// matches placed_orders_before, in its place among the newest: the list reads
// such customers apart from the walk from the date backwards.
func TestPlacedBeforeFindsOrdersOlderThanTheirCustomer(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	early := time.Now().Add(-48 * time.Hour)
	older := s.createCustomer(map[string]any{"email": "older-" + randomSuffix() + "@example.com"})
	s.recordOrder(orderBody(&older.ID, early))
	s.createCustomer(map[string]any{"email": "none-" + randomSuffix() + "@example.com"})
	// Created after the date, with an order placed before it.
	late := s.createCustomer(map[string]any{"email": "late-" + randomSuffix() + "@example.com"})
	s.recordOrder(orderBody(&late.ID, early.Add(-time.Hour)))
	s.createCustomer(map[string]any{"email": "newest-" + randomSuffix() + "@example.com"})

	y := url.QueryEscape(early.Add(time.Hour).Format(time.RFC3339Nano))
	var walked []string
	query := "placed_orders_before=" + y + "&limit=1"
	for range 3 {
		page := listCustomers(t, s, query)
		for _, c := range page.Customers {
			walked = append(walked, c.ID)
		}
		if page.NextCursor == nil {
			break
		}
		query = "placed_orders_before=" + y + "&limit=1&cursor=" + *page.NextCursor
	}
	if !slices.Equal(walked, []string{late.ID, older.ID}) {
		t.Errorf("pages of placed_orders_before: %v, want the late customer %s, then %s", walked, late.ID, older.ID)
	}
	if got := listCustomers(t, s, "placed_orders_before="+y+"&limit=5"); len(got.Customers) != 2 || got.Count == nil || *got.Count != 2 {
		t.Errorf("one page: %d customers, count %v; want 2 and 2", len(got.Customers), got.Count)
	}
}

// A total is answered, published and read back as PostgreSQL's numeric keeps
// it: leading zeros of the whole part go, the decimals stay as given.
func TestOrderTotalIsAnsweredAsStored(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.createCustomer(map[string]any{"email": "totals-" + randomSuffix() + "@example.com"})
	totals := []struct{ sent, want string }{
		{"12.50", "12.50"}, {"007.50", "7.50"}, {"00.25", "0.25"}, {"000", "0"}, {"0100", "100"},
	}
	placed := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i, tt := range totals {
		body := orderBody(&c.ID, placed.Add(time.Duration(i)*time.Hour))
		body["total"] = tt.sent
		o := s.forTest(t).recordOrder(body)
		var stored string
		if err := s.pool.QueryRow(context.Background(), `SELECT total::text FROM orders WHERE id = $1`, o.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		var replay orderJSON
		request(t, s, http.MethodPost, "/v1/orders", body, nil).decode(t, &replay)
		if o.Total != tt.want || stored != tt.want || replay.Total != tt.want {
			t.Errorf("total %q: answered %q, stored %q, answered again %q; want %q", tt.sent, o.Total, stored, replay.Total, tt.want)
		}
	}
	evs, _ := s.streamEvents(1 + len(totals))
	for i, e := range evs[1:] {
		var data events.Order
		if err := json.Unmarshal(e.Data(), &data); err != nil {
			t.Fatal(err)
		}
		if data.Total != totals[i].want {
			t.Errorf("order.recorded carries total %q, want %q", data.Total, totals[i].want)
		}
	}
}
