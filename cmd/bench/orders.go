package main

import (
	"math/big"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// orderColumns are the columns the seed writes into orders.
var orderColumns = []string{
	"id", "number", "email", "customer_id", "channel", "total", "currency", "status",
	"placed_at", "metadata", "version", "created_at", "updated_at",
}

// maxOrders is the most orders a seeded customer has.
const maxOrders = 50

// drawOrderCount draws a customer's number of orders: 40% have none, half have
// 1 to 5 (fewer more likely), and a tenth have 6 to 50, skewed low, which
// puts about 4.5% of the customers at 10 or more.
func drawOrderCount(r *rand.Rand) int {
	switch u := r.Float64(); {
	case u < 0.40:
		return 0
	case u < 0.90:
		// 1..5 with weights 40, 25, 15, 12, 8.
		w := r.IntN(100)
		for n, cum := range []int{40, 65, 80, 92, 100} {
			if w < cum {
				return n + 1
			}
		}
		return 5
	default:
		x := r.Float64()
		return 6 + int(float64(maxOrders-6)*x*x*x*x)
	}
}

// currencies by language code: who buys in which currency.
var currencies = map[string][]string{
	"en": {"USD", "USD", "GBP"}, "de": {"EUR"}, "fr": {"EUR"}, "es": {"EUR"}, "pl": {"PLN", "EUR"}, "sv": {"SEK"},
}

// customerOrders generates the orders of a customer created at created, into
// s.orders: placed between created and seedEnd, in time order. It returns
// their number and the times of the first and the last (nil without
// orders): the customer row's number_of_orders, first_order_at and
// last_order_at.
func (s *seeder) customerOrders(customerID uuid.UUID, email, lang string, created time.Time) (int, *time.Time, *time.Time) {
	r := s.orng
	n := drawOrderCount(r)
	if n == 0 {
		return 0, nil, nil
	}
	span := int64(seedEnd.Sub(created))
	placed := make([]time.Time, n)
	for i := range placed {
		placed[i] = created.Add(time.Duration(r.Int64N(span)))
	}
	slices.SortFunc(placed, time.Time.Compare)
	for _, at := range placed {
		s.orderSeq++
		channel := "web"
		switch u := r.Float64(); {
		case u < 0.25:
			channel = "app"
		case u < 0.35:
			channel = "pos"
		}
		status := "fulfilled"
		switch {
		case seedEnd.Sub(at) < 7*24*time.Hour:
			status = "unfulfilled"
		case r.Float64() < 0.05:
			status = "cancelled"
		}
		// 5.00 to about 500.00, most orders small.
		x := r.Float64()
		cents := 500 + int64(49_500*x*x)
		cur := currencies[lang]
		s.orders = append(s.orders, []any{
			uuidV7(at, r), "SO-" + strconv.Itoa(100_000+s.orderSeq), email, customerID, channel,
			pgtype.Numeric{Int: big.NewInt(cents), Exp: -2, Valid: true}, cur[r.IntN(len(cur))], status,
			at, "{}", int64(1), at, at,
		})
	}
	return n, &placed[0], &placed[n-1]
}
