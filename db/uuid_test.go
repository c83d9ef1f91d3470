package db_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/dbtest"
)

// Ids go to PostgreSQL and back as they are, as bytes and as text, alone,
// null and in arrays.
func TestUUIDsRoundTrip(t *testing.T) {
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	a, b := uuid.New(), uuid.New()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		var (
			got, zero  uuid.UUID
			ptr, null  *uuid.UUID
			ids        []uuid.UUID
			text, back string
		)
		// The simple protocol sends no array of a type pgx does not know
		// (neither did it before the codec); it reads one back.
		err := pool.QueryRow(ctx, `SELECT $1::uuid, $2::uuid, NULL::uuid, ARRAY[$2::uuid, $1::uuid], $1::uuid::text, $3::uuid, $1::uuid`,
			mode, a, &b, a.String()).Scan(&got, &ptr, &null, &ids, &text, &zero, &back)
		if err != nil {
			t.Fatalf("mode %v: %v", mode, err)
		}
		if got != a || ptr == nil || *ptr != b || null != nil || !slices.Equal(ids, []uuid.UUID{b, a}) ||
			text != a.String() || zero != a || back != a.String() {
			t.Errorf("mode %v: got %v %v %v %v %q %v %q", mode, got, ptr, null, ids, text, zero, back)
		}
		if mode == pgx.QueryExecModeCacheStatement {
			var n int
			if err := pool.QueryRow(ctx, `SELECT cardinality($1::uuid[])`, []uuid.UUID{a, b, a}).Scan(&n); err != nil || n != 3 {
				t.Errorf("an array of 3 ids has %d (%v)", n, err)
			}
		}
		var none *uuid.UUID
		if err := pool.QueryRow(ctx, `SELECT $1::uuid`, mode, none).Scan(&ptr); err != nil || ptr != nil {
			t.Errorf("mode %v: a nil id came back as %v (%v)", mode, ptr, err)
		}
	}
}
