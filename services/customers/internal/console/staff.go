package console

import (
	"net/http"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
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
		status, err := f.failed(err, "email", "password", "permissions")
		if err != nil {
			return err
		}
		return c.staffPage(w, r, p, status, f)
	}
	return done(w, r, Prefix+"/staff", "Staff user "+in.Email+" created.")
}
