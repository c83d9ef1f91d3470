package notifier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/wneessen/go-mail"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/events/tracing"
)

// ErrUnknownOutcome means the connection broke after the whole email was
// handed over but before the server said whether it accepted it: the email may
// or may not have gone out. It is retried like a refusal, so the customer may
// get a second copy (the same Message-ID, the same link) but never none.
var ErrUnknownOutcome = errors.New("notifier: delivery outcome unknown")

// sender delivers one email. It calls claim right before the email starts to
// leave, once the server is reachable, so an unreachable server never leaves a
// claim behind; when claim fails nothing is sent and its error is returned.
// already reports that an interrupted attempt had delivered the email, so
// nothing was sent this time; only a sender that can look (the file mailer)
// says so.
type sender interface {
	Send(ctx context.Context, id string, m *mail.Msg, claim func(context.Context) error) (already bool, err error)
}

// smtpSender sends over SMTP, a new connection per email.
type smtpSender struct {
	client *mail.Client
	host   string // the server's, for the send's span
	port   int
}

// newSMTPSender reads an SMTP URL: smtp://[user:pass@]host[:port] (port 25,
// STARTTLS, required unless tlsPolicy is "opportunistic") or smtps://… (TLS
// from the start, port 465). With a user it authenticates, choosing the strongest mechanism
// the server offers; PLAIN and LOGIN are used only on an encrypted connection.
// The server's certificate must verify against the system roots, plus the
// certificates in caFile when it is set (a private CA).
func newSMTPSender(rawURL string, timeout time.Duration, caFile, tlsPolicy string) (*smtpSender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("notifier: SMTP_URL: %w", err)
	}
	tlsConfig, err := smtpTLSConfig(u.Hostname(), caFile)
	if err != nil {
		return nil, err
	}
	opts := []mail.Option{mail.WithTimeout(timeout), mail.WithTLSConfig(tlsConfig)}
	port := 0
	switch u.Scheme {
	case "smtp":
		port = mail.DefaultPort
		switch tlsPolicy {
		case "", "required":
			opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
		case "opportunistic":
			opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
		default:
			return nil, fmt.Errorf("notifier: SMTP_TLS: %q is neither required nor opportunistic", tlsPolicy)
		}
	case "smtps":
		port = mail.DefaultPortSSL
		opts = append(opts, mail.WithSSL())
	default:
		return nil, fmt.Errorf("notifier: SMTP_URL: scheme must be smtp or smtps, not %q", u.Scheme)
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("notifier: SMTP_URL: port %q: %w", p, err)
		}
	}
	opts = append(opts, mail.WithPort(port))
	if user := u.User.Username(); user != "" {
		pass, _ := u.User.Password()
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(user), mail.WithPassword(pass))
	}
	client, err := mail.NewClient(u.Hostname(), opts...)
	if err != nil {
		return nil, fmt.Errorf("notifier: SMTP_URL: %w", err)
	}
	return &smtpSender{client: client, host: u.Hostname(), port: port}, nil
}

// smtpTLSConfig verifies the SMTP server's certificate for host (an IP
// address is checked against the certificate's IP addresses) against the
// system roots and the PEM certificates in caFile, if any.
func smtpTLSConfig(host, caFile string) (*tls.Config, error) {
	conf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return conf, nil // nil RootCAs: the system roots
	}
	pemCerts, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("notifier: SMTP_CA_FILE: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil { // no system roots on this platform: the file alone
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pemCerts) {
		return nil, fmt.Errorf("notifier: SMTP_CA_FILE %s: no PEM certificate in it", caFile)
	}
	conf.RootCAs = roots
	return conf, nil
}

func (s *smtpSender) Send(ctx context.Context, _ string, m *mail.Msg, claim func(context.Context) error) (_ bool, err error) {
	ctx, span := tracing.Start(ctx, "smtp send", trace.SpanKindClient, semconv.ServerAddress(s.host), semconv.ServerPort(s.port))
	defer func() { tracing.End(span, err) }()
	conn, err := s.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return false, fmt.Errorf("notifier: smtp connect: %w", err)
	}
	defer s.client.CloseWithSMTPClient(conn) //nolint:errcheck // the outcome is known by then
	if err := claim(ctx); err != nil {
		return false, err
	}
	err = s.client.SendWithSMTPClient(conn, m)
	if m.IsDelivered() {
		return false, nil // the server accepted it; a failing RSET afterwards does not matter
	}
	// Every failure before the final "." is a refusal or a broken connection
	// the server discards the transaction on; at the "." only a reply code
	// says no for sure.
	var se *mail.SendError
	if errors.As(err, &se) && se.Reason == mail.ErrSMTPDataClose && se.ErrorCode() == 0 {
		return false, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	return false, fmt.Errorf("notifier: smtp send: %w", err)
}

// dirSender writes each email as <dir>/<event id>.eml instead of sending it,
// for development (make run) where no SMTP server is configured. It writes
// each email exactly once: a file is written aside, synced and renamed into
// place, so a crash at any point leaves no file or the whole email, and an
// attempt that finds the file (one interrupted before it confirmed) writes
// nothing. Two attempts write the same email at once only when a claim is
// taken over from one still under way (an attempt that outlived
// NOTIFIER_CLAIM_TIMEOUT); the later rename then replaces the file with
// another copy of the same email. A leftover .<event id>-*.tmp is a write a crash cut short, never
// an email sent.
type dirSender struct {
	dir string
	log *zap.Logger
}

func (s dirSender) Send(ctx context.Context, id string, m *mail.Msg, claim func(context.Context) error) (bool, error) {
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return false, fmt.Errorf("notifier: mail dir: %w", err)
	}
	if err := claim(ctx); err != nil {
		return false, err
	}
	path := filepath.Join(s.dir, id+".eml")
	switch _, err := os.Lstat(path); {
	case err == nil:
		// Synced before it was renamed; the rename itself may not be yet.
		if err := syncDir(s.dir); err != nil {
			return false, fmt.Errorf("notifier: write email: %w", err)
		}
		return true, nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("notifier: write email: %w", err)
	}
	if err := writeFileAtomic(s.dir, path, "."+id+"-*.tmp", m); err != nil {
		return false, fmt.Errorf("notifier: write email: %w", err)
	}
	tracing.Logger(ctx, s.log).Info("notifier: email written", zap.String("ce_id", id), zap.String("path", path))
	return false, nil
}

// writeFileAtomic writes m to a temporary file in dir named after pattern
// (as os.CreateTemp takes it), syncs it, renames it to path and syncs dir, so
// path is either absent or whole and durable once it returns nil.
func writeFileAtomic(dir, path, pattern string, m io.WriterTo) error {
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	_, err = m.WriteTo(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	return err
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
