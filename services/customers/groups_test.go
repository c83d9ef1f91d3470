package customers_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/customerbus/customerbus/events"
)

type membersJSON struct {
	Group   groupJSON `json:"customer_group"`
	Added   []string  `json:"added"`
	Removed []string  `json:"removed"`
}

func TestCustomerGroupsMembershipFilterAndEvents(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	a := s.createCustomer(map[string]any{"email": "a@example.com"})
	b := s.createCustomer(map[string]any{"email": "b@example.com"})
	c := s.createCustomer(map[string]any{"email": "c@example.com"})
	d := s.createCustomer(map[string]any{"email": "d@example.com"})
	g := s.createGroup("VIP")
	if g.Version != 1 || g.CustomerCount != 0 {
		t.Fatalf("new group %+v", g)
	}
	request(t, s, http.MethodPost, "/v1/customer-groups", map[string]any{"name": "vip"}, nil).expectProblem(t, 409, "name", "unique")
	request(t, s, http.MethodPost, "/v1/customer-groups", map[string]any{"name": " "}, nil).expectProblem(t, 400, "name", "required")
	request(t, s, http.MethodPost, "/v1/customer-groups", map[string]any{}, nil).expectProblem(t, 400, "name", "required")

	members := "/v1/customer-groups/" + g.ID + "/customers"
	var m membersJSON
	s.do(http.MethodPost, members, map[string]any{"add": []string{a.ID, b.ID}}, &m)
	if !slices.Equal(m.Added, []string{a.ID, b.ID}) || m.Group.CustomerCount != 2 || m.Group.Version != 2 {
		t.Fatalf("add a, b: %+v", m)
	}
	// Adding a again is harmless: only c is new.
	s.do(http.MethodPost, members, map[string]any{"add": []string{a.ID, c.ID}}, &m)
	if !slices.Equal(m.Added, []string{c.ID}) || m.Group.CustomerCount != 3 {
		t.Fatalf("add a, c: %+v", m)
	}
	// Removing a non-member (d) is harmless: only b goes.
	s.do(http.MethodPost, members, map[string]any{"remove": []string{b.ID, d.ID}}, &m)
	if !slices.Equal(m.Removed, []string{b.ID}) || len(m.Added) != 0 || m.Group.CustomerCount != 2 || m.Group.Version != 4 {
		t.Fatalf("remove b, d: %+v", m)
	}
	var stored groupJSON
	s.do(http.MethodGet, "/v1/customer-groups/"+g.ID, nil, &stored)
	if stored != m.Group {
		t.Errorf("GET after the membership change reads %+v, the change answered %+v", stored, m.Group)
	}
	for id, want := range map[string]int{a.ID: 1, b.ID: 0, c.ID: 1} {
		if n := s.count(`SELECT count(*) FROM customers WHERE id = $1 AND $2::uuid = ANY(group_ids)`, id, g.ID); n != want {
			t.Errorf("customer %s: in the group %d times by its row, want %d", id, n, want)
		}
	}
	// Nothing to change: no new version, no event.
	s.do(http.MethodPost, members, map[string]any{"add": []string{a.ID}}, &m)
	if len(m.Added) != 0 || m.Group.Version != 4 {
		t.Fatalf("a no-op change: %+v", m)
	}
	// An unknown customer refuses the whole call.
	unknown := "01970000-0000-7000-8000-000000000000"
	request(t, s, http.MethodPost, members, map[string]any{"add": []string{d.ID, unknown}}, nil).expectProblem(t, 400, "add", "not_found")
	request(t, s, http.MethodPost, members, map[string]any{"add": []string{d.ID}, "remove": []string{d.ID}}, nil).expectProblem(t, 400, "remove", "invalid")
	request(t, s, http.MethodPost, members, map[string]any{}, nil).expectProblem(t, 400, "add", "required")
	request(t, s, http.MethodPost, "/v1/customer-groups/"+unknown+"/customers", map[string]any{"add": []string{d.ID}}, nil).expectProblem(t, 404, "id", "not_found")
	var got customerJSON
	s.do(http.MethodGet, "/v1/customers/"+d.ID, nil, &got)
	if len(got.Groups) != 0 {
		t.Fatalf("a refused add still added d: %v", got.Groups)
	}
	s.do(http.MethodGet, "/v1/customers/"+a.ID, nil, &got)
	if !slices.Equal(got.Groups, []string{g.ID}) || got.Version != 1 {
		t.Fatalf("a's groups %v version %d", got.Groups, got.Version)
	}

	// The list filters by group; a customer created into the group joins it.
	e := s.createCustomer(map[string]any{"email": "e@example.com", "groups": []string{g.ID}})
	if !slices.Equal(e.Groups, []string{g.ID}) {
		t.Fatalf("created with groups: %v", e.Groups)
	}
	p := listCustomers(t, s, "group_id="+g.ID+"&order=email")
	if p.Count == nil || *p.Count != 3 || len(p.Customers) != 3 || p.Customers[0].ID != a.ID || p.Customers[1].ID != c.ID || p.Customers[2].ID != e.ID {
		t.Fatalf("group filter: %+v", p)
	}
	request(t, s, http.MethodPost, "/v1/customers", map[string]any{"email": "f@example.com", "groups": []string{unknown}}, nil).
		expectProblem(t, 400, "groups", "not_found")
	if n := s.count("SELECT count(*) FROM customers WHERE email = 'f@example.com'"); n != 0 {
		t.Errorf("a create refused for its groups stored the customer")
	}
	request(t, s, http.MethodGet, "/v1/customers?group_id=nope", nil, nil).expectProblem(t, 400, "group_id", "invalid")

	// Rename, list, delete.
	var renamed groupJSON
	s.do(http.MethodPatch, "/v1/customer-groups/"+g.ID, map[string]any{"name": "Very Important"}, &renamed)
	if renamed.Name != "Very Important" || renamed.Version != 5 || renamed.CustomerCount != 3 {
		t.Fatalf("renamed %+v", renamed)
	}
	s.do(http.MethodGet, "/v1/customer-groups/"+g.ID, nil, &stored)
	if stored != renamed {
		t.Errorf("GET after the rename reads %+v, the rename answered %+v", stored, renamed)
	}
	s.createGroup("Wholesale")
	var list struct {
		Groups     []groupJSON `json:"customer_groups"`
		NextCursor *string     `json:"next_cursor"`
	}
	s.do(http.MethodGet, "/v1/customer-groups?limit=1", nil, &list)
	if len(list.Groups) != 1 || list.Groups[0].ID != g.ID || list.NextCursor == nil {
		t.Fatalf("first page of groups: %+v", list)
	}
	s.do(http.MethodGet, "/v1/customer-groups?limit=1&cursor="+*list.NextCursor, nil, &list)
	if len(list.Groups) != 1 || list.Groups[0].Name != "Wholesale" || list.NextCursor != nil {
		t.Fatalf("second page of groups: %+v", list)
	}
	s.do(http.MethodGet, "/v1/customer-groups?q=IMPORT", nil, &list)
	if len(list.Groups) != 1 || list.Groups[0].ID != g.ID {
		t.Fatalf("groups matching q: %+v", list)
	}
	if r := s.do(http.MethodDelete, "/v1/customer-groups/"+g.ID, nil, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete group: status %d", r.StatusCode)
	}
	request(t, s, http.MethodGet, "/v1/customer-groups/"+g.ID, nil, nil).expectProblem(t, 404, "id", "not_found")
	s.do(http.MethodGet, "/v1/customers/"+a.ID, nil, &got)
	if len(got.Groups) != 0 {
		t.Errorf("a is still in a deleted group: %v", got.Groups)
	}

	// The group's own events, in its own sequence.
	evs, _ := s.streamEvents(5 + 7) // customers a to e; the two groups' seven
	var groupEvents []string
	for _, ev := range evs {
		if ev.Subject() != g.ID {
			continue
		}
		groupEvents = append(groupEvents, ev.Type()+"@"+ext(ev, "sequence"))
		if ext(ev, "partitionkey") != g.ID {
			t.Errorf("%s partition key %s, want the group id", ev.Type(), ext(ev, "partitionkey"))
		}
		if ev.Type() == events.CustomerGroupCustomersRemoved {
			var data events.CustomerGroupMembersData
			if err := json.Unmarshal(ev.Data(), &data); err != nil {
				t.Fatal(err)
			}
			if len(data.CustomerIDs) != 1 || data.CustomerIDs[0].String() != b.ID {
				t.Errorf("customers_removed lists %v, want only b", data.CustomerIDs)
			}
		}
	}
	want := []string{"customer_group.created@1", "customer_group.customers_added@2", "customer_group.customers_added@3",
		"customer_group.customers_removed@4", "customer_group.updated@5", "customer_group.deleted@6"}
	if !slices.Equal(groupEvents, want) {
		t.Errorf("group events\n%v\nwant\n%v", groupEvents, want)
	}
}

