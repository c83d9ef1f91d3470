package notifier

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// FuzzRender: a notification's data comes from a customer's input (names,
// the storefront's redirect_url, the language); whatever it is, rendering
// does not panic, refuses only a redirect_url that is not an absolute
// http(s) URL, writes a subject of one line (no header injection), and the
// link leads to the redirect's host with the email and token it carries.
func FuzzRender(f *testing.F) {
	for i := range events.NotificationTypes {
		f.Add(uint8(i), "ann@example.com", "Ann", "Lee", "de-AT", "web", "https://shop.example.com/confirm?lang=de#top", "tok/1=", "R-100")
	}
	f.Add(uint8(0), "a+b@example.com", "<script>", "\r\nBcc: x@evil.example", "", "", "http://localhost:3000/c?token=old&email=old", "t", "")
	f.Add(uint8(6), "ann@example.com", "{{.Email}}", "", "xx_YY", "pos", "https://%zz", "t", "R\n1")
	f.Add(uint8(1), "ann@example.com", "", "", "en", "web", "javascript:alert(1)", "t", "")
	r, err := newRenderer()
	if err != nil {
		f.Fatal(err)
	}
	order := &events.NotificationOrder{ID: uuid.MustParse("0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b"), TransferID: uuid.MustParse("0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0c")}
	f.Fuzz(func(t *testing.T, typ uint8, email, first, last, lang, channel, redirect, token, number string) {
		eventType := events.NotificationTypes[int(typ)%len(events.NotificationTypes)]
		d := events.NotificationData{
			Email: email, FirstName: first, LastName: last, LanguageCode: lang, Channel: channel,
			RedirectURL: redirect, Token: token, ExpiresAt: time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC),
		}
		if strings.HasPrefix(eventType, "order.") {
			o := *order
			o.Number = number
			d.Order = &o
		}
		em, err := r.render(eventType, d)
		if err != nil {
			if !errors.Is(err, errInvalid) || token == "" {
				t.Fatalf("render: %v", err)
			}
			return
		}
		if strings.ContainsAny(em.Subject, "\r\n") || em.To != email {
			t.Fatalf("subject %q to %q", em.Subject, em.To)
		}
		if token == "" {
			return
		}
		link, err := Link(redirect, email, token, nil)
		if err != nil {
			t.Fatalf("the email rendered, but its link fails: %v", err)
		}
		u, err := url.Parse(link)
		want, _ := url.Parse(redirect)
		if err != nil || u.Scheme != want.Scheme || u.Host != want.Host || u.Query().Get("email") != email || u.Query().Get("token") != token {
			t.Fatalf("Link(%q) = %q (%v): not the redirect's host with the email and token", redirect, link, err)
		}
	})
}
