package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// seedBatch rows go in one COPY: small enough to report progress and stop
// soon after Ctrl-C, large enough that the per-statement cost does not show.
const seedBatch = 50_000

// The seeded customers were created over the three years before seedEnd; a
// fixed date keeps the data the same from run to run.
var (
	seedEnd   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seedStart = seedEnd.AddDate(-3, 0, 0)
)

// seedColumns are the columns the seed writes: search_text is generated from
// them, the others keep their defaults.
var seedColumns = []string{
	"id", "email", "first_name", "last_name", "company_name", "phone", "is_active", "language_code",
	"metadata", "has_account", "is_verified", "version", "created_at", "updated_at", "group_ids",
	"number_of_orders", "first_order_at", "last_order_at", "attributes",
}

// Name parts: a last name is a base plus up to two syllables, so a 4-6
// letter substring matches anything from a handful of customers to a few
// percent of them, as real searches do. Accented letters test that search
// ignores accents.
var (
	firstNames = []string{
		"Anna", "Ben", "Chloé", "David", "Elena", "François", "Greta", "Hannah", "Ivan", "José",
		"Jürgen", "Karin", "Łukasz", "Maria", "Noah", "Olga", "Pierre", "Renée", "Søren", "Zoë",
		"Thomas", "Laura", "Mohammed", "Aisha", "Wei", "Yuki", "Lars", "Ingrid", "Mateo", "Lucía",
		"Sophie", "Oliver", "Emma", "Liam", "Mia", "Jonas", "Nina", "Paul", "Sara", "Tomás",
		"Björn", "Åsa", "Agnieszka", "Kenji", "Fatima", "Igor", "Chiara", "Mehmet", "Ewa", "Rafael",
	}
	lastNames = []string{
		"Müller", "Schmidt", "González", "Núñez", "Øster", "Dvořák", "Lefèvre", "Smith", "Johnson", "Brown",
		"Garcia", "Martin", "Rossi", "Bianchi", "Kowalski", "Nowak", "Novák", "Jensen", "Hansen", "Andersson",
		"Lindqvist", "Björk", "O'Brien", "Murphy", "Kelly", "Tanaka", "Suzuki", "Kim", "Park", "Nguyen",
		"Silva", "Santos", "Pereira", "Fernández", "López", "Peña", "Weiß", "Groß", "Schäfer", "Fischer",
		"Wagner", "Becker", "Hoffmann", "Dubois", "Moreau", "Girard", "Çelik", "Yılmaz", "Åberg", "Ström",
	}
	syllables = []string{
		"berg", "son", "ström", "mann", "ez", "ski", "ova", "ini", "ley", "ton",
		"ford", "wood", "hart", "holm", "dal", "vik", "stein", "feld", "ach", "eau",
		"rup", "gård", "ek", "ić", "elli", "ard", "well", "by", "lund", "ner",
	}
	companyNames = []string{
		"Nordwind", "Acme", "Blue River", "Sunset", "Alpenglühen", "Höhenflug", "Brightline", "Kaffeehaus",
		"Orbital", "Redwood", "Fjordlys", "Granit", "Lumière", "Pixelwerk", "Castañeda", "Harbor",
	}
	companyForms = []string{"GmbH", "Ltd", "Inc.", "S.A.", "AB", "LLC", "& Co.", "Sp. z o.o."}
	domains      = []string{"gmail.com", "outlook.com", "yahoo.com", "web.de", "gmx.net", "proton.me", "example.org", "mail.fr"}
	languages    = []string{"en", "en", "en", "de", "fr", "es", "pl", "sv"}
	countryCodes = []string{"49", "44", "1", "33", "34", "46", "48"}
)

// asciiFold spells the accented letters of the name lists the way the
// unaccent dictionary does, for email addresses and accent-free queries.
var asciiFold = strings.NewReplacer(
	"é", "e", "è", "e", "ç", "c", "Ç", "C", "ü", "u", "ä", "a", "å", "a", "Å", "A", "ø", "o", "Ø", "O",
	"ö", "o", "ő", "o", "ó", "o", "ñ", "n", "í", "i", "á", "a", "ú", "u", "ł", "l", "Ł", "L", "ř", "r",
	"ß", "ss", "ı", "i", "ë", "e", "ć", "c",
)

// sample is what the search case needs to know of a seeded customer to build
// queries that match it.
type sample struct{ lastName, emailLocal string }

// seeder generates the customers, deterministically, and keeps every
// sampleEvery-th one as a sample.
type seeder struct {
	rng         *rand.Rand
	total, next int
	numbers     int // a power of ten above total: the range of email numbers
	sampleEvery int
	samples     []sample
	groups      seededGroups

	// Orders come from a generator of their own, so the customers are the
	// same as before orders were seeded.
	orng     *rand.Rand
	orders   [][]any // the current batch's orders, in orderColumns order
	orderSeq int     // orders generated so far: their numbers
	noOrders bool    // customers without orders, for a case that reads none
}

func newSeeder(total int, groups seededGroups) *seeder {
	s := &seeder{
		rng: rand.New(rand.NewPCG(1, 2)), orng: rand.New(rand.NewPCG(5, 6)),
		total: total, numbers: 10, sampleEvery: max(1, total/10_000), groups: groups,
	}
	for s.numbers < total {
		s.numbers *= 10
	}
	return s
}

