package customers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/customerbus/customerbus/services/customers"
)

// A POST repeated with its Idempotency-Key gets the first answer and makes
// no second change; the key belongs to its caller and its request.
func TestIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	post := func(token, key string, body any) reply {
		return request(t, s, http.MethodPost, "/v1/customers", body, map[string]string{"Authorization": "Bearer " + token, "Idempotency-Key": key})
	}
	body := map[string]any{"email": "once-" + randomSuffix() + "@example.com"}
	first := post(s.token, "k-1", body)
	first.expectStatus(t, http.StatusCreated)
	again := post(s.token, "k-1", body)
	again.expectStatus(t, http.StatusCreated)
	if string(again.body) != string(first.body) || again.header.Get("Idempotent-Replayed") != "true" || again.header.Get("Location") != first.header.Get("Location") {
		t.Errorf("replay %s (replayed %q, Location %q), want the first answer %s", again.body, again.header.Get("Idempotent-Replayed"), again.header.Get("Location"), first.body)
	}
	if first.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("the first answer is marked replayed")
	}
	if n := s.count(`SELECT count(*) FROM customers WHERE email = $1`, body["email"]); n != 1 {
		t.Errorf("%d customers, want 1", n)
	}
	if n := s.count(`SELECT count(*) FROM outbox`); n != 1 {
		t.Errorf("%d events, want 1", n)
	}

	// The same key with another request is refused.
	post(s.token, "k-1", map[string]any{"email": "other-" + randomSuffix() + "@example.com"}).
		expectProblem(t, http.StatusUnprocessableEntity, "Idempotency-Key", "idempotency_key_reused")
	// Another caller's key of the same name is its own: its request runs (and
	// finds the email taken).
	other, err := customers.CreateToken(context.Background(), s.pool, "other", false, customers.Permissions)
	if err != nil {
		t.Fatal(err)
	}
	post(other, "k-1", body).expectProblem(t, http.StatusConflict, "email", "unique")

	// A refused request's answer is kept too.
	bad := map[string]any{"email": "not an email"}
	post(s.token, "k-2", bad).expectProblem(t, http.StatusBadRequest, "email", "invalid")
	r := post(s.token, "k-2", bad)
	r.expectProblem(t, http.StatusBadRequest, "email", "invalid")
	if r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a repeated refusal was not replayed")
	}

	post(s.token, strings.Repeat("k", 256), body).expectProblem(t, http.StatusBadRequest, "Idempotency-Key", "invalid")

	// A record without an answer, as a version before answers committed
	// with their changes left while its request ran: the repeat is told
	// to wait.
	if _, err := s.pool.Exec(context.Background(),
		`INSERT INTO idempotency_keys (owner, key, fingerprint, created_at) SELECT owner, 'k-3', fingerprint, now() FROM idempotency_keys WHERE key = 'k-1'`); err != nil {
		t.Fatal(err)
	}
	busy := post(s.token, "k-3", body)
	busy.expectProblem(t, http.StatusConflict, "Idempotency-Key", "idempotency_key_in_use")
	if busy.header.Get("Retry-After") == "" {
		t.Errorf("409 without Retry-After")
	}

	// Such a record older than any request belongs to one that died: taken over.
	if _, err := s.pool.Exec(context.Background(), `UPDATE idempotency_keys SET created_at = now() - interval '3 minutes' WHERE key = 'k-3'`); err != nil {
		t.Fatal(err)
	}
	post(s.token, "k-3", body).expectProblem(t, http.StatusConflict, "email", "unique")

	// After a day the key is forgotten: the request runs again.
	if _, err := s.pool.Exec(context.Background(), `UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'k-1'`); err != nil {
		t.Fatal(err)
	}
	post(s.token, "k-1", body).expectProblem(t, http.StatusConflict, "email", "unique")
}

