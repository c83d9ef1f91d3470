// Package console is the admin console at /admin: server-rendered HTML
// pages for staff, another adapter (like httpapi) over the same use cases.
// Every change it makes goes through them, with the staff user as the actor
// of its events.
//
// Sessions are cookies (HttpOnly, SameSite=Lax, Secure unless on plain
// localhost). Forms are protected from cross-site requests by
// net/http's CrossOriginProtection, which refuses every unsafe request that
// the browser marks as cross-origin (Sec-Fetch-Site, or an Origin that is
// not the host): every browser the console supports sends those headers,
// so no token needs to be threaded through each form, and a request
// without them is no browser's, hence no CSRF.
package console

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/idp"
	"github.com/customerbus/customerbus/services/customers/internal/merge"
	"github.com/customerbus/customerbus/services/customers/internal/order"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
	"github.com/customerbus/customerbus/services/customers/internal/staff"
	"github.com/customerbus/customerbus/services/customers/internal/webhook"
)

//go:embed templates static
var files embed.FS

// Settings of the console, read from the environment.
type Settings struct {
	// Where the set-password, order-transfer and consent-confirmation emails sent from the console
	// link to: the storefront's pages, and its channel.
	StorefrontURL string `env:"CONSOLE_STOREFRONT_URL" envDefault:"http://localhost:3000/account"`
	Channel       string `env:"CONSOLE_CHANNEL" envDefault:"default-channel"`
}

// Config wires a Console.
type Config struct {
	Customers *customer.Service
	Orders    *order.Service
	Merges    *merge.Service
	Webhooks  *webhook.Service
	Staff     *staff.Service
	Tokens    *auth.Tokens
	// IdentityProviders are the OpenID Connect providers customers sign
	// in with (staff configure them under Settings).
	IdentityProviders *idp.Service
	Log               *zap.Logger
	// ClientAddress names the caller, for the login limits.
	ClientAddress func(*http.Request) string
	Settings      Settings
}

// Console serves the admin console.
type Console struct {
	Config
	pages map[string]*template.Template
}

// New parses the templates; they are compiled in, so a broken one is a
// programming error the tests catch.
func New(cfg Config) *Console {
	c := &Console{Config: cfg, pages: map[string]*template.Template{}}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		c.pages[base] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", name))
	}
	return c
}

// Prefix is where the console is served.
const Prefix = "/admin"

// sessionCookie holds the staff session token.
const sessionCookie = "customerbus_staff"

// handler serves a page for a signed-in staff user.
type handler func(w http.ResponseWriter, r *http.Request, p auth.Principal) error

// Route is one console page or form.
type Route struct {
	Pattern string
	// Permission is what the staff user must hold; "" is any staff user.
	Permission string
	handle     handler
}

