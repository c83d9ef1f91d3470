package customer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"runtime"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/password"
)

// Import modes.
const (
	// ImportCreate creates every row; a taken email or external reference is
	// the row's error.
	ImportCreate = "create"
	// ImportUpsert changes the customer a row matches (by external
	// reference, then by email), and only the fields the row gives; a row
	// that matches none is created.
	ImportUpsert = "upsert"
)

// ImportRow is one customer of an import file: what POST /v1/customers
// takes, plus what an export carries, so that an export is importable as it
// is.
type ImportRow struct {
	CreateInput
	// ID and CreatedAt are kept when the import creates the customer (a
	// customer moved from another customerbus keeps its identity).
	ID        *string    `json:"id"`
	CreatedAt *time.Time `json:"created_at"`
	// IsVerified is taken when the import creates the customer: the email was
	// confirmed in the system the customer comes from.
	IsVerified *bool `json:"is_verified"`
	// PasswordHash is the customer's password hash in the system it comes
	// from (see password.Import), so that the customer logs in with the old
	// password. Taken when the import creates the customer; a customer the
	// import matches keeps its own password, which it may have changed.
	PasswordHash *string `json:"password_hash"`
	// The read-only fields of an export: accepted, and ignored.
	UpdatedAt                json.RawMessage `json:"updated_at"`
	Version                  json.RawMessage `json:"version"`
	HasAccount               json.RawMessage `json:"has_account"`
	NumberOfOrders           json.RawMessage `json:"number_of_orders"`
	LastOrderAt              json.RawMessage `json:"last_order_at"`
	IsAnonymized             json.RawMessage `json:"is_anonymized"`
	DefaultShippingAddressID json.RawMessage `json:"default_shipping_address_id"`
	DefaultBillingAddressID  json.RawMessage `json:"default_billing_address_id"`
	// Addresses are the customer's addresses as POST /v1/customers takes
	// them, or as an export writes them (their read-only fields ignored).
	Addresses []ImportAddress `json:"addresses"`
	// AttributeCells are a CSV row's attributes.<key> cells, typed by the
	// definitions when the row is imported (see AttributeCells).
	AttributeCells map[string]string `json:"-"`
	// Given names the fields the row gives (a CSV file's columns, an NDJSON
	// line's keys): an upsert changes those and no others.
	Given map[string]bool `json:"-"`
}

// ImportAddress is an address of an import row: an AddressInput, plus the
// read-only fields of an exported address, accepted and ignored (the
// import makes the address anew).
type ImportAddress struct {
	AddressInput
	ID         json.RawMessage `json:"id"`
	CustomerID json.RawMessage `json:"customer_id"`
	CreatedAt  json.RawMessage `json:"created_at"`
	UpdatedAt  json.RawMessage `json:"updated_at"`
}

// imported is what only an import sets on a new customer.
type imported struct {
	id           *string
	createdAt    *time.Time
	isVerified   bool
	passwordHash string
	// form is the address form settings, and defs the attribute
	// definitions, read once for many rows.
	form *AddressForm
	defs Definitions
}

// apply checks the kept id and creation time, returning those to use.
func (imp *imported) apply(r *rules, id uuid.UUID, now time.Time) (uuid.UUID, time.Time) {
	createdAt := now
	if imp.id != nil && *imp.id != "" {
		parsed, err := uuid.Parse(*imp.id)
		if err != nil {
			r.fail("id", CodeInvalid, "id must be a UUID (or left out: a new one is made)")
		}
		id = parsed
	}
	if imp.createdAt != nil {
		if imp.createdAt.After(now) {
			r.fail("created_at", CodeInvalid, "created_at must not be in the future")
		}
		createdAt = r.instant("created_at", *imp.createdAt)
	}
	return id, createdAt
}

// ImportRow creates, or with ImportUpsert changes, the row's customer
// through the same rules and events as Create and Update; created says
// which. No email goes out unless the row asks for one (redirect_url and
// channel), as with Create.
func (s *Service) ImportRow(ctx context.Context, o Origin, mode string, row ImportRow) (c Customer, created bool, err error) {
	imp, err := importExtras(row)
	if err != nil {
		return Customer{}, false, err
	}
	if imp.defs, err = s.store.AttributeDefinitions(ctx); err != nil {
		return Customer{}, false, err
	}
	if mode == ImportUpsert {
		match, found, err := s.importMatch(ctx, row)
		if err != nil {
			return Customer{}, false, err
		}
		if found {
			c, err := s.importUpdate(ctx, o, match, row, imp.defs)
			return c, false, err
		}
	}
	c, err = s.create(ctx, o, row.createInput(imp.defs), imp)
	return c, err == nil, err
}

// CanImportTogether reports whether a row can be created together with
// others (PrepareCreates): one that joins groups (which its creation
// locks) or asks for an email (a one-time token) goes alone, by ImportRow.
func CanImportTogether(row ImportRow) bool { return len(row.Groups) == 0 && !row.EmailLink.Given() }