func TestBulkUpdateAndDeleteAreAllOrNothing(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, retainOnDelete) // the deletions keep the earlier events
	a := s.createCustomer(map[string]any{"email": "a@example.com"})
	b := s.createCustomer(map[string]any{"email": "b@example.com"})
	c := s.createCustomer(map[string]any{"email": "c@example.com", "is_active": false})

	t.Run("bad input", func(t *testing.T) { runBadInputs(t, s, bulkBadInputs(a.ID, b.ID)) })
	t.Run("after refusals", func(t *testing.T) {
		if n := s.count("SELECT count(*) FROM customers WHERE version = 1"); n != 3 {
			t.Fatalf("refused bulk calls changed customers: %d of 3 untouched", n)
		}
		var res struct {
			Customers []customerJSON `json:"customers"`
			Changed   []string       `json:"changed"`
		}
		// c is inactive already: only a and b change.
		r := s.do(http.MethodPost, "/v1/customers/bulk-update", map[string]any{"ids": []string{c.ID, a.ID, b.ID, a.ID}, "update": map[string]any{"is_active": false}}, &res)
		if r.StatusCode != 200 || len(res.Customers) != 3 || res.Customers[0].ID != c.ID || res.Customers[1].IsActive ||
			!slices.Equal(res.Changed, []string{a.ID, b.ID}) || res.Customers[0].Version != 1 || res.Customers[1].Version != 2 {
			t.Fatalf("bulk update: status %d %+v", r.StatusCode, res)
		}
		for _, c := range res.Customers {
			s.forTest(t).expectStored(c)
		}
		var del struct{ Deleted []string }
		r = s.do(http.MethodPost, "/v1/customers/bulk-delete", map[string]any{"ids": []string{a.ID, c.ID}}, &del)
		if r.StatusCode != 200 || !slices.Equal(del.Deleted, []string{a.ID, c.ID}) || s.count("SELECT count(*) FROM customers") != 1 {
			t.Fatalf("bulk delete: status %d %+v", r.StatusCode, del)
		}
		evs, _ := s.streamEvents(3 + 2 + 2)
		var got []string
		for _, e := range evs[3:] {
			got = append(got, e.Type()+"@"+ext(e, "sequence"))
		}
		// Order is kept per customer only, so compare as sets.
		slices.Sort(got)
		want := []string{"customer.deleted@2", "customer.deleted@3", "customer.updated@2", "customer.updated@2"}
		if !slices.Equal(got, want) {
			t.Errorf("bulk events %v, want %v", got, want)
		}
	})
}

