// Package smtptest runs a real SMTP server (emersion/go-smtp) inside a test,
// on 127.0.0.1, and keeps the mails it receives, decoded, so tests can check
// what was sent and follow the link in it. The server can go down and come
// back on the same port, and refuse mail for chosen recipients, to show what
// the sender does when SMTP fails.
//
// With [Options] it offers STARTTLS (a self-signed certificate for 127.0.0.1
// made for the test, see [Server.CAFile]) and requires AUTH PLAIN, and it
// records what the client sent before TLS started ([Server.ClearText]), so a
// test can prove that credentials never crossed the wire in clear.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Server is a real SMTP server on 127.0.0.1 that keeps what it receives.
type Server struct {
	t      testing.TB
	addr   string
	opts   Options
	tls    *tls.Config // nil without STARTTLS
	caFile string

	mu       sync.Mutex
	srv      *smtp.Server
	ln       net.Listener // srv's; Stop closes it, as srv.Close misses one Serve has not registered yet
	received []Mail
	refuse   map[string]bool // recipients whose mail is refused at DATA
	auths    []AuthAttempt
	conns    []*wireConn
}

// Options make the server stricter than the default (no TLS, no AUTH).
type Options struct {
	// STARTTLS offers STARTTLS with a self-signed certificate for 127.0.0.1
	// made for this server; CAFile is a PEM file a client can trust it with.
	STARTTLS bool
	// Username and Password, when Username is set, make the server offer
	// AUTH PLAIN and refuse mail from a session that has not authenticated
	// with them. AUTH is offered and accepted only on a TLS connection
	// (go-smtp's AllowInsecureAuth is false) unless InsecureAuth is set.
	Username, Password string
	// InsecureAuth offers and accepts AUTH on a connection that is not
	// encrypted too: a badly configured server, to show a client does not
	// hand it a password in clear.
	InsecureAuth bool
}

// Mail is one accepted message, decoded.
type Mail struct {
	From, Rcpt      string // envelope
	Header          mail.Header
	Subject         string // decoded from its MIME encoded-words
	Text, HTML      string // the multipart/alternative parts, transfer-decoded
	MessageIDHeader string
	// TLS reports whether the message came over an encrypted connection;
	// AuthUser is who the session authenticated as, "" without AUTH.
	TLS      bool
	AuthUser string
}

// AuthAttempt is one AUTH exchange that reached the server's authenticator:
// the username the client sent, whether the connection was encrypted, and
// whether the credentials were right.
type AuthAttempt struct {
	Username string
	TLS      bool
	OK       bool
}

// New starts a server on a free port and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	return NewWithOptions(t, Options{})
}

// NewWithOptions starts a server with STARTTLS and AUTH as opts say, on a
// free port, and stops it when the test ends.
func NewWithOptions(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{t: t, opts: opts, refuse: map[string]bool{}}
	if opts.STARTTLS {
		s.tls, s.caFile = selfSigned(t)
	}
	s.start("127.0.0.1:0")
	t.Cleanup(s.Stop)
	return s
}

// CAFile is a PEM file holding the certificate the server presents after
// STARTTLS (self-signed, so it is its own CA); "" without STARTTLS.
func (s *Server) CAFile() string { return s.caFile }

// selfSigned makes a certificate for 127.0.0.1 (and localhost) that signs
// itself, valid for an hour around now, and writes it to a PEM file.
func selfSigned(t testing.TB) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("smtp server: key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("smtp server: serial: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("smtp server: certificate: %v", err)
	}
	file := filepath.Join(t.TempDir(), "smtptest-ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatalf("smtp server: %v", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, file
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
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{s: s, conn: c}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	srv.TLSConfig = s.tls
	srv.AllowInsecureAuth = s.opts.InsecureAuth
	s.mu.Lock()
	s.srv, s.ln = srv, ln
	s.mu.Unlock()
	go srv.Serve(wireListener{ln, s}) //nolint:errcheck // ends with Close
}

// Stop takes the server down: connections to its port are refused.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close() //nolint:errcheck
		ln.Close()  //nolint:errcheck // closed already unless Serve had not started
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

// Auths returns the AUTH exchanges that reached the server's authenticator
// so far. An AUTH the server refuses before that (on a connection without
// TLS) is not among them; ClearText shows whether one was sent.
func (s *Server) Auths() []AuthAttempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]AuthAttempt(nil), s.auths...)
}

// ClearText returns, per connection so far, what the client sent before TLS
// started: everything it sent when the connection never turned to TLS.
// Whatever it sent after STARTTLS is encrypted and not included.
func (s *Server) ClearText() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.conns))
	for i, c := range s.conns {
		out[i] = c.clear.String()
	}
	return out
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
	conn       *smtp.Conn
	authUser   string // set once AUTH succeeded
	from, rcpt string
}

var _ smtp.AuthSession = (*session)(nil)

func (x *session) Reset()        { x.from, x.rcpt = "", "" }
func (x *session) Logout() error { return nil }

func (x *session) isTLS() bool {
	_, ok := x.conn.TLSConnectionState()
	return ok
}

// AuthMechanisms offers PLAIN when the server has a user; go-smtp leaves
// AUTH out of EHLO before TLS unless AllowInsecureAuth.
func (x *session) AuthMechanisms() []string {
	if x.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *session) Auth(mech string) (sasl.Server, error) {
	if x.s.opts.Username == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		ok := (identity == "" || identity == username) &&
			username == x.s.opts.Username && password == x.s.opts.Password
		x.s.mu.Lock()
		x.s.auths = append(x.s.auths, AuthAttempt{Username: username, TLS: x.isTLS(), OK: ok})
		x.s.mu.Unlock()
		if !ok {
			return smtp.ErrAuthFailed
		}
		x.authUser = username
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.opts.Username != "" && x.authUser == "" {
		return smtp.ErrAuthRequired
	}
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
	m.TLS, m.AuthUser = x.isTLS(), x.authUser
	x.s.mu.Lock()
	x.s.received = append(x.s.received, m)
	x.s.mu.Unlock()
	return nil
}

// wireListener hands go-smtp connections that record what the client sends
// in clear.
type wireListener struct {
	net.Listener
	s *Server
}

func (l wireListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	w := &wireConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.conns = append(l.s.conns, w)
	l.s.mu.Unlock()
	return w, nil
}

// wireConn is the raw connection under go-smtp (and under its TLS once the
// client sent STARTTLS). It keeps the bytes the client sent until the server
// answered STARTTLS with 220; after that the client speaks TLS.
type wireConn struct {
	net.Conn
	s         *Server
	clear     bytes.Buffer // guarded by s.mu
	encrypted bool         // guarded by s.mu
}

func (c *wireConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.s.mu.Lock()
	if !c.encrypted {
		c.clear.Write(p[:n])
	}
	c.s.mu.Unlock()
	return n, err
}

func (c *wireConn) Write(p []byte) (int, error) {
	c.s.mu.Lock()
	// go-smtp reads the whole STARTTLS line before it answers, and the
	// client starts its TLS handshake only after the 220.
	if !c.encrypted && bytes.HasPrefix(p, []byte("220 ")) &&
		bytes.HasSuffix(bytes.ToUpper(c.clear.Bytes()), []byte("STARTTLS\r\n")) {
		c.encrypted = true
	}
	c.s.mu.Unlock()
	return c.Conn.Write(p)
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
