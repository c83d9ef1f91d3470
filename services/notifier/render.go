package notifier

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/customerbus/customerbus/events"
)

// Each notification type has, per language, a text template (whose "subject"
// block is the email's subject) and an HTML template:
// templates/<lang>/<type>.txt and templates/<lang>/<type>.html.
//
//go:embed templates
var templateFS embed.FS

// defaultLanguage has a template pair for every notification type; other
// languages may cover only some, and fall back to it.
const defaultLanguage = "en"

// languages that have templates.
var languages = []string{"en", "de"}

// email is a rendered notification.
type email struct {
	To, Subject, Text, HTML string
}

// templateData is what the templates see.
type templateData struct {
	FirstName, LastName, Email, Channel string
	// Link is the email's link: redirect_url with email and token (empty
	// for a notification without a token).
	Link      string
	ExpiresAt time.Time
	// Order notifications: the order's number, and the links that accept
	// or decline its transfer (Link with action=accept|decline).
	OrderNumber             string
	AcceptLink, DeclineLink string
	// ProviderName is the identity provider a customer.identity_linked
	// notice names.
	ProviderName string
}

type templatePair struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// renderer renders notifications from the embedded templates, parsed once.
type renderer struct {
	pairs map[string]templatePair // key: lang + "/" + type
}

func newRenderer() (*renderer, error) {
	r := &renderer{pairs: map[string]templatePair{}}
	for _, lang := range languages {
		for _, typ := range events.NotificationTypes {
			base := "templates/" + lang + "/" + typ
			if _, err := fs.Stat(templateFS, base+".txt"); errors.Is(err, fs.ErrNotExist) && lang != defaultLanguage {
				continue // not translated: the default language's is used
			}
			text, err := texttemplate.ParseFS(templateFS, base+".txt")
			if err != nil {
				return nil, fmt.Errorf("notifier: template %s.txt: %w", base, err)
			}
			if text.Lookup("subject") == nil {
				return nil, fmt.Errorf("notifier: template %s.txt has no subject block", base)
			}
			html, err := htmltemplate.ParseFS(templateFS, base+".html")
			if err != nil {
				return nil, fmt.Errorf("notifier: template %s.html: %w", base, err)
			}
			r.pairs[lang+"/"+typ] = templatePair{text: text.Option("missingkey=error"), html: html.Option("missingkey=error")}
		}
	}
	return r, nil
}

// language picks the templates' language from a language code like "de",
// "de-AT" or "de_DE"; anything without templates gets the default.
func (r *renderer) language(code, eventType string) string {
	base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(code)), "-")
	base, _, _ = strings.Cut(base, "_")
	if _, ok := r.pairs[base+"/"+eventType]; ok {
		return base
	}
	return defaultLanguage
}

// render builds the email for a notification event's data.
func (r *renderer) render(eventType string, d events.NotificationData) (email, error) {
	data := templateData{
		FirstName: d.FirstName, LastName: d.LastName, Email: d.Email, Channel: d.Channel, ExpiresAt: d.ExpiresAt.UTC(),
	}
	if d.Token != "" {
		var extra url.Values
		if d.Order != nil {
			extra = url.Values{"order_id": {d.Order.ID.String()}}
		}
		var err error
		if data.Link, err = Link(d.RedirectURL, d.Email, d.Token, extra); err != nil {
			return email{}, err
		}
		if d.Order != nil {
			data.AcceptLink, _ = Link(data.Link, d.Email, d.Token, url.Values{"action": {"accept"}})
			data.DeclineLink, _ = Link(data.Link, d.Email, d.Token, url.Values{"action": {"decline"}})
		}
	}
	if d.Order != nil {
		data.OrderNumber = d.Order.Number
	}
	if d.Identity != nil {
		data.ProviderName = d.Identity.DisplayName
		if data.ProviderName == "" {
			data.ProviderName = d.Identity.Provider
		}
	}
	pair, ok := r.pairs[r.language(d.LanguageCode, eventType)+"/"+eventType]
	if !ok {
		return email{}, fmt.Errorf("notifier: no template for %s", eventType)
	}
	var subject, text, html bytes.Buffer
	if err := pair.text.ExecuteTemplate(&subject, "subject", data); err != nil {
		return email{}, fmt.Errorf("notifier: render %s subject: %w", eventType, err)
	}
	if err := pair.text.Execute(&text, data); err != nil {
		return email{}, fmt.Errorf("notifier: render %s text: %w", eventType, err)
	}
	if err := pair.html.Execute(&html, data); err != nil {
		return email{}, fmt.Errorf("notifier: render %s html: %w", eventType, err)
	}
	return email{
		To:      d.Email,
		Subject: strings.Join(strings.Fields(subject.String()), " "), // one line, whatever the template's layout
		Text:    strings.TrimSpace(text.String()) + "\n",
		HTML:    html.String(),
	}, nil
}

// Link is the URL an email points to: redirectURL, which must be an absolute
// http(s) URL, with the email, token and extra added as query parameters
// (its own query is kept).
func Link(redirectURL, email, token string, extra url.Values) (string, error) {
	u, err := url.Parse(redirectURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("%w: redirect_url %q is not an absolute http(s) URL", errInvalid, redirectURL)
	}
	q := u.Query()
	q.Set("email", email)
	q.Set("token", token)
	for k, v := range extra {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
