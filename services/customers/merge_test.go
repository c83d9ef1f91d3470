package customers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/customerbus/customerbus/events"
)

// A merge moves the source's orders, addresses, notes, groups, metadata
// keys and credentials to the target, keeps the target's values unless
// override names the source, removes the source (whose id then answers
// where it went) and emits customer.merged, customer.updated and one event
// per moved order and joined group; the preview shows all of it and writes
// nothing.
func TestMergeMovesEverythingToTheTarget(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	target := s.createCustomer(map[string]any{"email": "tia-" + randomSuffix() + "@example.com", "first_name": "Tia",
		"metadata": map[string]string{"tier": "gold"}})
	src := s.newShopper() // registered, verified, with a password
	sb := "/v1/customers/" + src.ID
	request(t, s, http.MethodPatch, sb, map[string]any{"first_name": "Sam", "phone": "+4930555123",
		"metadata": map[string]string{"tier": "silver", "source": "pos"}, "private_metadata": map[string]string{"erp": "7"}}, nil).expectStatus(t, http.StatusOK)
	var addr addressJSON
	request(t, s, http.MethodPost, sb+"/addresses", func() map[string]any {
		a := validAddress()
		a["is_default_shipping"] = true
		return a
	}(), nil).decode(t, &addr)
	request(t, s, http.MethodPost, sb+"/notes", map[string]any{"text": "prefers post"}, nil).expectStatus(t, http.StatusCreated)
	g := s.createGroup("merge-" + randomSuffix())
	request(t, s, http.MethodPost, "/v1/customer-groups/"+g.ID+"/customers", map[string]any{"add": []string{src.ID}}, nil).expectStatus(t, http.StatusOK)
	o1, o2 := s.recordOrder(orderBody(&src.ID, time.Now().Add(-time.Hour))), s.recordOrder(orderBody(&src.ID, time.Now()))
	s.waitRelayed()
	eventsBefore := s.count(`SELECT count(*) FROM outbox`)

	// The preview: what would happen, and nothing happens.
	var pv struct {
		Customer customerJSON `json:"customer"`
		Moves    struct {
			Orders, Addresses, Notes, Groups []string
		} `json:"moves"`
		Events []string `json:"events"`
	}
	request(t, s, http.MethodGet, "/v1/customers/"+target.ID+"/merge-preview?source_id="+src.ID+"&override=email,phone", nil, nil).decode(t, &pv)
	if pv.Customer.Email != src.Email || pv.Customer.FirstName != "Tia" || len(pv.Moves.Orders) != 2 || len(pv.Moves.Addresses) != 1 ||
		len(pv.Moves.Notes) != 1 || !slices.Equal(pv.Moves.Groups, []string{g.ID}) {
		t.Errorf("preview: %+v", pv)
	}
	if want := []string{events.CustomerMerged, events.CustomerUpdated, events.OrderTransferred, events.OrderTransferred, events.CustomerGroupCustomersAdded}; !slices.Equal(pv.Events, want) {
		t.Errorf("preview events %v, want %v", pv.Events, want)
	}
	var stillT customerJSON
	s.do(http.MethodGet, "/v1/customers/"+target.ID, nil, &stillT)
	request(t, s, http.MethodGet, sb, nil, nil).expectStatus(t, http.StatusOK)
	if stillT.Version != target.Version || s.count(`SELECT count(*) FROM outbox`) != eventsBefore {
		t.Fatalf("the preview wrote: target version %d (was %d), %d events (were %d)", stillT.Version, target.Version, s.count(`SELECT count(*) FROM outbox`), eventsBefore)
	}

	var merged customerJSON
	r := request(t, s, http.MethodPost, "/v1/customers/"+target.ID+"/merge", map[string]any{
		"source_id": src.ID, "override": map[string]string{"email": src.ID, "phone": src.ID, "first_name": target.ID},
	}, nil)
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &merged)

	// A fresh GET and the target's own routes show the result.
	var got customerJSON
	s.do(http.MethodGet, "/v1/customers/"+target.ID, nil, &got)
	if got.Email != src.Email || got.FirstName != "Tia" || got.Phone == nil || *got.Phone != "+4930555123" ||
		!maps.Equal(got.Metadata, map[string]string{"tier": "gold", "source": "pos"}) || !maps.Equal(got.PrivateMetadata, map[string]string{"erp": "7"}) ||
		!slices.Equal(got.Groups, []string{g.ID}) || got.DefaultShipping == nil || *got.DefaultShipping != addr.ID || !got.HasAccount || !got.IsVerified {
		t.Errorf("the target after the merge: %+v", got)
	}
	if got.Version != merged.Version || got.Version != target.Version+2 {
		t.Errorf("target version %d (answer %d), want %d: customer.merged and customer.updated", got.Version, merged.Version, target.Version+2)
	}
	var orders struct{ Orders []orderJSON }
	s.do(http.MethodGet, "/v1/customers/"+target.ID+"/orders", nil, &orders)
	var addresses struct{ Addresses []addressJSON }
	s.do(http.MethodGet, "/v1/customers/"+target.ID+"/addresses", nil, &addresses)
	var notes struct{ Notes []struct{ Text string } }
	s.do(http.MethodGet, "/v1/customers/"+target.ID+"/notes", nil, &notes)
	if len(orders.Orders) != 2 || len(addresses.Addresses) != 1 || len(notes.Notes) != 1 || notes.Notes[0].Text != "prefers post" {
		t.Errorf("the target's orders %d, addresses %d, notes %+v", len(orders.Orders), len(addresses.Addresses), notes.Notes)
	}
	if n := s.count(`SELECT number_of_orders FROM customers WHERE id = $1`, target.ID); n != 2 {
		t.Errorf("the target counts %d orders, want 2", n)
	}

	// The source's id says where it went, on every route.
	for _, r := range []reply{
		request(t, s, http.MethodGet, sb, nil, nil),
		request(t, s, http.MethodPatch, sb, map[string]any{"note": "x"}, nil),
		request(t, s, http.MethodGet, sb+"/history", nil, nil),
	} {
		var p struct {
			MergedInto string `json:"merged_into"`
		}
		r.expectProblem(t, http.StatusNotFound, "id", "merged")
		if json.Unmarshal(r.body, &p); p.MergedInto != target.ID {
			t.Errorf("merged_into %q, want the target", p.MergedInto)
		}
	}
	// The source's credentials are the target's now.
	if sess := s.login(src.Email, src.Password); sess.Customer.ID != target.ID {
		t.Errorf("the source's login reaches %s, want the target", sess.Customer.ID)
	}

	// The events, and the target's sequences without a gap.
	s.waitRelayed()
	evs := s.readStreamEvents(events.EventsStream)
	var seqs []string
	var transferred, joined int
	for _, e := range evs {
		switch {
		case e.Subject() == target.ID:
			seqs = append(seqs, e.Type()+" "+ext(e, events.ExtSequence))
		case e.Type() == events.OrderTransferred && (e.Subject() == o1.ID || e.Subject() == o2.ID):
			var d events.OrderTransferredData
			if err := json.Unmarshal(e.Data(), &d); err != nil || d.TransferID != nil || d.PreviousCustomerID == nil ||
				d.PreviousCustomerID.String() != src.ID || ext(e, events.ExtSequence) != "2" {
				t.Errorf("order.transferred of a merge: %s seq %s", e.Data(), ext(e, events.ExtSequence))
			}
			transferred++
		case e.Type() == events.CustomerGroupCustomersAdded && e.Subject() == g.ID && ext(e, events.ExtSequence) == "3":
			joined++
		}
	}
	wantSeqs := []string{events.CustomerCreated + " 1", events.CustomerMerged + " 2", events.CustomerUpdated + " 3"}
	if !slices.Equal(seqs, wantSeqs) || transferred != 2 || joined != 1 {
		t.Errorf("the target's events %v (want %v), %d order.transferred (want 2), %d group joins (want 1)", seqs, wantSeqs, transferred, joined)
	}
}

