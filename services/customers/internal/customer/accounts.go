package customer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/password"
)

// Purposes of one-time tokens: a token serves only its own.
const (
	PurposePasswordSetup = "password_setup"
	PurposeVerification  = "verification"
	PurposePasswordReset = "password_reset"
)

// Token problems, as field errors on "token".
const (
	CodeExpired = "expired"
	CodeUsed    = "already_used"
)

// ErrTokenInvalid means no token matches: unknown, mistyped or of another purpose.
var ErrTokenInvalid = errors.New("token is not valid")

// Default token lifetimes; SetTokenTTLs changes them.
const (
	DefaultTokenTTL = 72 * time.Hour // set-password and verification emails
	DefaultResetTTL = time.Hour      // password reset: shorter, it grants access
)

// Token is a one-time token as stored: only its hash is kept.
type Token struct {
	Hash       []byte
	CustomerID uuid.UUID
	Purpose    string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	UsedAt     *time.Time
}

// tokenPrefix makes leaked customer tokens recognisable (secret scanners, logs).
const tokenPrefix = "cbt_"

// newToken returns a token to send and its stored form.
func newToken(purpose string, customerID uuid.UUID, now time.Time, ttl time.Duration) (string, Token, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", Token{}, fmt.Errorf("token: %w", err)
	}
	plain := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return plain, Token{Hash: HashToken(plain), CustomerID: customerID, Purpose: purpose, CreatedAt: now, ExpiresAt: now.Add(ttl)}, nil
}

// HashToken is how tokens are stored and looked up.
func HashToken(plain string) []byte {
	h := sha256.Sum256([]byte(plain))
	return h[:]
}

// SetTokenTTLs sets how long emailed tokens stay valid; zero keeps a default.
func (s *Service) SetTokenTTLs(token, reset time.Duration) {
	if token > 0 {
		s.tokenTTL = token
	}
	if reset > 0 {
		s.resetTTL = reset
	}
}

// EmailLink is where an email's link goes: the storefront's redirect_url
// and its sales channel, both required for an email to go out.
type EmailLink struct {
	RedirectURL string `json:"redirect_url"`
	Channel     string `json:"channel"`
}

// given reports whether both parts are there, as Saleor requires to send.
func (l EmailLink) given() bool { return l.RedirectURL != "" && l.Channel != "" }

