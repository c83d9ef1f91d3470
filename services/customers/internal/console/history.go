package console

import (
	"context"
	"slices"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// historyRow is a history entry with who made it, by name.
type historyRow struct {
	customer.HistoryEntry
	By string
}

// historyRows names each entry's actor: a staff user by name and email, an
// API token by its name (an app's, or a staff member's), the customer as
// such. The events keep only the actor's type and id (authtype, authid);
// a staff user's token is of type user too, so ids of type user are looked
// up among both.
func (c *Console) historyRows(ctx context.Context, cu customer.Customer, entries []customer.HistoryEntry) ([]historyRow, error) {
	var ids []uuid.UUID
	for _, e := range entries {
		if id, err := uuid.Parse(e.Actor.ID); err == nil && id != cu.ID && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	staffNames, err := c.Staff.Names(ctx, ids)
	if err != nil {
		return nil, err
	}
	tokenNames, err := c.Tokens.Names(ctx, ids)
	if err != nil {
		return nil, err
	}
	rows := make([]historyRow, len(entries))
	for i, e := range entries {
		rows[i] = historyRow{HistoryEntry: e, By: actorLabel(e.Actor, cu.ID, staffNames, tokenNames)}
	}
	return rows, nil
}

func actorLabel(a events.Actor, customerID uuid.UUID, staffNames, tokenNames map[uuid.UUID]string) string {
	id, _ := uuid.Parse(a.ID)
	switch {
	case a.Type == events.AuthUser && id == customerID:
		return "the customer"
	case a.Type == events.AuthUser && staffNames[id] != "":
		return "staff: " + staffNames[id]
	case a.Type == events.AuthUser && tokenNames[id] != "":
		return "staff token " + tokenNames[id]
	case tokenNames[id] != "":
		return "app " + tokenNames[id]
	case a.Type == events.AuthUnauthenticated:
		return "an email's link"
	case a.Type == events.AuthServiceAccount:
		return "an app"
	}
	return a.Type
}