// Merges that cannot be are refused, each with its code, and change nothing.
func TestMergeRefusals(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	a, b := s.createCustomer(map[string]any{"email": "ra-" + randomSuffix() + "@example.com"}), s.createCustomer(map[string]any{"email": "rb-" + randomSuffix() + "@example.com"})
	merge := func(target, source string) reply {
		return request(t, s, http.MethodPost, "/v1/customers/"+target+"/merge", map[string]any{"source_id": source}, nil)
	}
	merge(a.ID, a.ID).expectProblem(t, http.StatusConflict, "source_id", "same_customer")
	merge(a.ID, "nope").expectProblem(t, http.StatusBadRequest, "source_id", "invalid")
	merge(a.ID, "01a23247-d763-7c0d-8750-6c49f282b509").expectProblem(t, http.StatusNotFound, "source_id", "not_found")
	request(t, s, http.MethodPost, "/v1/customers/"+a.ID+"/merge", map[string]any{"source_id": b.ID, "override": map[string]string{"password": b.ID}}, nil).
		expectProblem(t, http.StatusBadRequest, "override.password", "invalid")

	// An open transfer on either.
	owner, to := s.newShopper(), s.newShopper()
	ord := s.recordOrder(orderBody(&owner.ID, time.Now()))
	s.requestTransfer(ord.ID, to.ID).expectStatus(t, http.StatusCreated)
	merge(a.ID, owner.ID).expectProblem(t, http.StatusConflict, "source_id", "transfer_open")
	merge(to.ID, b.ID).expectProblem(t, http.StatusConflict, "source_id", "transfer_open")

	// An anonymized one.
	request(t, s, http.MethodPost, "/v1/customers/"+b.ID+"/anonymize", nil, nil).expectStatus(t, http.StatusOK)
	merge(a.ID, b.ID).expectProblem(t, http.StatusConflict, "id", "anonymized")
	if n := s.count(`SELECT count(*) FROM merged_customers`); n != 0 {
		t.Errorf("%d merges recorded after refusals", n)
	}
	// A source merged already names where it went; merged into a customer
	// merged in its turn, it names the last one.
	c := s.createCustomer(map[string]any{"email": "rc-" + randomSuffix() + "@example.com"})
	merge(a.ID, c.ID).expectStatus(t, http.StatusOK)
	merge(owner.ID, c.ID).expectProblem(t, http.StatusNotFound, "source_id", "merged")
	z := s.createCustomer(map[string]any{"email": "rz-" + randomSuffix() + "@example.com"})
	merge(z.ID, a.ID).expectStatus(t, http.StatusOK)
	var p struct {
		MergedInto string `json:"merged_into"`
	}
	r := request(t, s, http.MethodGet, "/v1/customers/"+c.ID, nil, nil)
	r.expectProblem(t, http.StatusNotFound, "id", "merged")
	if r.decode(t, &p); p.MergedInto != z.ID {
		t.Errorf("a customer merged into one merged in its turn names %s, want the last target %s", p.MergedInto, z.ID)
	}
}