// PreparedCreates is a batch of rows of an import in mode create, checked
// by PrepareCreates and waiting for CreatePrepared to write it.
type PreparedCreates struct {
	// Refusals holds each row's refusal. A row without one is created by
	// CreatePrepared, or, when Alone, goes alone (ImportRow).
	Refusals []error
	Alone    []bool
	kept     []NewCustomer
	keptAt   []int // each kept customer's row
}

// PrepareCreates checks rows as ImportRow checks each in mode create, and
// builds those that can be created together (CanImportTogether) and pass,
// ready for CreatePrepared: the CPU's part of an import at the speed of the
// database, run on all cores but one (left to live traffic) and, by the
// caller, while the previous batch is written. A row is refused as taken
// when a customer has its email or external reference, or an earlier row
// of the file (seen holds those, of rows prepared and not yet committed
// too). The rows that go alone are only checked for that earlier row, so
// that of two rows the later is refused, however each is written.
func (s *Service) PrepareCreates(ctx context.Context, o Origin, rows []ImportRow, seen *ImportSeen) (PreparedCreates, error) {
	form, err := s.store.AddressForm(ctx)
	if err != nil {
		return PreparedCreates{}, err
	}
	defs, err := s.store.AttributeDefinitions(ctx)
	if err != nil {
		return PreparedCreates{}, err
	}
	p := PreparedCreates{Refusals: make([]error, len(rows)), Alone: make([]bool, len(rows))}
	built := make([]NewCustomer, len(rows))
	var wg sync.WaitGroup
	workers := max(1, runtime.GOMAXPROCS(0)-1)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(rows); i += workers {
				if p.Alone[i] = !CanImportTogether(rows[i]); p.Alone[i] {
					continue
				}
				imp, err := importExtras(rows[i])
				if err == nil {
					imp.form, imp.defs = &form, defs
					built[i], err = s.newCustomer(ctx, o, rows[i].createInput(defs), imp, false)
				}
				p.Refusals[i] = err
			}
		})
	}
	wg.Wait()
	var candidates []NewCustomer
	var at []int
	for i, row := range rows {
		switch {
		case p.Alone[i]:
			p.Refusals[i] = seen.takeRow(row)
		case p.Refusals[i] == nil:
			if p.Refusals[i] = seen.take(built[i].Customer.Email, built[i].Customer.ExternalReference); p.Refusals[i] == nil {
				candidates, at = append(candidates, built[i]), append(at, i)
			}
		}
	}
	if p.kept, p.keptAt, err = s.keepUntaken(ctx, candidates, at, p.Refusals); err != nil {
		return PreparedCreates{}, err
	}
	return p, nil
}

// keepUntaken refuses, of the new customers cs of rows at, those whose email
// or external reference a customer has (setting refusals), and returns the
// others with their rows.
func (s *Service) keepUntaken(ctx context.Context, cs []NewCustomer, at []int, refusals []error) ([]NewCustomer, []int, error) {
	if len(cs) == 0 {
		return nil, nil, nil
	}
	var emails, refs []string
	for _, n := range cs {
		emails = append(emails, n.Customer.Email)
		if ref := n.Customer.ExternalReference; ref != nil {
			refs = append(refs, *ref)
		}
	}
	takenEmails, takenRefs, err := s.store.TakenEmailsAndReferences(ctx, emails, refs)
	if err != nil {
		return nil, nil, err
	}
	kept, keptAt := make([]NewCustomer, 0, len(cs)), make([]int, 0, len(cs))
	for k, n := range cs {
		if refusals[at[k]] = taken(n.Customer, takenEmails, takenRefs); refusals[at[k]] == nil {
			kept, keptAt = append(kept, n), append(keptAt, at[k])
		}
	}
	return kept, keptAt, nil
}

// CreatePrepared writes the customers PrepareCreates kept, one COPY per
// table. An error means that nothing was written (a concurrent writer took
// an email since the check, say): the caller goes row by row then.
func (s *Service) CreatePrepared(ctx context.Context, p PreparedCreates) error {
	if len(p.kept) == 0 {
		return nil
	}
	if err := s.store.CreateMany(ctx, p.kept); err != nil {
		return fmt.Errorf("import customers: %w", err)
	}
	return nil
}

// ImportSeen holds the emails and external references of the rows an
// import has prepared: a later row with one of them is a duplicate, though
// the earlier row is not committed yet (or, in a dry run, never is). It
// keeps 64-bit hashes, a few bytes a row for files of millions of rows; in
// a file of a million rows the odds that two different emails share a hash
// are about 1 in 30 million.
type ImportSeen struct {
	seed         maphash.Seed
	emails, refs map[uint64]struct{}
}

// NewImportSeen returns an empty ImportSeen.
func NewImportSeen() *ImportSeen {
	return &ImportSeen{seed: maphash.MakeSeed(), emails: map[uint64]struct{}{}, refs: map[uint64]struct{}{}}
}

