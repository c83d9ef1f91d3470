// Package smtptest runs a real SMTP server (emersion/go-smtp) inside a test,
// on 127.0.0.1, and keeps the mails it receives, decoded, so tests can check
// what was sent and follow the link in it. The server can go down and come
// back on the same port, and refuse mail for chosen recipients, to show what
// the sender does when SMTP fails.
package smtptest

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Server is a real SMTP server on 127.0.0.1 that keeps what it receives.
type Server struct {
	t    testing.TB
	addr string

	mu       sync.Mutex
	srv      *smtp.Server
	received []Mail
	refuse   map[string]bool // recipients whose mail is refused at DATA
}

// Mail is one accepted message, decoded.
type Mail struct {
	From, Rcpt      string // envelope
	Header          mail.Header
	Subject         string // decoded from its MIME encoded-words
	Text, HTML      string // the multipart/alternative parts, transfer-decoded
	MessageIDHeader string
}

// New starts a server on a free port and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, refuse: map[string]bool{}}
	s.start("127.0.0.1:0")
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's address as an smtp:// URL.
func (s *Server) URL() string { return "smtp://" + s.addr }

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

func (s *Server) start(addr string) {
	s.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatalf("smtp server: %v", err)
	}
	s.addr = ln.Addr().String()
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // ends with Close
}

// Stop takes the server down: connections to its port are refused.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close() //nolint:errcheck
	}
}

// Restart brings the server back on the same port.
func (s *Server) Restart() { s.start(s.addr) }

// RefuseFor makes the server refuse mail to rcpt (554 at DATA), a permanent
// failure the sender cannot retry its way out of.
func (s *Server) RefuseFor(rcpt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse[rcpt] = true
}

// Mails returns the mails accepted so far, in the order they arrived.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.received...)
}

// WaitMails waits until n mails arrived and returns them (all of them, which
// may be more than n). It fails the test if they have not arrived after 10s.
func (s *Server) WaitMails(n int) []Mail {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := s.Mails(); len(m) >= n {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("smtp server: %d mails after 10s, want %d", len(s.Mails()), n)
	return nil
}

type session struct {
	s          *Server
	from, rcpt string
}

func (x *session) Reset()        { x.from, x.rcpt = "", "" }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}

// Rcpt accepts one recipient per message: the notifier sends each email to
// one customer, so a second recipient is a bug worth failing on.
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if x.rcpt != "" {
		return errors.New("one recipient per message expected")
	}
	x.rcpt = to
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	refused := x.s.refuse[x.rcpt]
	x.s.mu.Unlock()
	if refused {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "no mail for " + x.rcpt}
	}
	m, err := ParseMail(raw)
	if err != nil {
		// Errorf, not Fatalf: this runs on the server's goroutine.
		x.s.t.Errorf("smtp server: unreadable mail: %v\n%s", err, raw)
		return err
	}
	m.From, m.Rcpt = x.from, x.rcpt
	x.s.mu.Lock()
	x.s.received = append(x.s.received, m)
	x.s.mu.Unlock()
	return nil
}

// ParseMail decodes a multipart/alternative email into its text and HTML. It
// also reads the .eml files the notifier writes instead of sending.
func ParseMail(raw []byte) (Mail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Mail{}, err
	}
	var m Mail
	m.Header = msg.Header
	if m.Subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return m, err
	}
	m.MessageIDHeader = msg.Header.Get("Message-Id")
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		return m, errors.New("not multipart/alternative: " + mediaType)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return m, err
		}
		var body io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			return m, err
		}
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			m.Text = string(b)
		case "text/html":
			m.HTML = string(b)
		}
	}
}

// Link returns the first http(s) URL in the mail's text part, failing the
// test if there is none. The notifier's emails carry one link, the
// notification's redirect_url with the customer's email and token added as
// query parameters, so m.Link(t).Query().Get("token") is what a customer
// would click through with. The text part is used rather than the HTML so no
// entities (&amp;) need undoing.
func (m Mail) Link(t testing.TB) *url.URL {
	t.Helper()
	i := -1
	for _, scheme := range []string{"https://", "http://"} {
		if j := strings.Index(m.Text, scheme); j >= 0 && (i < 0 || j < i) {
			i = j
		}
	}
	if i < 0 {
		t.Fatalf("smtptest: no link in the text of the mail to %s:\n%s", m.Rcpt, m.Text)
	}
	raw := m.Text[i:]
	// The link ends at white space (the templates put it on a line of its
	// own) or at characters that cannot be in a URL but often enclose one.
	if j := strings.IndexAny(raw, " \t\r\n\"'<>"); j >= 0 {
		raw = raw[:j]
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("smtptest: link in the mail to %s: %v", m.Rcpt, err)
	}
	return u
}