// seed COPYs total customers into the database in batches, each batch's
// orders right after its customers (their foreign key needs the customers).
func seed(ctx context.Context, pool *pgxpool.Pool, s *seeder) error {
	for s.next < s.total {
		src := &batch{s: s, left: min(seedBatch, s.total-s.next)}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"customers"}, seedColumns, src); err != nil {
			return fmt.Errorf("seed: copy customers: %w", err)
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"orders"}, orderColumns, pgx.CopyFromRows(s.orders)); err != nil {
			return fmt.Errorf("seed: copy orders: %w", err)
		}
		s.orders = s.orders[:0]
		fmt.Fprintf(os.Stderr, "seeded %d/%d customers, %d orders\n", s.next, s.total, s.orderSeq)
	}
	return nil
}

// skipTo generates the rows before customer n without writing them, for
// their samples: the database already holds them.
func (s *seeder) skipTo(n int) {
	for s.next < n {
		s.customer()
		s.orders = s.orders[:0]
	}
}

// batch is one COPY's rows, generated as pgx reads them.
type batch struct {
	s    *seeder
	left int
	row  []any
}

func (b *batch) Next() bool {
	if b.left == 0 {
		return false
	}
	b.left--
	b.row = b.s.customer()
	return true
}

func (b *batch) Values() ([]any, error) { return b.row, nil }
func (b *batch) Err() error             { return nil }

// customer generates the next customer's row, in seedColumns order. Rows come
// in creation order, as a table filled over the years would have them.
func (s *seeder) customer() []any {
	n := s.next
	s.next++
	r := s.rng
	pick := func(list []string) string { return list[r.IntN(len(list))] }
	chance := func(p float64) bool { return r.Float64() < p }

	first := pick(firstNames)
	last := pick(lastNames)
	for i := 0; i < 2 && chance(0.5); i++ {
		last += pick(syllables)
	}
	// The number makes the address unique. Scrambled (7919 is prime to 10, so
	// no two rows get the same one), it does not grow with the creation time:
	// a run of digits must not pick out the oldest customers, which would
	// make q searches walk the whole created_at index.
	num := (n*7919 + 4241) % s.numbers
	local := strings.ToLower(asciiFold.Replace(first+"."+strings.ReplaceAll(last, "'", "")) + "." + strconv.Itoa(num))
	if n%s.sampleEvery == 0 {
		s.samples = append(s.samples, sample{lastName: last, emailLocal: local})
	}
	company := ""
	if chance(0.6) {
		company = pick(companyNames) + " " + pick(companyForms)
	}
	var phone *string
	if chance(0.5) {
		p := "+" + pick(countryCodes) + strconv.Itoa(100_000_000+r.IntN(900_000_000))
		phone = &p
	}
	metadata := "{}"
	if chance(0.05) {
		metadata = `{"tier":"gold"}`
	}
	hasAccount := chance(0.45)
	verified := chance(0.05)
	if hasAccount {
		verified = chance(0.7)
	}
	step := seedEnd.Sub(seedStart) / time.Duration(s.total)
	created := seedStart.Add(step*time.Duration(n) + time.Duration(r.Int64N(int64(step))))
	updated := created
	if chance(0.5) {
		updated = created.Add(time.Duration(r.Int64N(int64(seedEnd.Sub(created)) + 1)))
	}
	groups := []uuid.UUID{}
	if chance(0.10) {
		groups = append(groups, s.groups.large)
	}
	if chance(0.001) {
		groups = append(groups, s.groups.small)
	}
	// In the order the row literal used to draw them, so the customers stay
	// the same.
	id := uuidV7(created, r)
	email := local + "@" + pick(domains)
	active := chance(0.92)
	lang := pick(languages)
	var orders int
	var firstOrder, lastOrder *time.Time
	if !s.noOrders {
		orders, firstOrder, lastOrder = s.customerOrders(id, email, lang, created)
	}
	return []any{
		id, email, first, last, company, phone, active, lang,
		metadata, hasAccount, verified, int64(1), created, updated, groups,
		int32(orders), firstOrder, lastOrder, seedAttributes(id),
	}
}

// seedAttributes are a customer's values of the bench's attributes (see
// defineBenchAttributes), drawn from a hash of its id rather than from the
// seed's random source, so that the other columns stay as they were: a
// tier (bronze 60%, silver 30%, gold 9%, platinum 1%), points uniform in
// 0..9999 and a date of birth uniform in 1950..2004.
func seedAttributes(id uuid.UUID) string {
	h := fnv.New64a()
	h.Write(id[:])
	x := h.Sum64()
	tier := "bronze"
	switch p := x % 100; {
	case p < 1:
		tier = "platinum"
	case p < 10:
		tier = "gold"
	case p < 40:
		tier = "silver"
	}
	points := (x >> 8) % 10_000
	dob := seedBirthStart.AddDate(0, 0, int((x>>24)%uint64(seedBirthDays)))
	return fmt.Sprintf(`{"tier":%q,"points":%d,"dob":%q}`, tier, points, dob.Format(time.DateOnly))
}

// The dates of birth the seed draws from.
var (
	seedBirthStart = time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC)
	seedBirthDays  = int(time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC).Sub(seedBirthStart).Hours() / 24)
)

// uuidV7 is a version 7 UUID for time t, as the service would have made when
// the customer was created, with its random bits from r.
func uuidV7(t time.Time, r *rand.Rand) uuid.UUID {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[0:], uint64(t.UnixMilli())<<16|r.Uint64()&0x0fff)
	binary.BigEndian.PutUint64(u[8:], r.Uint64())
	u[6] = u[6]&0x0f | 0x70
	u[8] = u[8]&0x3f | 0x80
	return u
}