func (r *rules) link(l EmailLink, required bool) {
	if l.RedirectURL == "" && l.Channel == "" && !required {
		return
	}
	if l.RedirectURL == "" {
		r.fail("redirect_url", CodeRequired, "redirect_url is required with channel")
	} else if u, err := url.Parse(l.RedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(l.RedirectURL) > 2000 {
		r.fail("redirect_url", CodeInvalid, "redirect_url must be an absolute http(s) URL of at most 2000 characters")
	}
	if l.Channel == "" {
		r.fail("channel", CodeRequired, "channel is required with redirect_url")
	} else if !storable(l.Channel) || utf8.RuneCountInString(l.Channel) > MaxNameLength {
		r.fail("channel", CodeInvalid, "channel must be text of at most %d characters", MaxNameLength)
	}
}

func (r *rules) password(field, pw string) string {
	switch n := utf8.RuneCountInString(pw); {
	case pw == "":
		r.fail(field, CodeRequired, "%s is required", field)
	case !utf8.ValidString(pw):
		r.fail(field, CodeInvalid, "%s must be valid UTF-8", field)
	case n < password.MinLength:
		r.fail(field, "too_short", "%s must be at least %d characters", field, password.MinLength)
	case n > password.MaxLength:
		r.fail(field, CodeTooLong, "%s must be at most %d characters", field, password.MaxLength)
	}
	return pw
}

// notification builds a notification event carrying a token for c.
func notification(o Origin, typ string, c Customer, plain string, t Token, l EmailLink, at time.Time) (cloudevents.Event, error) {
	return newEvent(o, typ, c, at, events.NotificationData{
		CustomerID: c.ID, Email: c.Email, FirstName: c.FirstName, LastName: c.LastName,
		LanguageCode: c.LanguageCode, Channel: l.Channel, RedirectURL: l.RedirectURL,
		Token: plain, ExpiresAt: t.ExpiresAt,
	})
}

// RegisterInput is a storefront sign-up.
type RegisterInput struct {
	Email        string `json:"email"`
	Password     string `json:"password"`
	FirstName    string `json:"first_name"`
	LastName     string `json:"last_name"`
	LanguageCode string `json:"language_code"`
	EmailLink
}

// Register creates a registered, unverified customer and asks for the
// verification email. An email already in use is ErrEmailTaken: a guest
// with that email claims the account through a password reset instead.
func (s *Service) Register(ctx context.Context, o Origin, in RegisterInput) (Customer, error) {
	r := rules{}
	now := s.now()
	id, err := uuid.NewV7()
	if err != nil {
		return Customer{}, fmt.Errorf("register: %w", err)
	}
	c := Customer{
		ID: id, Email: r.email("email", in.Email),
		FirstName:    r.text("first_name", in.FirstName, MaxNameLength),
		LastName:     r.text("last_name", in.LastName, MaxNameLength),
		LanguageCode: r.languageCode("language_code", in.LanguageCode),
		IsActive:     true, HasAccount: true, Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	pw := r.password("password", in.Password)
	r.link(in.EmailLink, true)
	if err := r.err(); err != nil {
		return Customer{}, err
	}
	if c.PasswordHash, err = password.Hash(pw); err != nil {
		return Customer{}, err
	}
	plain, tok, err := newToken(PurposeVerification, c.ID, now, s.tokenTTL)
	if err != nil {
		return Customer{}, err
	}
	created, err := newEvent(o, events.CustomerCreated, c, now, events.CustomerCreatedData{Customer: c.Public(), Addresses: []events.Address{}})
	if err != nil {
		return Customer{}, err
	}
	note, err := notification(o, events.CustomerVerificationRequested, c, plain, tok, in.EmailLink, now)
	if err != nil {
		return Customer{}, err
	}
	if err := s.store.Create(ctx, c, nil, []Token{tok}, []cloudevents.Event{created, note}); err != nil {
		return Customer{}, fmt.Errorf("register: %w", err)
	}
	return c, nil
}

// TokenInput is a one-time token from an email's link, with the email the
// link also carries (optional; when given it must be the token's customer's).
type TokenInput struct {
	Email string `json:"email"`
	Token string `json:"token"`
}

// useToken checks the token and lets change decide what using it does.
func (s *Service) useToken(ctx context.Context, in TokenInput, purposes []string, change func(cur Customer, now time.Time) (*Mutation, error)) (Customer, error) {
	var r rules
	if in.Token == "" {
		r.fail("token", CodeRequired, "token is required")
	}
	if err := r.err(); err != nil {
		return Customer{}, err
	}
	now := s.now()
	c, err := s.store.UseToken(ctx, HashToken(in.Token), func(cur Customer, t Token) (*Mutation, error) {
		var r rules
		switch {
		case !slices.Contains(purposes, t.Purpose):
			return nil, ErrTokenInvalid
		case in.Email != "" && strings.ToLower(strings.TrimSpace(in.Email)) != cur.Email:
			return nil, ErrTokenInvalid
		case t.UsedAt != nil:
			r.fail("token", CodeUsed, "this link was already used; ask for a new email")
		case !now.Before(t.ExpiresAt):
			r.fail("token", CodeExpired, "this link expired at %s; ask for a new email", t.ExpiresAt.Format(time.RFC3339))
		}
		if err := r.err(); err != nil {
			return nil, err
		}
		return change(cur, now)
	})
	return c, err
}

// Confirm verifies a registration with the token of its email.
func (s *Service) Confirm(ctx context.Context, o Origin, in TokenInput) (Customer, error) {
	return s.useToken(ctx, in, []string{PurposeVerification}, func(cur Customer, now time.Time) (*Mutation, error) {
		next := cur
		next.IsVerified = true
		next.Version++
		next.UpdatedAt = now
		ev, err := newEvent(o, events.CustomerVerified, next, now, next.Public())
		if err != nil {
			return nil, err
		}
		return &Mutation{Customer: next, Events: []cloudevents.Event{ev}}, nil
	})
}

// SetPasswordInput sets a password with the token of a set-password or
// password-reset email.
type SetPasswordInput struct {
	TokenInput
	Password string `json:"password"`
}

// SetPassword sets the password. The email that carried the token proves
// the address, so the customer becomes registered and verified.
func (s *Service) SetPassword(ctx context.Context, o Origin, in SetPasswordInput) (Customer, error) {
	var r rules
	pw := r.password("password", in.Password)
	if err := r.err(); err != nil {
		return Customer{}, err
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return Customer{}, err
	}
	return s.useToken(ctx, in.TokenInput, []string{PurposePasswordSetup, PurposePasswordReset}, func(cur Customer, now time.Time) (*Mutation, error) {
		next := cur
		next.PasswordHash, next.HasAccount, next.IsVerified = hash, true, true
		next.Version++
		next.UpdatedAt = now
		ev, err := newEvent(o, events.CustomerPasswordChanged, next, now, next.Public())
		if err != nil {
			return nil, err
		}
		return &Mutation{Customer: next, Events: []cloudevents.Event{ev}}, nil
	})
}

// PasswordResetInput asks for a password-reset email.
type PasswordResetInput struct {
	Email string `json:"email"`
	EmailLink
}

// RequestPasswordReset sends a reset email when an active customer has the
// email. The answer is the same whether one does or not, so nobody can use
// it to learn who has an account.
func (s *Service) RequestPasswordReset(ctx context.Context, o Origin, in PasswordResetInput) error {
	r := rules{}
	email := r.email("email", in.Email)
	r.link(in.EmailLink, true)
	if err := r.err(); err != nil {
		return err
	}
	c, err := s.store.GetByEmail(ctx, email)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("password reset: %w", err)
	}
	if !c.IsActive {
		return nil
	}
	_, err = s.store.UpdateMany(ctx, []uuid.UUID{c.ID}, func(cur Customer) (*Mutation, error) {
		if !cur.IsActive {
			return nil, nil
		}
		now := s.now()
		plain, tok, err := newToken(PurposePasswordReset, cur.ID, now, s.resetTTL)
		if err != nil {
			return nil, err
		}
		ev, err := notification(o, events.CustomerPasswordResetRequested, cur, plain, tok, in.EmailLink, now)
		if err != nil {
			return nil, err
		}
		// The customer itself is unchanged: the notification carries its
		// current version.
		return &Mutation{Customer: cur, Events: []cloudevents.Event{ev}, NewTokens: []Token{tok}}, nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil // deleted meanwhile
	}
	return err
}