// take refuses an email or external reference it holds, and otherwise
// holds them.
func (seen *ImportSeen) take(email string, ref *string) error {
	e := maphash.String(seen.seed, email)
	if _, dup := seen.emails[e]; dup {
		return ErrEmailTaken
	}
	if ref != nil {
		r := maphash.String(seen.seed, *ref)
		if _, dup := seen.refs[r]; dup {
			return ErrExternalRefUsed
		}
		seen.refs[r] = struct{}{}
	}
	seen.emails[e] = struct{}{}
	return nil
}

// takeRow is take for a row that is not built here: its email and external
// reference as Create normalises them. A row whose either is invalid is
// left to fail by itself.
func (seen *ImportSeen) takeRow(row ImportRow) error {
	var r rules
	email, ref := r.email("email", row.Email), r.externalReference("external_reference", row.ExternalReference)
	if r.err() != nil {
		return nil
	}
	return seen.take(email, ref)
}

// taken is the refusal of a new customer whose email or external reference
// is among those given (nil when neither is).
func taken(c Customer, emails, refs map[string]bool) error {
	switch {
	case emails[c.Email]:
		return ErrEmailTaken
	case c.ExternalReference != nil && refs[*c.ExternalReference]:
		return ErrExternalRefUsed
	}
	return nil
}

// createInput is what Create takes of the row; defs type its CSV
// attribute cells.
func (row ImportRow) createInput(defs Definitions) CreateInput {
	in := row.CreateInput
	in.Attributes = row.attributes(defs)
	if len(row.Addresses) > 0 {
		in.Addresses = make([]AddressInput, len(row.Addresses))
		for i, a := range row.Addresses {
			in.Addresses[i] = a.AddressInput
		}
	}
	return in
}

// importExtras is what only an import sets on a new customer, checked.
func importExtras(row ImportRow) (*imported, error) {
	imp := &imported{id: row.ID, createdAt: row.CreatedAt, isVerified: row.IsVerified != nil && *row.IsVerified}
	if row.PasswordHash != nil && *row.PasswordHash != "" {
		h, err := password.Import(*row.PasswordHash)
		switch {
		case errors.Is(err, password.ErrUnsupportedHash):
			return nil, FieldErr("password_hash", "unsupported", "%v; see the supported formats", err)
		case err != nil:
			return nil, FieldErr("password_hash", CodeInvalid, "%v", err)
		}
		imp.passwordHash = h
	}
	return imp, nil
}

// importMatch finds the customer an upsert row is about: by external
// reference, then by email.
func (s *Service) importMatch(ctx context.Context, row ImportRow) (Customer, bool, error) {
	var r rules
	if ref := r.externalReference("external_reference", row.ExternalReference); ref != nil {
		c, err := s.store.GetByExternalReference(ctx, *ref)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return c, err == nil, err
		}
	}
	email := r.email("email", row.Email)
	if err := r.err(); err != nil {
		return Customer{}, false, err
	}
	c, err := s.store.GetByEmail(ctx, email)
	if errors.Is(err, ErrNotFound) {
		return Customer{}, false, nil
	}
	return c, err == nil, err
}

// importUpdate changes the matched customer's given fields, as a PATCH of
// those fields would.
func (s *Service) importUpdate(ctx context.Context, o Origin, match Customer, row ImportRow, defs Definitions) (Customer, error) {
	for _, f := range []string{"addresses", "groups"} {
		if row.Given[f] {
			return Customer{}, FieldErr(f, "not_on_update", "%s are set only when the import creates the customer; this row matches %s", f, match.ID)
		}
	}
	var in UpdateInput
	g := row.Given
	if g["email"] {
		in.Email = &row.Email
	}
	if g["first_name"] {
		in.FirstName = &row.FirstName
	}
	if g["last_name"] {
		in.LastName = &row.LastName
	}
	if g["company_name"] {
		in.CompanyName = &row.CompanyName
	}
	if g["phone"] {
		in.Phone = Nullable[string]{Set: true, Value: row.Phone}
	}
	if g["note"] {
		in.Note = &row.Note
	}
	if g["is_active"] && row.IsActive != nil {
		in.IsActive = row.IsActive
	}
	if g["language_code"] {
		in.LanguageCode = &row.LanguageCode
	}
	if g["external_reference"] {
		in.ExternalReference = Nullable[string]{Set: true, Value: row.ExternalReference}
	}
	if g["metadata"] {
		in.Metadata = &row.Metadata
	}
	if g["private_metadata"] {
		in.PrivateMetadata = &row.PrivateMetadata
	}
	if g["attributes"] {
		in.Attributes = row.attributes(defs)
	}
	return s.Update(ctx, o, match.ID, in)
}

// attributes are the row's attributes: an NDJSON line's object, and a CSV
// row's cells typed by defs.
func (row ImportRow) attributes(defs Definitions) map[string]json.RawMessage {
	if row.AttributeCells == nil {
		return row.Attributes
	}
	out := AttributeCells(defs, row.AttributeCells)
	maps.Copy(out, row.Attributes)
	return out
}