// Routes lists every page and form that needs a session, so tests can
// prove each refuses a user without its permission.
func (c *Console) Routes() []Route {
	users := auth.ManageUsers
	return []Route{
		{"GET /admin/{$}", "", c.home},
		{"POST /admin/logout", "", c.logout},
		{"GET /admin/customers", users, c.listCustomers},
		{"GET /admin/customers/new", users, c.newCustomer},
		{"POST /admin/customers/new", users, c.createCustomer},
		{"GET /admin/customers/{id}", users, c.showCustomer},
		{"GET /admin/customers/{id}/edit", users, c.editCustomer},
		{"POST /admin/customers/{id}/edit", users, c.updateCustomer},
		{"POST /admin/customers/{id}/active", users, c.setActive},
		{"GET /admin/customers/{id}/addresses/new", users, c.newAddress},
		{"POST /admin/customers/{id}/addresses/new", users, c.createAddress},
		{"GET /admin/customers/{id}/addresses/{aid}/edit", users, c.editAddress},
		{"POST /admin/customers/{id}/addresses/{aid}/edit", users, c.updateAddress},
		{"POST /admin/customers/{id}/addresses/{aid}/default", users, c.defaultAddress},
		{"POST /admin/customers/{id}/addresses/{aid}/delete", users, c.deleteAddress},
		{"POST /admin/customers/{id}/metadata", users, c.saveMetadata(false)},
		{"POST /admin/customers/{id}/private-metadata", users, c.saveMetadata(true)},
		{"POST /admin/customers/{id}/notes", users, c.addNote},
		{"POST /admin/customers/{id}/groups", users, c.changeGroups},
		{"GET /admin/customers/{id}/orders/{oid}/transfer", auth.ManageOrders, c.transferForm},
		{"POST /admin/customers/{id}/orders/{oid}/transfer", auth.ManageOrders, c.requestTransfer},
		{"POST /admin/customers/{id}/orders/{oid}/transfer/cancel", auth.ManageOrders, c.cancelTransfer},
		{"POST /admin/customers/{id}/consent/{channel}", users, c.setConsent},
		{"GET /admin/customers/{id}/data-export", users, c.dataExport},
		{"POST /admin/customers/{id}/duplicates/dismiss", users, c.dismissDuplicate},
		{"GET /admin/customers/{id}/identities/{iid}/remove", users, c.confirmRemoveIdentity},
		{"POST /admin/customers/{id}/identities/{iid}/remove", users, c.removeIdentity},
		{"GET /admin/customers/{id}/merge", users, c.mergeForm},
		{"POST /admin/customers/{id}/merge", users, c.mergeCustomer},
		{"GET /admin/customers/{id}/anonymize", users, c.confirmCustomer(anonymization)},
		{"POST /admin/customers/{id}/anonymize", users, c.runCustomer(anonymization)},
		{"GET /admin/customers/{id}/delete", users, c.confirmCustomer(deletion)},
		{"POST /admin/customers/{id}/delete", users, c.runCustomer(deletion)},
		{"GET /admin/groups", users, c.listGroups},
		{"POST /admin/groups", users, c.createGroup},
		{"POST /admin/groups/{gid}", users, c.renameGroup},
		{"GET /admin/groups/{gid}/delete", users, c.confirmDeleteGroup},
		{"POST /admin/groups/{gid}/delete", users, c.deleteGroup},
		{"GET /admin/settings", auth.ManageSettings, c.showSettings},
		{"POST /admin/settings", auth.ManageSettings, c.saveSettings},
		{"GET /admin/settings/identity-providers", auth.ManageSettings, c.listProviders},
		{"POST /admin/settings/identity-providers", auth.ManageSettings, c.createProvider},
		{"GET /admin/settings/identity-providers/{provider}", auth.ManageSettings, c.editProvider},
		{"POST /admin/settings/identity-providers/{provider}", auth.ManageSettings, c.updateProvider},
		{"GET /admin/settings/identity-providers/{provider}/delete", auth.ManageSettings, c.confirmDeleteProvider},
		{"POST /admin/settings/identity-providers/{provider}/delete", auth.ManageSettings, c.deleteProvider},
		{"GET /admin/settings/customer-attributes", auth.ManageSettings, c.listAttributes},
		{"POST /admin/settings/customer-attributes", auth.ManageSettings, c.defineAttribute},
		{"GET /admin/settings/customer-attributes/{key}", auth.ManageSettings, c.editAttribute},
		{"POST /admin/settings/customer-attributes/{key}", auth.ManageSettings, c.updateAttribute},
		{"GET /admin/settings/customer-attributes/{key}/delete", auth.ManageSettings, c.confirmDeleteAttribute},
		{"POST /admin/settings/customer-attributes/{key}/delete", auth.ManageSettings, c.deleteAttribute},
		{"GET /admin/webhooks", auth.ManageApps, c.listWebhooks},
		{"POST /admin/webhooks", auth.ManageApps, c.createWebhook},
		{"GET /admin/webhooks/{wid}", auth.ManageApps, c.showWebhook},
		{"POST /admin/webhooks/{wid}/active", auth.ManageApps, c.setWebhookActive()},
		{"POST /admin/webhooks/{wid}/rotate-secret", auth.ManageApps, c.rotateWebhookSecret},
		{"POST /admin/webhooks/{wid}/ping", auth.ManageApps, c.pingWebhook()},
		{"POST /admin/webhooks/{wid}/deliveries/{did}/retry", auth.ManageApps, c.retryDelivery()},
		{"GET /admin/webhooks/{wid}/delete", auth.ManageApps, c.confirmDeleteWebhook},
		{"POST /admin/webhooks/{wid}/delete", auth.ManageApps, c.deleteWebhook()},
		{"GET /admin/tokens", auth.ManageStaff, c.listTokens},
		{"POST /admin/tokens", auth.ManageStaff, c.createToken},
		{"POST /admin/tokens/{tid}/revoke", auth.ManageStaff, c.revokeToken},
		{"GET /admin/staff", auth.ManageStaff, c.listStaff},
		{"POST /admin/staff", auth.ManageStaff, c.createStaff},
		{"POST /admin/staff/{sid}/active", auth.ManageStaff, c.setStaffActive},
		{"POST /admin/staff/{sid}/groups", auth.ManageStaff, c.setStaffGroups},
	}
}

