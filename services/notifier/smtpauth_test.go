package notifier

import (
	"context"
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/notifier/smtptest"
)

const smtpUser = "notifier"

// withUser puts user:pass into an smtp:// URL, as SMTP_URL carries them.
func withUser(t *testing.T, rawURL, user, pass string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pass)
	return u.String()
}

// noCredentialsInClear fails the test if any connection to srv carried the
// password, in any form PLAIN or LOGIN would send it, or an AUTH command,
// before TLS started.
func noCredentialsInClear(t *testing.T, srv *smtptest.Server, pass string) {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString
	secrets := []string{pass, b64([]byte(pass)), b64([]byte("\x00" + smtpUser + "\x00" + pass))}
	clear := srv.ClearText()
	if len(clear) == 0 {
		t.Fatal("the notifier never connected")
	}
	for i, c := range clear {
		for _, line := range strings.Split(c, "\r\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], "AUTH") {
				t.Errorf("connection %d: AUTH sent before TLS: %q", i, line)
			}
		}
		for _, s := range secrets {
			if strings.Contains(c, s) {
				t.Errorf("connection %d: the password crossed the wire in clear (%q):\n%s", i, s, c)
			}
		}
	}
}

// The notifier upgrades with STARTTLS, verifies the server's certificate
// against SMTP_CA_FILE (a self-signed certificate for 127.0.0.1), and
// authenticates with the user in SMTP_URL only inside TLS.
func TestSMTPWithSTARTTLSAndAuthDeliversOverAnAuthenticatedTLSSession(t *testing.T) {
	const pass = "pass-6f1c-right"
	b := newBusWith(t, smtptest.Options{STARTTLS: true, Username: smtpUser, Password: pass}, func(c *Config) {
		c.SMTPURL = withUser(t, c.SMTPURL, smtpUser, pass)
	})
	b.run()
	data := notification("ann@example.com", "en")
	b.publish(events.CustomerVerificationRequested, data)

	m := b.smtp.WaitMails(1)[0]
	if !m.TLS || m.AuthUser != smtpUser || m.Rcpt != data.Email {
		t.Errorf("mail to %s arrived with TLS %v as user %q, want TLS as %q", m.Rcpt, m.TLS, m.AuthUser, smtpUser)
	}
	b.waitIdle()
	auths := b.smtp.Auths()
	if len(auths) != 1 || !auths[0].TLS || !auths[0].OK || auths[0].Username != smtpUser {
		t.Errorf("AUTH exchanges %+v, want one good one over TLS", auths)
	}
	for i, c := range b.smtp.ClearText() {
		if !strings.Contains(strings.ToUpper(c), "STARTTLS") {
			t.Errorf("connection %d never asked for STARTTLS:\n%s", i, c)
		}
	}
	noCredentialsInClear(t, b.smtp, pass)
	if got := b.counter("sent"); got != 1 {
		t.Errorf("sent counter %v, want 1", got)
	}
}

// A wrong password is a refusal like any other: nothing is claimed or sent,
// the message is retried and dead-lettered after MaxTries; and the password
// only ever went inside TLS (the server refuses AUTH before STARTTLS).
func TestWrongSMTPPasswordIsRetriedThenDeadLetteredAndNeverSentInClear(t *testing.T) {
	const pass = "pass-93ab-wrong"
	b := newBusWith(t, smtptest.Options{STARTTLS: true, Username: smtpUser, Password: "pass-93ab-right"}, func(c *Config) {
		c.SMTPURL = withUser(t, c.SMTPURL, smtpUser, pass)
		c.MaxTries = 3
	})
	b.run()
	msg := b.publish(events.CustomerPasswordResetRequested, notification("ann@example.com", "en"))

	dl := b.deadLetters(1)
	h := dl[0].Headers()
	if h.Get(HeaderReasonKind) != reasonUndeliverable || h.Get(HeaderDeliveries) != "3" || !strings.Contains(h.Get(HeaderReason), "535") {
		t.Errorf("dead letter headers %v, want undeliverable after 3 tries with the server's 535", h)
	}
	b.waitIdle()
	if n := len(b.smtp.Mails()); n != 0 {
		t.Errorf("%d mails sent with a wrong password", n)
	}
	auths := b.smtp.Auths()
	if len(auths) != 3 {
		t.Errorf("%d AUTH exchanges, want one per try (3): %+v", len(auths), auths)
	}
	for _, a := range auths {
		if !a.TLS || a.OK || a.Username != smtpUser {
			t.Errorf("AUTH exchange %+v, want a failed one over TLS", a)
		}
	}
	noCredentialsInClear(t, b.smtp, pass)
	if got := b.counter("send_failures"); got != 3 {
		t.Errorf("send failures %v, want 3", got)
	}
	var claims int
	if err := b.pool.QueryRow(context.Background(), "SELECT count(*) FROM notifier_deliveries WHERE event_id = $1",
		msg.Header.Get(nats.MsgIdHdr)).Scan(&claims); err != nil || claims != 0 {
		t.Errorf("%d claims (err %v): the connection failed before the claim, so none may be left", claims, err)
	}
}