// Concurrent merges of overlapping pairs (a cycle of three, again and
// again) never deadlock, never fail on the server's side and never lose an
// order: each merge runs or is refused, and every order keeps an owner.
func TestConcurrentOverlappingMergesLoseNothing(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	for round := range 8 {
		var ids []string
		for i := range 3 {
			c := s.createCustomer(map[string]any{"email": fmt.Sprintf("cm-%d-%d-%s@example.com", round, i, randomSuffix())})
			s.recordOrder(orderBody(&c.ID, time.Now()))
			ids = append(ids, c.ID)
		}
		var wg sync.WaitGroup
		statuses := make([]int, 3)
		for i := range 3 {
			wg.Go(func() {
				r := request(t, s, http.MethodPost, "/v1/customers/"+ids[i]+"/merge", map[string]any{"source_id": ids[(i+1)%3]}, nil)
				statuses[i] = r.status
			})
		}
		wg.Wait()
		ok := 0
		for _, st := range statuses {
			switch st {
			case http.StatusOK:
				ok++
			case http.StatusConflict, http.StatusNotFound:
			default:
				t.Errorf("round %d: a merge answered %d", round, st)
			}
		}
		if ok == 0 {
			t.Errorf("round %d: no merge ran (%v)", round, statuses)
		}
		var owned, alive int
		if err := s.pool.QueryRow(context.Background(), `
			SELECT count(*) FILTER (WHERE o.customer_id IS NOT NULL), count(DISTINCT o.customer_id)
			FROM orders o WHERE o.email LIKE 'buyer-%' AND o.customer_id = ANY($1::uuid[]) OR o.id IN (
				SELECT o2.id FROM orders o2 JOIN merged_customers m ON m.target_id = o2.customer_id WHERE m.merged_id = ANY($1::uuid[]))`,
			ids).Scan(&owned, &alive); err != nil {
			t.Fatal(err)
		}
		if owned != 3 || alive != 3-ok {
			t.Errorf("round %d: %d of 3 orders owned, by %d customers, after %d merges (%v)", round, owned, alive, ok, statuses)
		}
	}
}