// Handler serves the console under Prefix.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err)
	}
	mux.Handle("GET /admin/static/", http.StripPrefix("/admin/static/", staticFiles(http.FileServerFS(static))))
	mux.HandleFunc("GET /admin/login", c.loginPage)
	mux.HandleFunc("POST /admin/login", c.login)
	for _, rt := range c.Routes() {
		mux.Handle(rt.Pattern, c.authenticated(rt))
	}
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, auth.Principal{}, http.StatusNotFound, "This page does not exist.")
	})
	return c.recovering(secureHeaders(http.NewCrossOriginProtection().Handler(mux)))
}

// recovering turns a panic into an error page, logged.
func (c *Console) recovering(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				c.Log.Error("console: panic", zap.String("path", r.URL.Path), zap.Any("panic", v), zap.Stack("stack"))
				c.renderError(w, r, auth.Principal{}, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// secureHeaders keeps the console's pages out of frames and caches and
// allows only its own scripts and styles.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, Prefix+"/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

func staticFiles(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// authenticated lets a request through with a live staff session holding
// the route's permission. Without a session, pages send to the login page;
// without the permission, the answer is 403.
func (c *Console) authenticated(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := c.principal(r)
		if errors.Is(err, staff.ErrInvalidSession) {
			next := url.Values{"next": {r.URL.RequestURI()}}
			if r.Method != http.MethodGet {
				next = nil
			}
			http.Redirect(w, r, Prefix+"/login?"+next.Encode(), http.StatusSeeOther)
			return
		}
		if err != nil {
			c.fail(w, r, p, err)
			return
		}
		if rt.Permission != "" && !p.Has(rt.Permission) {
			c.renderError(w, r, p, http.StatusForbidden, "You need the "+rt.Permission+" permission for this page. Ask a staff member who holds MANAGE_STAFF to add you to a group that has it.")
			return
		}
		if err := rt.handle(w, r, p); err != nil {
			c.fail(w, r, p, err)
		}
	})
}

func (c *Console) principal(r *http.Request) (auth.Principal, error) {
	cookie, err := r.Cookie(sessionCookie)
	if err != nil {
		return auth.Principal{}, staff.ErrInvalidSession
	}
	return c.Staff.Authenticate(r.Context(), cookie.Value)
}

// fail renders an error no form can show beside a field.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, p auth.Principal, err error) {
	d := problem.For(err)
	if d.Status >= 500 {
		c.Log.Error("console", zap.String("path", r.URL.Path), zap.Error(err))
		c.renderError(w, r, p, d.Status, "Something went wrong on our side. Try again in a moment.")
		return
	}
	msg := d.Detail
	if msg == "" && len(d.Errors) > 0 {
		msg = d.Errors[0].Message
	}
	if msg == "" {
		msg = d.Title
	}
	c.renderError(w, r, p, d.Status, msg)
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, msg string) {
	c.render(w, r, status, "error", view{Title: http.StatusText(status), Staff: p, Data: msg})
}

