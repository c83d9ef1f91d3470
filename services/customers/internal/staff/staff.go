// Package staff keeps the staff users of the admin console: their accounts
// (email and an argon2id password), the permission groups that give them
// permissions, and their browser sessions.
package staff

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/password"
)

// Config tunes staff sessions; a zero field takes its default.
type Config struct {
	// SessionTTL ends a session this long after login, however busy.
	SessionTTL time.Duration `env:"STAFF_SESSION_TTL" envDefault:"12h"`
	// IdleTTL ends a session left unused this long.
	IdleTTL time.Duration `env:"STAFF_SESSION_IDLE_TTL" envDefault:"1h"`
}

func (c Config) withDefaults() Config {
	if c.SessionTTL <= 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.IdleTTL <= 0 {
		c.IdleTTL = time.Hour
	}
	return c
}

// ErrInvalidSession means the session cookie is unknown, ended, or its user
// deactivated.
var ErrInvalidSession = errors.New("staff: session is not valid")

// ErrNotFound means no staff user has the id.
var ErrNotFound = errors.New("staff: no such staff user")

// FullAccess is the group `make run` and `staff create` put a first staff
// user in: every permission.
const FullAccess = "Full access"

// Service manages staff users and their sessions.
type Service struct {
	pool   *pgxpool.Pool
	q      *gen.Queries
	logins customer.LoginLimiter
	cfg    Config
	now    func() time.Time
}

// New returns the staff service. Failed logins are counted in failures
// under the customers' limits (accounts), keyed apart from theirs.
func New(pool *pgxpool.Pool, failures customer.LoginFailureStore, accounts customer.AccountConfig, cfg Config) *Service {
	now := func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
	return &Service{pool: pool, q: gen.New(pool), cfg: cfg.withDefaults(), now: now,
		logins: customer.LoginLimiter{Store: failures, Config: accounts, Now: now}}
}

// CreateInput is a new staff user, put in the permission group Group; a
// group that does not exist yet is created with Permissions.
type CreateInput struct {
	Email, Name, Password string
	Group                 string
	Permissions           []string
}

// User is a staff user as listed.
type User struct {
	ID        uuid.UUID
	Email     string
	Name      string
	IsActive  bool
	Groups    []string
	CreatedAt time.Time
}

// Create adds a staff user in a group, in one transaction.
func (s *Service) Create(ctx context.Context, in CreateInput) (uuid.UUID, error) {
	email, err := normalEmail(in.Email)
	if err != nil {
		return uuid.Nil, err
	}
	if n := len([]rune(in.Password)); n < password.MinLength || n > password.MaxLength {
		return uuid.Nil, customer.FieldErr("password", customer.CodeInvalid, "the password must have %d to %d characters", password.MinLength, password.MaxLength)
	}
	for _, p := range in.Permissions {
		if !slices.Contains(auth.StaffPermissions, p) {
			return uuid.Nil, customer.FieldErr("permissions", customer.CodeInvalid, "unknown permission %q (known: %s)", p, strings.Join(auth.StaffPermissions, ", "))
		}
	}
	hash, err := password.Hash(in.Password)
	if err != nil {
		return uuid.Nil, err
	}
	id := uuid.Must(uuid.NewV7())
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.InsertStaffUser(ctx, gen.InsertStaffUserParams{ID: id, Email: email, Name: strings.TrimSpace(in.Name), PasswordHash: hash}); err != nil {
			if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23505" {
				return customer.FieldErr("email", customer.CodeUnique, "a staff user has this email already")
			}
			return err
		}
		if in.Group == "" {
			return nil
		}
		group, err := q.GetPermissionGroupByName(ctx, in.Group)
		if errors.Is(err, pgx.ErrNoRows) {
			group.ID = uuid.Must(uuid.NewV7())
			err = q.InsertPermissionGroup(ctx, gen.InsertPermissionGroupParams{ID: group.ID, Name: in.Group, Permissions: in.Permissions})
		}
		if err != nil {
			return err
		}
		return q.AddStaffToGroup(ctx, gen.AddStaffToGroupParams{StaffID: id, GroupID: group.ID})
	})
	if err != nil {
		return uuid.Nil, fmt.Errorf("staff: create: %w", err)
	}
	return id, nil
}