// The merge is a bus command too; a command addressed to the merged id is
// rejected saying where it went.
func TestMergeAsABusCommand(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	target := s.createCustomer(map[string]any{"email": "bt-" + randomSuffix() + "@example.com"})
	source := s.createCustomer(map[string]any{"email": "bs-" + randomSuffix() + "@example.com", "note": "from the shop"})
	var merged customerJSON
	s.commandReply(s.command("", events.CmdCustomerMerge, map[string]any{
		"id": target.ID, "source_id": source.ID, "override": map[string]string{"note": source.ID},
	}), &merged)
	var got customerJSON
	s.do(http.MethodGet, "/v1/customers/"+target.ID, nil, &got)
	if got.Note != "from the shop" || got.Version != merged.Version {
		t.Errorf("after the merge command GET reads %+v, the reply was %+v", got, merged)
	}
	id := s.command("", events.CmdCustomerUpdate, map[string]any{"id": source.ID, "note": "too late"})
	s.waitCommands(2)
	var reply struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
		MergedInto string `json:"merged_into"`
	}
	var raw []byte
	if err := s.pool.QueryRow(context.Background(), `SELECT reply FROM processed_commands WHERE command_id = $1 AND outcome = 'rejected'`, id).Scan(&raw); err != nil {
		t.Fatalf("the update of the merged id was not rejected: %v", err)
	}
	if err := json.Unmarshal(raw, &reply); err != nil || len(reply.Errors) != 1 || reply.Errors[0].Code != "merged" || reply.MergedInto != target.ID {
		t.Errorf("the rejection of a command to the merged id: %s", raw)
	}
	s.waitRelayed()
	for _, e := range s.readStreamEvents(events.EventsStream) {
		if e.Type() == events.CommandRejected && ext(e, events.ExtCausationID) == id {
			var d events.CommandRejectedData
			if err := json.Unmarshal(e.Data(), &d); err != nil || d.Error.MergedInto == nil || d.Error.MergedInto.String() != target.ID {
				t.Errorf("command.rejected of the merged id: %s", e.Data())
			}
			return
		}
	}
	t.Error("no command.rejected for the command to the merged id")
}

// The source's email, when the target did not take it, still leads to the
// target: a login with it (and the source's password, which the target
// took) reaches the target, and a guest order placed with it later is
// linked to the target.
func TestAMergedEmailLeadsToTheTarget(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runLinker()
	target := s.createCustomer(map[string]any{"email": "keep-" + randomSuffix() + "@example.com", "first_name": "Kim"})
	src := s.newShopper() // verified, with a password
	request(t, s, http.MethodPost, "/v1/customers/"+target.ID+"/merge", map[string]any{"source_id": src.ID}, nil).expectStatus(t, http.StatusOK)

	if sess := s.login(src.Email, src.Password); sess.Customer.ID != target.ID {
		t.Errorf("a login with the merged email reaches %s, want the target", sess.Customer.ID)
	}
	later := orderBody(nil, time.Now())
	later["email"] = src.Email
	o := s.recordOrder(later)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var got orderJSON
		var page struct{ Orders []orderJSON }
		s.do(http.MethodGet, "/v1/customers/"+target.ID+"/orders", nil, &page)
		for _, x := range page.Orders {
			if x.ID == o.ID {
				got = x
			}
		}
		if got.ID != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the guest order placed with the merged email was not linked to the target")
		}
	}
}
