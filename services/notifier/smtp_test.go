package notifier

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpServer is a real SMTP server (emersion/go-smtp) on 127.0.0.1 that keeps
// what it receives. It can go down and come back on the same port, and
// refuse mail for chosen recipients.
type smtpServer struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	srv      *smtp.Server
	received []receivedMail
	refuse   map[string]bool // recipients whose mail is refused at DATA
}

// receivedMail is one accepted message, decoded.
type receivedMail struct {
	From, Rcpt      string
	Header          mail.Header
	Subject         string
	Text, HTML      string
	MessageIDHeader string
}

func newSMTPServer(t *testing.T) *smtpServer {
	t.Helper()
	s := &smtpServer{t: t, refuse: map[string]bool{}}
	s.start("127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

func (s *smtpServer) URL() string { return "smtp://" + s.addr }

func (s *smtpServer) start(addr string) {
	s.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatalf("smtp server: %v", err)
	}
	s.addr = ln.Addr().String()
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{s: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // ends with Close
}

// stop takes the server down: connections to its port are refused.
func (s *smtpServer) stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close() //nolint:errcheck
	}
}

// restart brings the server back on the same port.
func (s *smtpServer) restart() { s.start(s.addr) }

func (s *smtpServer) refuseFor(rcpt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse[rcpt] = true
}

func (s *smtpServer) mails() []receivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receivedMail(nil), s.received...)
}

// waitMails waits until n mails arrived and returns them.
func (s *smtpServer) waitMails(n int) []receivedMail {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := s.mails(); len(m) >= n {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("smtp server: %d mails after 10s, want %d", len(s.mails()), n)
	return nil
}

type smtpSession struct {
	s          *smtpServer
	from, rcpt string
}

func (x *smtpSession) Reset()        { x.from, x.rcpt = "", "" }
func (x *smtpSession) Logout() error { return nil }
func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}

func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if x.rcpt != "" {
		return errors.New("one recipient per message expected")
	}
	x.rcpt = to
	return nil
}

func (x *smtpSession) Data(r io.Reader) error {
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
	m, err := parseMail(raw)
	if err != nil {
		x.s.t.Errorf("smtp server: unreadable mail: %v\n%s", err, raw)
		return err
	}
	m.From, m.Rcpt = x.from, x.rcpt
	x.s.mu.Lock()
	x.s.received = append(x.s.received, m)
	x.s.mu.Unlock()
	return nil
}

// parseMail decodes a multipart/alternative email into its text and HTML.
func parseMail(raw []byte) (receivedMail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return receivedMail{}, err
	}
	var m receivedMail
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
