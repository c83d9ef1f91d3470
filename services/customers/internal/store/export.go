package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// snapshotOptions make every read of a snapshot see the database as it was
// at its first statement: a long export reads one state, never a customer
// twice or a change half-made.
var snapshotOptions = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// Snapshot runs fn with a store on one REPEATABLE READ READ ONLY
// transaction. A store already on a transaction (a bus command's) cannot
// open one of its own.
func (s *Store) Snapshot(ctx context.Context, fn func(customer.Snapshot) error) error {
	b, ok := s.db.(interface {
		BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
	})
	if !ok {
		return errors.New("store: snapshot: the store runs inside a transaction already")
	}
	return pgx.BeginTxFunc(ctx, b, snapshotOptions, func(tx pgx.Tx) error {
		return fn(&Store{db: tx, q: s.q.WithTx(tx), defs: s.defs})
	})
}

// DataSnapshot is Snapshot for a customer's data export.
func (s *Store) DataSnapshot(ctx context.Context, fn func(customer.DataSnapshot) error) error {
	return s.Snapshot(ctx, func(snap customer.Snapshot) error { return fn(snap.(*Store)) })
}

// AddressesOf reads the addresses of the customers in one query, each
// customer's oldest first.
func (s *Store) AddressesOf(ctx context.Context, customerIDs []uuid.UUID) (map[uuid.UUID][]customer.Address, error) {
	rows, err := s.q.ListAddressesOfCustomers(ctx, customerIDs)
	if err != nil {
		return nil, fmt.Errorf("store: list addresses: %w", err)
	}
	out := make(map[uuid.UUID][]customer.Address)
	for _, r := range rows {
		out[r.CustomerID] = append(out[r.CustomerID], fromAddressRow(r))
	}
	return out, nil
}

// MetadataKeys reads the metadata keys of the customers matching f, sorted
// (by bytes, as Go sorts, whatever the database's collation).
func (s *Store) MetadataKeys(ctx context.Context, f customer.Filter, private bool) (customer.MetadataKeys, error) {
	p := filterParams(f)
	a := attributeParams(f.Attributes, 0) // no slots: every filter tested on each customer
	rows, err := s.q.ExportMetadataKeys(ctx, gen.ExportMetadataKeysParams{
		WithPrivate: private,
		Email:       p.Email, IsActive: p.IsActive, Q: p.Q, HasAccount: p.HasAccount, IsVerified: p.IsVerified,
		CreatedAfter: p.CreatedAfter, CreatedBefore: p.CreatedBefore, UpdatedAfter: p.UpdatedAfter,
		Metadata: p.Metadata, GroupID: p.GroupID, OrdersMin: p.OrdersMin, OrdersMax: p.OrdersMax,
		PlacedAfter: p.PlacedAfter, PlacedBefore: p.PlacedBefore, OrderedBeforeCreated: p.OrderedBeforeCreated,
		EmailConsent: p.EmailConsent, SmsConsent: p.SmsConsent,
		TextKeys: a.textKeys, TextValues: a.textValues,
		NumberKeys: a.numberKeys, NumberMins: a.numberMins, NumberMaxes: a.numberMaxes,
		TimeKeys: a.timeKeys, TimeMins: a.timeMins, TimeMaxes: a.timeMaxes,
	})
	if err != nil {
		return customer.MetadataKeys{}, fmt.Errorf("store: metadata keys: %w", err)
	}
	var keys customer.MetadataKeys
	for _, r := range rows {
		if r.Private {
			keys.Private = append(keys.Private, r.Key)
		} else {
			keys.Public = append(keys.Public, r.Key)
		}
	}
	slices.Sort(keys.Public)
	slices.Sort(keys.Private)
	return keys, nil
}
