package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/db/gen"
)

// A definition change is read inside its own transaction (as an
// Idempotency-Key request's use cases do) and then rolled back: what that
// read kept must never stand for a committed state, not even for the next
// change's version.
func TestDefinitionsReadInARolledBackChangeAreNeverServed(t *testing.T) {
	ctx := context.Background()
	pool, _ := dbtest.New(t)
	st := New(pool)
	change := func(q *gen.Queries, key string) {
		t.Helper()
		now := time.Now()
		if _, err := q.InsertAttributeDefinition(ctx, gen.InsertAttributeDefinitionParams{
			ID: uuid.New(), Key: key, Type: "string", Definition: []byte(`{"label":"` + key + `"}`), Version: 1, CreatedAt: now, UpdatedAt: now,
		}); err != nil {
			t.Fatal(err)
		}
		if err := q.BumpAttributeDefinitionsVersion(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	change(gen.New(tx), "rolled_back")
	if defs, err := st.On(tx).AttributeDefinitions(ctx); err != nil || len(defs) != 1 {
		t.Fatalf("inside the change: %v, %v; want its definition", defs, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	change(gen.New(pool), "committed")
	defs, err := st.AttributeDefinitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := defs["committed"]; !ok || len(defs) != 1 {
		t.Errorf("after the rollback and a committed change: %v, want only committed", defs)
	}
}
