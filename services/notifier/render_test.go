package notifier

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

func TestLinkAddsEmailAndTokenKeepingTheQuery(t *testing.T) {
	cases := []struct {
		name, redirect, want string
		invalid              bool
	}{
		{name: "plain", redirect: "https://shop.example/confirm", want: "https://shop.example/confirm?email=a%2Bb%40example.com&token=t%2F1%3D"},
		{name: "own query kept", redirect: "https://shop.example/c?lang=de&x=1#top", want: "https://shop.example/c?email=a%2Bb%40example.com&lang=de&token=t%2F1%3D&x=1#top"},
		{name: "stale email and token replaced", redirect: "http://localhost:3000/c?token=old&email=old", want: "http://localhost:3000/c?email=a%2Bb%40example.com&token=t%2F1%3D"},
		{name: "relative", redirect: "/confirm", invalid: true},
		{name: "script", redirect: "javascript:alert(1)", invalid: true},
		{name: "garbage", redirect: "https://%zz", invalid: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Link(c.redirect, "a+b@example.com", "t/1=", nil)
			if c.invalid {
				if err == nil {
					t.Fatalf("Link(%q) = %q, want an error", c.redirect, got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("Link(%q) = %q, %v; want %q", c.redirect, got, err, c.want)
			}
		})
	}
}

func TestEveryTypeRendersInEveryLanguage(t *testing.T) {
	r, err := newRenderer()
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range languages {
		for _, typ := range events.NotificationTypes {
			t.Run(lang+"/"+typ, func(t *testing.T) {
				if got := r.language(lang, typ); got != lang {
					t.Errorf("language %s served as %s: templates missing", lang, got)
				}
				d := events.NotificationData{
					CustomerID: new(uuid.New()), Email: "ann@example.com", FirstName: "<Ann>", LanguageCode: lang,
					RedirectURL: "https://shop.example/x", Token: "secret", ExpiresAt: time.Now(),
				}
				// What each body must hold: the link with the token, for order
				// notifications the order's number, and accept and decline links
				// for a transfer's approval; a completed transfer has no token.
				want := []string{"token=secret"}
				if strings.HasPrefix(typ, "order.") {
					d.Order = &events.NotificationOrder{ID: uuid.New(), Number: "R-100", TransferID: uuid.New()}
					want = []string{"R-100", "action=accept", "action=decline", "order_id=" + d.Order.ID.String()}
				}
				if typ == events.OrderTransferCompleted {
					d.Token, want = "", []string{"R-100"}
				}
				if typ == events.CustomerIdentityLinked {
					d.Token, d.RedirectURL = "", ""
					d.Identity = &events.NotificationIdentity{Provider: "google", DisplayName: "Goo<gle>"}
					want = []string{"Goo"}
				}
				em, err := r.render(typ, d)
				if err != nil {
					t.Fatal(err)
				}
				if em.Subject == "" || strings.Contains(em.Subject, "\n") {
					t.Errorf("subject %q", em.Subject)
				}
				for _, body := range []string{em.Text, em.HTML} {
					for _, w := range want {
						if !strings.Contains(body, w) {
							t.Errorf("no %q in:\n%s", w, body)
						}
					}
				}
				if strings.Contains(em.HTML, "<Ann>") || !strings.Contains(em.HTML, "&lt;Ann&gt;") {
					t.Errorf("html does not escape the name:\n%s", em.HTML)
				}
			})
		}
	}
}