func bulkBadInputs(a, b string) []badInput {
	unknown := "01970000-0000-7000-8000-000000000000"
	return []badInput{
		{name: "unknown id", method: "POST", path: "/v1/customers/bulk-update", body: map[string]any{"ids": []string{a, unknown}, "update": map[string]any{"is_active": false}}, wantStatus: 400, wantField: "ids", wantCode: "not_found"},
		{name: "no ids", method: "POST", path: "/v1/customers/bulk-update", body: map[string]any{"ids": []string{}, "update": map[string]any{"is_active": false}}, wantStatus: 400, wantField: "ids", wantCode: "required"},
		{name: "email in bulk", method: "POST", path: "/v1/customers/bulk-update", body: map[string]any{"ids": []string{a}, "update": map[string]any{"email": "x@example.com"}}, wantStatus: 400, wantField: "update.email", wantCode: "invalid"},
		{name: "bad phone", method: "POST", path: "/v1/customers/bulk-update", body: map[string]any{"ids": []string{a, b}, "update": map[string]any{"phone": "nope"}}, wantStatus: 400, wantField: "update.phone", wantCode: "invalid"},
		{name: "unknown field in update", method: "POST", path: "/v1/customers/bulk-update", body: map[string]any{"ids": []string{a}, "update": map[string]any{"nickname": "x"}}, wantStatus: 400, wantField: "nickname", wantCode: "unknown_field"},
		{name: "delete with an unknown id", method: "POST", path: "/v1/customers/bulk-delete", body: map[string]any{"ids": []string{a, unknown}}, wantStatus: 400, wantField: "ids", wantCode: "not_found"},
		{name: "delete nothing", method: "POST", path: "/v1/customers/bulk-delete", body: map[string]any{}, wantStatus: 400, wantField: "ids", wantCode: "required"},
		{name: "id not a uuid", method: "POST", path: "/v1/customers/bulk-delete", body: map[string]any{"ids": []string{"nope"}}, wantStatus: 400, wantField: "ids[0]", wantCode: "invalid"},
	}
}

// A customer created into groups is answered and published with them in
// the order every later read lists them, whatever order they were given in.
func TestCreateAnswersGroupsInTheOrderEveryReadGives(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	first, second := s.createGroup("First"), s.createGroup("Second") // ids in time order
	c := s.createCustomer(map[string]any{"email": "grouped@example.com", "groups": []string{second.ID, first.ID}})
	if want := []string{first.ID, second.ID}; !slices.Equal(c.Groups, want) {
		t.Errorf("created with groups %v, want %v", c.Groups, want)
	}
	s.expectStored(c)
	evs, _ := s.streamEvents(3)
	var created events.CustomerCreatedData
	if err := json.Unmarshal(evs[2].Data(), &created); err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, id := range created.Groups {
		groups = append(groups, id.String())
	}
	if !slices.Equal(groups, c.Groups) {
		t.Errorf("customer.created lists groups %v, the customer %v", groups, c.Groups)
	}
}

// The bus's reply to a membership command is what HTTP answers: the group
// as a fresh GET reads it, and the customers whose membership changed.
func TestBusMembershipCommandRepliesWithTheStoredGroup(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	c := s.createCustomer(map[string]any{"email": "member@example.com"})
	g := s.createGroup("Bus")
	var m membersJSON
	s.commandReply(s.command("", events.CmdGroupCustomersAdd, map[string]any{"group_id": g.ID, "customer_ids": []string{c.ID}}), &m)
	var stored groupJSON
	s.do(http.MethodGet, "/v1/customer-groups/"+g.ID, nil, &stored)
	if m.Group != stored || stored.CustomerCount != 1 || !slices.Equal(m.Added, []string{c.ID}) || len(m.Removed) != 0 {
		t.Errorf("the command replied %+v; GET reads the group %+v", m, stored)
	}
}