// EnsureFirst creates a staff user with every permission when none exists,
// so that a first `make run` can log in to the console. It returns the
// password it made up, or "" when staff users exist.
func (s *Service) EnsureFirst(ctx context.Context, email string) (string, error) {
	n, err := s.q.CountStaffUsers(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	pw := NewPassword()
	_, err = s.Create(ctx, CreateInput{Email: email, Name: "Admin", Password: pw, Group: FullAccess, Permissions: auth.StaffPermissions})
	return pw, err
}

// NewPassword returns a random password of 20 letters and digits.
func NewPassword() string { return rand.Text()[:20] }

// List returns every staff user, by email.
func (s *Service) List(ctx context.Context) ([]User, error) {
	rows, err := s.q.ListStaffUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("staff: list: %w", err)
	}
	out := make([]User, len(rows))
	for i, r := range rows {
		out[i] = User{ID: r.ID, Email: r.Email, Name: r.Name, IsActive: r.IsActive, Groups: r.GroupNames, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// Group is a permission group as listed.
type Group struct {
	ID          uuid.UUID
	Name        string
	Permissions []string
	Members     int64
}

// Groups returns every permission group, by name.
func (s *Service) Groups(ctx context.Context) ([]Group, error) {
	rows, err := s.q.ListPermissionGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("staff: groups: %w", err)
	}
	out := make([]Group, len(rows))
	for i, r := range rows {
		out[i] = Group{ID: r.ID, Name: r.Name, Permissions: r.Permissions, Members: r.Members}
	}
	return out, nil
}

// SetActive deactivates a staff user, which ends their sessions and
// refuses their logins, or reactivates them. A staff user cannot
// deactivate themselves (actor), so that someone is left to undo it, nor
// the last active holder of MANAGE_STAFF (ErrLastManager).
func (s *Service) SetActive(ctx context.Context, actor, id uuid.UUID, active bool) error {
	if !active && actor == id {
		return customer.FieldErr("active", customer.CodeInvalid, "you cannot deactivate yourself; ask another staff member who holds MANAGE_STAFF")
	}
	err := s.keepingAManager(ctx, "active", func(q *gen.Queries) error {
		n, err := q.SetStaffUserActive(ctx, gen.SetStaffUserActiveParams{ID: id, IsActive: active})
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		if active {
			return nil
		}
		return q.DeleteStaffSessionsOfUser(ctx, id)
	})
	if err != nil {
		return fmt.Errorf("staff: set active: %w", err)
	}
	return nil
}

// SetGroups puts a staff user in exactly these permission groups; their
// sessions hold the new permissions from their next request. It refuses
// to take MANAGE_STAFF from its last active holder.
func (s *Service) SetGroups(ctx context.Context, id uuid.UUID, groups []uuid.UUID) error {
	groups = slices.Clone(groups)
	slices.SortFunc(groups, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	groups = slices.Compact(groups)
	err := s.keepingAManager(ctx, "groups", func(q *gen.Queries) error {
		if _, err := q.LockStaffUser(ctx, id); errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if err := q.DeleteStaffGroupMemberships(ctx, id); err != nil {
			return err
		}
		n, err := q.AddStaffToGroups(ctx, gen.AddStaffToGroupsParams{StaffID: id, GroupIds: groups})
		if err != nil {
			return err
		}
		if n != int64(len(groups)) {
			return customer.FieldErr("groups", customer.CodeInvalid, "a permission group is gone; reload the page")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("staff: set groups: %w", err)
	}
	return nil
}

// CodeLastManager is the field error code of a change refused because it
// would leave no active staff user holding MANAGE_STAFF.
const CodeLastManager = "last_staff_manager"

// keepingAManager runs change in a transaction and rolls it back when it
// would leave no active staff user holding MANAGE_STAFF (where one was):
// no one would be left to manage staff. The changes that could take it
// away take one lock first, so two of them at once (two managers
// deactivating each other) run one after the other, and the second counts
// what the first left; under READ COMMITTED each statement reads what
// committed before it.
func (s *Service) keepingAManager(ctx context.Context, field string, change func(*gen.Queries) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.LockStaffManagers(ctx); err != nil {
			return err
		}
		before, err := q.CountActiveStaffManagers(ctx, auth.ManageStaff)
		if err != nil {
			return err
		}
		if err := change(q); err != nil {
			return err
		}
		after, err := q.CountActiveStaffManagers(ctx, auth.ManageStaff)
		if err != nil {
			return err
		}
		if before > 0 && after == 0 {
			return customer.FieldErr(field, CodeLastManager, "this is the last active staff user holding MANAGE_STAFF: give MANAGE_STAFF to another active staff user first, or no one could manage staff")
		}
		return nil
	})
}

// Names returns "Name <email>" (or the email alone) of the staff users
// among ids, to name the actors of events; ids of no staff user are left
// out.
func (s *Service) Names(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]string, error) {
	rows, err := s.q.StaffUserNames(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("staff: names: %w", err)
	}
	out := make(map[uuid.UUID]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Email
		if r.Name != "" {
			out[r.ID] = r.Name + " <" + r.Email + ">"
		}
	}
	return out, nil
}

// Session is a login: the token for the cookie, shown only now.
type Session struct {
	Token     string
	ExpiresAt time.Time
}

// Login checks the password under the login limits and opens a session.
// client is the caller's network address. Its errors are
// customer.ErrBadCredentials (a deactivated user's too, so that the answer
// says nothing of the account) and *customer.RateLimitedError.
func (s *Service) Login(ctx context.Context, email, pw, client string) (Session, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var user gen.GetStaffUserByEmailRow
	err := s.logins.Verify(ctx, "staff:"+email, client, pw, func() (string, error) {
		var err error
		user, err = s.q.GetStaffUserByEmail(ctx, email)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", nil
		}
		return user.PasswordHash, err
	})
	if err != nil {
		return Session{}, err
	}
	if !user.IsActive {
		return Session{}, customer.ErrBadCredentials
	}
	token, err := auth.NewStaffSessionToken()
	if err != nil {
		return Session{}, err
	}
	now := s.now()
	sess := Session{Token: token, ExpiresAt: now.Add(s.cfg.SessionTTL)}
	if err := s.q.InsertStaffSession(ctx, gen.InsertStaffSessionParams{
		ID: uuid.Must(uuid.NewV7()), StaffID: user.ID, TokenHash: auth.Hash(token),
		CreatedAt: now, IdleExpiresAt: now.Add(s.cfg.IdleTTL), ExpiresAt: sess.ExpiresAt,
	}); err != nil {
		return Session{}, fmt.Errorf("staff: login: %w", err)
	}
	return sess, nil
}

// Authenticate returns the staff user of a session token with the
// permissions of its groups, read on every request (no cache): logout,
// deactivation and a group change take effect at once. It moves the
// session's idle expiry on.
func (s *Service) Authenticate(ctx context.Context, token string) (auth.Principal, error) {
	if !auth.IsStaffSessionToken(token) {
		return auth.Principal{}, ErrInvalidSession
	}
	now := s.now()
	row, err := s.q.TouchStaffSession(ctx, gen.TouchStaffSessionParams{TokenHash: auth.Hash(token), Now: now, IdleExpiresAt: now.Add(s.cfg.IdleTTL)})
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.Principal{}, ErrInvalidSession
	}
	if err != nil {
		return auth.Principal{}, fmt.Errorf("staff: session: %w", err)
	}
	name := row.Name
	if name == "" {
		name = row.Email
	}
	return auth.Principal{TokenID: row.ID, StaffID: row.StaffID, Name: name, Type: events.AuthUser, Permissions: row.Permissions}, nil
}

// Logout ends the session.
func (s *Service) Logout(ctx context.Context, sessionID uuid.UUID) error {
	if err := s.q.DeleteStaffSession(ctx, sessionID); err != nil {
		return fmt.Errorf("staff: logout: %w", err)
	}
	return nil
}

// Sweep deletes ended sessions.
func (s *Service) Sweep(ctx context.Context) (int64, error) {
	return s.q.DeleteEndedStaffSessions(ctx, s.now())
}

func normalEmail(raw string) (string, error) {
	email := strings.ToLower(strings.TrimSpace(raw))
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > customer.MaxEmailLength {
		return "", customer.FieldErr("email", customer.CodeInvalid, "enter an email address such as sam@example.com")
	}
	return email, nil
}