// view is what every page template gets.
type view struct {
	Title string
	Nav   string // the menu entry to mark as current
	Staff auth.Principal
	Flash string
	Form  form
	Data  any
}

// SignedIn tells the layout to show the menu.
func (v view) SignedIn() bool { return v.Staff.StaffID != uuid.Nil }

// render writes a page; a template error is a bug, logged, the page cut short.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	if v.Flash == "" {
		v.Flash = takeFlash(w, r)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := c.pages[page].Execute(w, v); err != nil {
		c.Log.Error("console: render", zap.String("page", page), zap.Error(err))
	}
}

// flashCookie carries a message to the page a form redirects to.
const flashCookie = "customerbus_flash"

// done redirects after a successful form (so that reloading does not submit
// it again) and says what was done on the next page.
func done(w http.ResponseWriter, r *http.Request, to, msg string) error {
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: Prefix, HttpOnly: true,
		Secure: secure(r), SameSite: http.SameSiteLaxMode, MaxAge: 60})
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

func takeFlash(w http.ResponseWriter, r *http.Request) string {
	cookie, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: Prefix, MaxAge: -1})
	msg, _ := url.QueryUnescape(cookie.Value)
	return msg
}

// secure tells whether cookies get the Secure attribute: always but on
// plain HTTP to this machine, where browsers would otherwise drop them in
// development.
func secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// origin is the staff user as the use cases record the actor of a change.
func origin(p auth.Principal) customer.Origin {
	return customer.Origin{Actor: p.Actor(), ActorName: p.Name}
}

func (c *Console) home(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	// The first page of the menu the staff user may open.
	to := Prefix + "/customers"
	for _, page := range []struct{ perm, path string }{
		{auth.ManageUsers, "/customers"}, {auth.ManageApps, "/webhooks"}, {auth.ManageStaff, "/staff"}, {auth.ManageSettings, "/settings"},
	} {
		if p.Has(page.perm) {
			to = Prefix + page.path
			break
		}
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := c.principal(r); err == nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", view{Title: "Log in", Form: newForm(r.URL.Query())})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		c.renderError(w, r, auth.Principal{}, http.StatusBadRequest, "The form could not be read.")
		return
	}
	f := newForm(r.PostForm)
	sess, err := c.Staff.Login(r.Context(), f.Get("email"), r.PostForm.Get("password"), c.ClientAddress(r))
	var limited *customer.RateLimitedError
	switch {
	case errors.As(err, &limited):
		w.Header().Set("Retry-After", strconv.Itoa(int(limited.RetryAfter.Seconds())+1))
		f.Message = "Too many failed logins. Try again in " + limited.RetryAfter.Round(time.Minute).String() + "."
		c.render(w, r, http.StatusTooManyRequests, "login", view{Title: "Log in", Form: f})
		return
	case errors.Is(err, customer.ErrBadCredentials):
		f.Message = "The email or the password is wrong."
		c.render(w, r, http.StatusUnauthorized, "login", view{Title: "Log in", Form: f})
		return
	case err != nil:
		c.fail(w, r, auth.Principal{}, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sess.Token, Path: Prefix, Expires: sess.ExpiresAt,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, safeNext(f.Get("next")), http.StatusSeeOther)
}

// safeNext keeps the page to go to after login within the console, so the
// login form cannot be made to send anyone elsewhere.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.IsAbs() || u.Host != "" || !strings.HasPrefix(u.Path, Prefix+"/") || strings.HasPrefix(next, "//") {
		return Prefix + "/"
	}
	return u.RequestURI()
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := c.Staff.Logout(r.Context(), p.TokenID); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode})
	return done(w, r, Prefix+"/login", "You are logged out.")
}

// pathUUID reads a UUID path segment; one that is no UUID is not found.
func pathUUID(r *http.Request, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		return uuid.Nil, customer.ErrNotFound
	}
	return id, nil
}
