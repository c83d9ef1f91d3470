package console

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/staff"
)

type staffPage struct {
	Users       []staff.User
	Groups      []staff.Group
	Permissions []string
}

func (c *Console) listStaff(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return c.staffPage(w, r, p, http.StatusOK, newForm(nil))
}

// staffPageOf shows the staff page with a failed form: the new user's, or
// (its "sid" names the user) a row's.
func (c *Console) staffPageOf(w http.ResponseWriter, r *http.Request, p auth.Principal) func(int, form) error {
	return func(status int, f form) error { return c.staffPage(w, r, p, status, f) }
}

func (c *Console) staffPage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form) error {
	users, err := c.Staff.List(r.Context())
	if err != nil {
		return err
	}
	groups, err := c.Staff.Groups(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, status, "staff", view{Title: "Staff", Nav: "staff", Staff: p, Form: f,
		Data: staffPage{Users: users, Groups: groups, Permissions: auth.StaffPermissions}})
	return nil
}

// createStaff adds a staff user to an existing group, or to a new group
// of the ticked permissions.
func (c *Console) createStaff(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	in := staff.CreateInput{Email: f.Get("email"), Name: f.Get("name"), Password: f.Values.Get("password"),
		Group: f.Get("group"), Permissions: f.Values["permissions"]}
	if _, err := c.Staff.Create(r.Context(), in); err != nil {
		f.Values.Del("password")
		return showAgain(f, err, c.staffPageOf(w, r, p), "email", "name", "password", "group", "permissions")
	}
	return done(w, r, Prefix+"/staff", "Staff user "+in.Email+" created.")
}

// setStaffActive deactivates a staff user (their sessions end, their
// logins are refused) or reactivates them.
func (c *Console) setStaffActive(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, f, err := postedStaff(r)
	if err != nil {
		return err
	}
	active := f.Get("active") == "true"
	if err := c.Staff.SetActive(r.Context(), p.StaffID, id, active); err != nil {
		return showAgain(f, err, c.staffPageOf(w, r, p), "active")
	}
	msg := "Staff user deactivated: their sessions ended and they cannot log in."
	if active {
		msg = "Staff user reactivated: they can log in again."
	}
	return done(w, r, Prefix+"/staff", msg)
}

// setStaffGroups puts a staff user in the ticked permission groups.
func (c *Console) setStaffGroups(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, f, err := postedStaff(r)
	if err != nil {
		return err
	}
	// The row shows the groups as ticked, should this fail.
	f.Values.Set("groups_sent", "true")
	var groups []uuid.UUID
	for _, v := range f.Values["groups"] {
		gid, err := uuid.Parse(v)
		if err != nil {
			return showAgain(f, customer.FieldErr("groups", customer.CodeInvalid, "choose the groups from the list"), c.staffPageOf(w, r, p), "groups")
		}
		groups = append(groups, gid)
	}
	if err := c.Staff.SetGroups(r.Context(), id, groups); err != nil {
		return showAgain(f, err, c.staffPageOf(w, r, p), "groups")
	}
	return done(w, r, Prefix+"/staff", "Groups saved: they hold the new permissions from their next request.")
}

// postedStaff reads the staff user of the path and the form posted to it;
// the form keeps the id ("sid"), so a failed one is shown again in its row.
func postedStaff(r *http.Request) (uuid.UUID, form, error) {
	id, err := uuid.Parse(r.PathValue("sid"))
	if err != nil {
		return uuid.Nil, form{}, staff.ErrNotFound
	}
	f, err := parseForm(r)
	if err == nil {
		f.Values.Set("sid", id.String())
	}
	return id, f, err
}
