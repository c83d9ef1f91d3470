package console

import (
	"net/http"
	"net/url"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/listquery"
	"github.com/customerbus/customerbus/services/customers/internal/order"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// ordersShown is how many of a customer's orders a page of theirs lists.
const ordersShown = 20

// customerOrder is an order on the customer's page, with its pending
// transfer request and whom that is to.
type customerOrder struct {
	order.Order
	Transfer *order.Transfer
	To       customer.Customer
}

// customerOrders reads a page of the customer's orders, newest first, and
// their pending transfers; next is the cursor of the older ones.
func (c *Console) customerOrders(r *http.Request, id uuid.UUID, limit int, cursor string) (orders []customerOrder, next string, err error) {
	page, err := c.Orders.ListOrders(r.Context(), id, limit, cursor)
	if err != nil {
		return nil, "", err
	}
	ids := make([]uuid.UUID, len(page.Orders))
	for i, o := range page.Orders {
		ids[i] = o.ID
	}
	pending, err := c.Orders.PendingTransfers(r.Context(), ids)
	if err != nil {
		return nil, "", err
	}
	orders = make([]customerOrder, len(page.Orders))
	for i, o := range page.Orders {
		orders[i].Order = o
		if t, ok := pending[o.ID]; ok {
			orders[i].Transfer = &t
			if orders[i].To, err = c.Customers.Get(r.Context(), t.ToCustomerID); err != nil {
				return nil, "", err
			}
		}
	}
	return orders, page.NextCursor, nil
}

// transferPage is the form choosing an order's new owner.
type transferPage struct {
	Customer customer.Customer
	Order    customerOrder
	// Matches are the registered customers the search found.
	Matches  []customer.Customer
	Searched bool
}

// orderOf finds the order among the customer's, with its pending transfer:
// the path names both, and the page is the customer's.
func (c *Console) orderOf(r *http.Request) (customer.Customer, customerOrder, error) {
	id, err := pathUUID(r, "id")
	if err != nil {
		return customer.Customer{}, customerOrder{}, err
	}
	oid, err := uuid.Parse(r.PathValue("oid"))
	if err != nil {
		return customer.Customer{}, customerOrder{}, order.ErrOrderNotFound
	}
	cu, err := c.Customers.Get(r.Context(), id)
	if err != nil {
		return customer.Customer{}, customerOrder{}, err
	}
	// The order may be on any page of the customer's.
	for cursor := ""; ; {
		orders, next, err := c.customerOrders(r, id, customer.MaxLimit, cursor)
		if err != nil {
			return customer.Customer{}, customerOrder{}, err
		}
		for _, o := range orders {
			if o.ID == oid {
				return cu, o, nil
			}
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	return customer.Customer{}, customerOrder{}, order.ErrOrderNotFound
}

// needs refuses a staff user lacking a second permission: the transfer
// pages are the API's MANAGE_ORDERS routes, and choosing the new owner
// reads customers, which is MANAGE_USERS.
func needs(p auth.Principal, perm string) error {
	if p.Has(perm) {
		return nil
	}
	return problem.Input(http.StatusForbidden, "", problem.CodeForbidden, "you need the %s permission for this page", perm)
}

func (c *Console) transferForm(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return c.transferPage(w, r, p, http.StatusOK, newForm(r.URL.Query()))
}

// transferPage shows the form, with the registered customers matching the
// search (q), the API's list search.
func (c *Console) transferPage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form) error {
	if err := needs(p, auth.ManageUsers); err != nil {
		return err
	}
	cu, o, err := c.orderOf(r)
	if err != nil {
		return err
	}
	data := transferPage{Customer: cu, Order: o}
	if q := f.Get("q"); q != "" {
		in, err := listquery.Customers(url.Values{"q": {q}, "has_account": {"true"}})
		if err != nil {
			return err
		}
		in.Limit, data.Searched = 10, true
		found, err := c.Customers.List(r.Context(), in)
		if err != nil {
			return err
		}
		for _, m := range found.Customers {
			if m.ID != cu.ID {
				data.Matches = append(data.Matches, m)
			}
		}
	}
	c.render(w, r, status, "transfer", view{Title: "Transfer order " + o.Number, Nav: "customers", Staff: p, Form: f, Data: data})
	return nil
}

// requestTransfer asks the order's owner to approve the move to the
// chosen customer, or the one with the typed email.
func (c *Console) requestTransfer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := needs(p, auth.ManageUsers); err != nil {
		return err
	}
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	cu, o, err := c.orderOf(r)
	if err != nil {
		return err
	}
	to := f.Get("customer_id")
	if email := f.Get("email"); to == "" && email != "" {
		in, err := listquery.Customers(url.Values{"email": {email}})
		if err == nil {
			var found customer.Page
			if found, err = c.Customers.List(r.Context(), in); err == nil && len(found.Customers) == 1 {
				to = found.Customers[0].ID.String()
			}
		}
		if to == "" {
			f.Errors["email"] = "No customer has this email."
			f.Message = "Please correct the fields marked below."
			return c.transferPage(w, r, p, http.StatusUnprocessableEntity, f)
		}
	}
	if to == "" {
		f.Message = "Choose the new owner: search for them, or type their email."
		return c.transferPage(w, r, p, http.StatusUnprocessableEntity, f)
	}
	in := order.TransferInput{CustomerID: to, EmailLink: customer.EmailLink{RedirectURL: c.Settings.StorefrontURL + "/order-transfer", Channel: c.Settings.Channel}}
	if _, err := c.Orders.RequestTransfer(r.Context(), origin(p), o.ID, in); err != nil {
		status, err := f.failed(err, "customer_id")
		if err != nil {
			return err
		}
		// The new owner's error goes beside the input that named them.
		if e := f.Errors["customer_id"]; e != "" && f.Get("email") != "" {
			f.Errors["email"] = e
		}
		return c.transferPage(w, r, p, status, f)
	}
	return done(w, r, customerPath(cu.ID)+"#orders", "Transfer of order "+o.Number+" requested: "+cu.Email+" was emailed to approve it.")
}

func (c *Console) cancelTransfer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cu, o, err := c.orderOf(r)
	if err != nil {
		return err
	}
	if _, err := c.Orders.CancelTransfer(r.Context(), origin(p), o.ID); err != nil {
		return err
	}
	return done(w, r, customerPath(cu.ID)+"#orders", "Transfer of order "+o.Number+" cancelled.")
}

// changeGroups adds the customer to a group or takes them out, through the
// API's change of a group's members.
func (c *Console) changeGroups(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, f, err := postedTo(r)
	if err != nil {
		return err
	}
	gid, err := uuid.Parse(f.Get("group_id"))
	if err != nil {
		return customer.FieldErr("group_id", customer.CodeInvalid, "choose a group")
	}
	in, msg := customer.MembersInput{Add: []string{id.String()}}, "Added to the group "
	if f.Get("action") == "remove" {
		in, msg = customer.MembersInput{Remove: []string{id.String()}}, "Removed from the group "
	}
	change, err := c.Customers.ChangeMembers(r.Context(), origin(p), gid, in)
	if err != nil {
		return err
	}
	return done(w, r, customerPath(id)+"#groups", msg+change.Group.Name+".")
}