// Customers' keys work the same, across refreshed tokens.
func TestIdempotencyKeyForCustomers(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	sh := s.newShopper()
	add := func(token string) reply {
		return request(t, s, http.MethodPost, "/v1/store/me/addresses", validAddress(),
			map[string]string{"Authorization": "Bearer " + token, "Idempotency-Key": "addr-1"})
	}
	add(sh.AccessToken).expectStatus(t, http.StatusCreated)
	var next sessionJSON
	s.public(http.MethodPost, "/v1/store/token/refresh", map[string]any{"refresh_token": sh.RefreshToken}).decode(t, &next)
	if r := add(next.AccessToken); r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry with a refreshed token: %d, replayed %q", r.status, r.header.Get("Idempotent-Replayed"))
	}
	if n := s.count(`SELECT count(*) FROM customer_addresses WHERE customer_id = $1`, sh.ID); n != 1 {
		t.Errorf("%d addresses, want 1", n)
	}
}

// The answer to a request with a key commits with its change, or neither
// does: when its record cannot be written, the create is not made either
// and the client is told it failed, so its retry creates the customer,
// once, and a further retry gets that answer.
func TestIdempotencyKeyAnswerCommitsWithItsChange(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	ctx := context.Background()
	// Recording any answer fails while this trigger is there.
	if _, err := s.pool.Exec(ctx, `
		CREATE FUNCTION refuse_answers() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'answers cannot be recorded'; END $$;
		CREATE TRIGGER refuse_answers BEFORE UPDATE ON idempotency_keys FOR EACH ROW EXECUTE FUNCTION refuse_answers();`); err != nil {
		t.Fatal(err)
	}
	email := "atomic-" + randomSuffix() + "@example.com"
	post := func() reply {
		return request(t, s, http.MethodPost, "/v1/customers", map[string]any{"email": email},
			map[string]string{"Authorization": "Bearer " + s.token, "Idempotency-Key": "atomic-1"})
	}
	post().expectStatus(t, http.StatusInternalServerError)
	if n := s.count(`SELECT count(*) FROM customers WHERE email = $1`, email); n != 0 {
		t.Fatalf("%d customers after an answer that could not be recorded, want none", n)
	}
	if n := s.count(`SELECT count(*) FROM outbox`) + s.count(`SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Fatalf("%d events and records left, want none", n)
	}
	if _, err := s.pool.Exec(ctx, `DROP TRIGGER refuse_answers ON idempotency_keys`); err != nil {
		t.Fatal(err)
	}
	first := post()
	first.expectStatus(t, http.StatusCreated)
	again := post()
	if again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(first.body) {
		t.Errorf("the retry after the create: %d %s (replayed %q)", again.status, again.body, again.header.Get("Idempotent-Replayed"))
	}
	if n := s.count(`SELECT count(*) FROM customers WHERE email = $1`, email); n != 1 {
		t.Errorf("%d customers, want 1", n)
	}
}

// A retry sent while the first request with its key still runs waits for
// it, then gets its answer: not a 409 to retry later, nor a second change.
func TestIdempotencyKeyRetryWaitsForTheFirstRequest(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.slowCreates(time.Second)
	email := "slow-" + randomSuffix() + "@example.com"
	post := func() reply {
		return request(t, s, http.MethodPost, "/v1/customers", map[string]any{"email": email},
			map[string]string{"Authorization": "Bearer " + s.token, "Idempotency-Key": "slow-1"})
	}
	firstDone := make(chan reply, 1)
	go func() { firstDone <- post() }()
	time.Sleep(300 * time.Millisecond) // the first is in its trigger
	retry := post()
	first := <-firstDone
	first.expectStatus(t, http.StatusCreated)
	if retry.status != http.StatusCreated || retry.header.Get("Idempotent-Replayed") != "true" || string(retry.body) != string(first.body) {
		t.Errorf("the retry during the first request: %d %s (replayed %q), want the first's answer", retry.status, retry.body, retry.header.Get("Idempotent-Replayed"))
	}
	if n := s.count(`SELECT count(*) FROM customers WHERE email = $1`, email); n != 1 {
		t.Errorf("%d customers, want 1", n)
	}
}
