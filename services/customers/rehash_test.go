package customers_test

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/password"
)

// TestLoginReplacesAForeignHashWithArgon2idSilently: a customer brought
// from another system with its old hash logs in with its old password; the
// login replaces the hash with our argon2id, without moving the version,
// writing an event or ending the customer's other sessions, and the
// password keeps working.
func TestLoginReplacesAForeignHashWithArgon2idSilently(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	const old = "an old password from elsewhere"
	bc, err := bcrypt.GenerateFromPassword([]byte(old), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pbkdf2.Key(sha256.New, old, []byte("seasalt1"), 1000, 32)
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[string]string{
		"bcrypt":               strings.Replace(string(bc), "$2a$", "$2y$", 1),
		"Django pbkdf2_sha256": "pbkdf2_sha256$1000$seasalt1$" + base64.StdEncoding.EncodeToString(key),
	}
	ctx := context.Background()
	for name, foreign := range hashes {
		t.Run(name, func(t *testing.T) {
			s := s.forTest(t)
			sh := s.newShopper() // registered, verified, active, logged in
			imported, err := password.Import(foreign)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.pool.Exec(ctx, `UPDATE customers SET password_hash = $1, has_account = true, is_verified = true WHERE id = $2`, imported, sh.ID); err != nil {
				t.Fatal(err)
			}
			var version int64
			var updatedAt time.Time
			if err := s.pool.QueryRow(ctx, `SELECT version, updated_at FROM customers WHERE id = $1`, sh.ID).Scan(&version, &updatedAt); err != nil {
				t.Fatal(err)
			}
			outbox := s.count(`SELECT count(*) FROM outbox`)
			public := s.count(`SELECT count(*) FROM outbox WHERE nats_subject LIKE $1`, events.EventsSubjectPrefix+"%")
			s.streamEvents(public) // all published before the login

			fresh := s.login(sh.Email, old)

			var stored string
			var afterVersion int64
			var afterUpdated time.Time
			if err := s.pool.QueryRow(ctx, `SELECT password_hash, version, updated_at FROM customers WHERE id = $1`, sh.ID).Scan(&stored, &afterVersion, &afterUpdated); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(stored, "$argon2id$") || password.NeedsRehash(stored) {
				t.Errorf("after the login the hash is %.20q…, want today's argon2id", stored)
			}
			if afterVersion != version || !afterUpdated.Equal(updatedAt) {
				t.Errorf("version %d, updated_at %v after the rehash; want %d, %v unchanged", afterVersion, afterUpdated, version, updatedAt)
			}
			if n := s.count(`SELECT count(*) FROM outbox`); n != outbox {
				t.Errorf("the outbox holds %d events after the login, want %d as before", n, outbox)
			}
			// The session opened before the rehash and the one of this login
			// both still work.
			for _, token := range []string{sh.AccessToken, fresh.AccessToken} {
				s.as(token, http.MethodGet, "/v1/store/me", nil).expectStatus(t, http.StatusOK)
			}
			s.login(sh.Email, old)
			s.public(http.MethodPost, "/v1/store/token", map[string]any{"email": sh.Email, "password": old + "!"}).
				expectStatus(t, http.StatusUnauthorized)
			// The stream holds what it held before the login.
			s.streamEvents(public)
		})
	}
}
