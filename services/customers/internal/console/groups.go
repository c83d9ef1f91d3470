package console

import (
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

const groupsPath = Prefix + "/groups"

func (c *Console) listGroups(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return c.groupsPage(w, r, p, http.StatusOK, newForm(nil))
}

// groupsPage lists the groups with a rename form each; a failed form (its
// "id" names the group, none for a new one) is shown again in its place.
func (c *Console) groupsPage(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, f form) error {
	groups, err := c.Customers.ListGroups(r.Context(), "", customer.MaxLimit, "")
	if err != nil {
		return err
	}
	c.render(w, r, status, "groups", view{Title: "Customer groups", Nav: "groups", Staff: p, Form: f, Data: groups})
	return nil
}

func groupInput(f form) customer.GroupInput {
	name, description := f.Get("name"), f.Get("description")
	return customer.GroupInput{Name: &name, Description: &description}
}

func (c *Console) createGroup(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	g, err := c.Customers.CreateGroup(r.Context(), origin(p), groupInput(f))
	if err != nil {
		return c.groupFailed(w, r, p, f, err)
	}
	return done(w, r, groupsPath, "Group "+g.Name+" created.")
}

func (c *Console) renameGroup(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, f, err := postedGroup(r)
	if err != nil {
		return err
	}
	g, err := c.Customers.UpdateGroup(r.Context(), origin(p), id, groupInput(f))
	if err != nil {
		return c.groupFailed(w, r, p, f, err)
	}
	return done(w, r, groupsPath, "Group "+g.Name+" saved.")
}

func (c *Console) groupFailed(w http.ResponseWriter, r *http.Request, p auth.Principal, f form, err error) error {
	return showAgain(f, err, func(status int, f form) error { return c.groupsPage(w, r, p, status, f) }, "name", "description")
}

// confirmDeleteGroup asks before deleting the group.
func (c *Console) confirmDeleteGroup(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := uuid.Parse(r.PathValue("gid"))
	if err != nil {
		return customer.ErrGroupNotFound
	}
	g, err := c.Customers.GetGroup(r.Context(), id)
	if err != nil {
		return err
	}
	c.confirmPage(w, r, p, "groups", http.StatusOK, newForm(nil), confirmation{
		Title:   "Delete the group " + g.Name + "?",
		Explain: []string{fmt.Sprintf("Its %d customers stay; they are no longer in the group. This cannot be undone.", g.CustomerCount)},
		Action:  groupsPath + "/" + id.String() + "/delete", Button: "Delete group", Cancel: groupsPath,
		Crumbs: []crumb{{groupsPath, "Customer groups"}},
	})
	return nil
}

func (c *Console) deleteGroup(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, _, err := postedGroup(r)
	if err != nil {
		return err
	}
	g, err := c.Customers.GetGroup(r.Context(), id)
	if err != nil {
		return err
	}
	if err := c.Customers.DeleteGroup(r.Context(), origin(p), id); err != nil {
		return err
	}
	return done(w, r, groupsPath, "Group "+g.Name+" deleted; its customers stay.")
}

// postedGroup reads the group of the path and the form posted to it; the
// form keeps the id, so a failed rename is shown again in its row.
func postedGroup(r *http.Request) (uuid.UUID, form, error) {
	id, err := uuid.Parse(r.PathValue("gid"))
	if err != nil {
		return uuid.Nil, form{}, customer.ErrGroupNotFound
	}
	f, err := parseForm(r)
	if err == nil {
		f.Values.Set("id", id.String())
	}
	return id, f, err
}