// Without SMTP_CA_FILE the self-signed certificate is not trusted: the
// handshake fails, nothing is sent, and the password never leaves.
func TestUntrustedSMTPCertificateFailsTheSend(t *testing.T) {
	const pass = "pass-4d2e-right"
	b := newBusWith(t, smtptest.Options{STARTTLS: true, Username: smtpUser, Password: pass}, func(c *Config) {
		c.SMTPURL = withUser(t, c.SMTPURL, smtpUser, pass)
		c.SMTPCAFile = ""
		c.MaxTries = 2
	})
	b.run()
	b.publish(events.CustomerVerificationRequested, notification("ann@example.com", "en"))

	dl := b.deadLetters(1)
	if h := dl[0].Headers(); h.Get(HeaderReasonKind) != reasonUndeliverable || !strings.Contains(h.Get(HeaderReason), "certificate") {
		t.Errorf("dead letter headers %v, want undeliverable for the certificate", h)
	}
	b.waitIdle()
	if n, a := len(b.smtp.Mails()), len(b.smtp.Auths()); n != 0 || a != 0 {
		t.Errorf("%d mails, %d AUTH exchanges with an untrusted server, want none", n, a)
	}
	noCredentialsInClear(t, b.smtp, pass)
}

// A server that offers AUTH PLAIN without TLS (or an attacker who stripped
// STARTTLS from its answer) does not get the password: PLAIN and LOGIN are
// used only on an encrypted connection.
func TestPasswordIsNotSentToAServerWithoutTLS(t *testing.T) {
	const pass = "pass-07aa-right"
	b := newBusWith(t, smtptest.Options{Username: smtpUser, Password: pass, InsecureAuth: true}, func(c *Config) {
		c.SMTPURL = withUser(t, c.SMTPURL, smtpUser, pass)
		c.MaxTries = 2
	})
	b.run()
	b.publish(events.CustomerVerificationRequested, notification("ann@example.com", "en"))

	b.deadLetters(1)
	b.waitIdle()
	if n, a := len(b.smtp.Mails()), len(b.smtp.Auths()); n != 0 || a != 0 {
		t.Errorf("%d mails, %d AUTH exchanges without TLS, want none", n, a)
	}
	noCredentialsInClear(t, b.smtp, pass)
}

// SMTP_TLS=required (the default) sends nothing to a server that does not
// take STARTTLS, or from whose answer an attacker stripped it: the email
// (its link is a one-time token) is retried, then dead-lettered, never
// sent in clear.
func TestRequiredTLSSendsNothingToAServerWithoutIt(t *testing.T) {
	b := newBus(t, func(c *Config) {
		c.SMTPTLS = "required"
		c.MaxTries = 2
	})
	b.run()
	b.publish(events.CustomerVerificationRequested, notification("ann@example.com", "en"))
	b.deadLetters(1)
	b.waitIdle()
	if n := len(b.smtp.Mails()); n != 0 {
		t.Errorf("%d mails sent without TLS, want none", n)
	}
}

func TestSMTPCAFileMustHoldACertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{notPEM, filepath.Join(dir, "missing.pem")} {
		_, err := New(nil, nil, zaptest.NewLogger(t), prometheus.NewRegistry(), Config{
			SMTPURL: "smtp://127.0.0.1:2525", SMTPCAFile: file, MailFrom: "shop@example.com", SMTPTimeout: time.Second,
		})
		if err == nil || !strings.Contains(err.Error(), "SMTP_CA_FILE") {
			t.Errorf("%s: New error %v, want one about SMTP_CA_FILE", filepath.Base(file), err)
		}
	}
}
