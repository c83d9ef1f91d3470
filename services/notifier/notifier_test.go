package notifier

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/services/notifier/smtptest"
)

// bus is one test's world: its own database, JetStream server and SMTP server.
type bus struct {
	t    *testing.T
	pool *pgxpool.Pool
	js   jetstream.JetStream
	smtp *smtptest.Server
	cfg  Config
	n    *Notifier
}

// newBus starts everything but the notifier; the streams exist as the relay
// would have made them.
func newBus(t *testing.T, tune func(*Config)) *bus {
	t.Helper()
	return newBusWith(t, smtptest.Options{}, tune)
}

// newBusWith is newBus with an SMTP server made with smtpOpts; the notifier
// trusts its certificate (SMTP_CA_FILE) when it offers STARTTLS.
func newBusWith(t *testing.T, smtpOpts smtptest.Options, tune func(*Config)) *bus {
	t.Helper()
	t.Parallel()
	pool, _ := dbtest.New(t)
	js, err := jetstream.New(natstest.New(t).Connect())
	if err != nil {
		t.Fatal(err)
	}
	if err := events.EnsureStreams(context.Background(), js, events.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	b := &bus{t: t, pool: pool, js: js, smtp: smtptest.NewWithOptions(t, smtpOpts)}
	b.cfg = Config{
		SMTPURL: b.smtp.URL(), SMTPCAFile: b.smtp.CAFile(), SMTPTLS: "required", SMTPTimeout: 2 * time.Second, MailFrom: "Shop <shop@example.com>",
		MaxTries: 100, RetryBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		AckWait: 2 * time.Second, ClaimTimeout: time.Second,
	}
	if !smtpOpts.STARTTLS {
		b.cfg.SMTPTLS = "opportunistic" // a plain test server
	}
	if tune != nil {
		tune(&b.cfg)
	}
	b.n = b.newNotifier()
	return b
}

// newNotifier returns another notifier instance on the same bus.
func (b *bus) newNotifier() *Notifier {
	b.t.Helper()
	n, err := New(b.pool, b.js, zaptest.NewLogger(b.t), prometheus.NewRegistry(), b.cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

// run runs the notifier until the test ends.
func (b *bus) run() { b.runNotifier(b.n) }

func (b *bus) runNotifier(n *Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := n.Run(ctx); err != nil {
			b.t.Errorf("notifier: %v", err)
		}
	})
	b.t.Cleanup(func() { cancel(); wg.Wait() })
}

func notification(email, lang string) events.NotificationData {
	return events.NotificationData{
		CustomerID: new(uuid.New()), Email: email, FirstName: "Ann", LastName: "Lee", LanguageCode: lang,
		Channel: "default", RedirectURL: "https://shop.example/account/confirm?ref=mail",
		Token: "tok-" + uuid.NewString(), ExpiresAt: time.Now().Add(time.Hour),
	}
}

// publish publishes a notification event the way the relay does
// (Nats-Msg-Id = event id) and returns it.
func (b *bus) publish(eventType string, data events.NotificationData) *nats.Msg {
	b.t.Helper()
	msg := b.event(time.Now(), eventType, data)
	b.publishMsg(msg)
	return msg
}

// event is the message of a notification event made at the given time, as
// the relay would publish it.
func (b *bus) event(at time.Time, eventType string, data events.NotificationData) *nats.Msg {
	b.t.Helper()
	e, err := events.New(events.Meta{
		Type: eventType, Source: events.SourceCustomers, Subject: data.CustomerID.String(),
		PartitionKey: data.CustomerID.String(), Sequence: 1, Time: at,
		Actor: events.Actor{Type: events.AuthServiceAccount, ID: "test"},
	}, data)
	if err != nil {
		b.t.Fatal(err)
	}
	msg, err := events.ToMsg(context.Background(), e)
	if err != nil {
		b.t.Fatal(err)
	}
	return msg
}

func (b *bus) publishMsg(msg *nats.Msg) {
	b.t.Helper()
	// A stream just made on a cluster may answer only once it has elected
	// its leader: on a loaded machine, after seconds.
	if _, err := b.js.PublishMsg(context.Background(), msg,
		jetstream.WithRetryAttempts(40), jetstream.WithRetryWait(250*time.Millisecond)); err != nil {
		b.t.Fatal(err)
	}
}

// republished is msg again under another Nats-Msg-Id, which JetStream does
// not drop.
func republished(msg *nats.Msg) *nats.Msg {
	again := &nats.Msg{Subject: msg.Subject, Header: nats.Header{}, Data: msg.Data}
	for k, v := range msg.Header {
		again.Header[k] = v
	}
	again.Header.Set(nats.MsgIdHdr, "again-"+msg.Header.Get(nats.MsgIdHdr))
	return again
}

// waitIdle waits until the consumer has answered every message for good.
// Its pending counts alone are not enough: JetStream tells a consumer about a
// new message asynchronously, so right after a publish they can read zero.
func (b *bus) waitIdle() {
	b.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		stream, serr := b.js.Stream(ctx, events.NotificationsStream)
		info, err := b.js.Consumer(ctx, events.NotificationsStream, ConsumerName)
		if serr == nil && err == nil {
			ci := info.CachedInfo()
			if ci.NumPending == 0 && ci.NumAckPending == 0 && ci.AckFloor.Stream >= stream.CachedInfo().State.LastSeq {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatal("notifier still has messages after 10s")
}

// deadLetters returns the messages in the dead-letter stream.
func (b *bus) deadLetters(want int) []jetstream.Msg {
	b.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := b.js.Stream(ctx, DeadLetterStream)
		if err == nil && int(s.CachedInfo().State.Msgs) >= want {
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("dead-letter stream: want %d messages", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := b.js.OrderedConsumer(ctx, DeadLetterStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.t.Fatal(err)
	}
	batch, err := c.FetchNoWait(100)
	if err != nil {
		b.t.Fatal(err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	return out
}

// counter reads one of the notifier's counters: sent (all types),
// duplicates, send_failures, resent, already_written, swept, or a
// dead-letter reason kind.
func (b *bus) counter(name string) float64 { return b.counterOf(b.n, name) }

// counterOf is counter for another instance on the bus.
func (b *bus) counterOf(n *Notifier, name string) float64 {
	var c prometheus.Counter
	switch name {
	case "sent":
		return b.counterOf(n, "sent:"+events.CustomerPasswordSetupRequested) + b.counterOf(n, "sent:"+events.CustomerVerificationRequested) +
			b.counterOf(n, "sent:"+events.CustomerPasswordResetRequested) + b.counterOf(n, "sent:"+events.CustomerEmailChangeRequested) +
			b.counterOf(n, "sent:"+events.CustomerDeletionRequested)
	case "duplicates":
		c = n.metrics.duplicates
	case "send_failures":
		c = n.metrics.sendFailures
	case "resent":
		c = n.metrics.resent
	case "already_written":
		c = n.metrics.alreadyWritten
	case "swept":
		c = n.metrics.swept
	default:
		if typ, ok := strings.CutPrefix(name, "sent:"); ok {
			c = n.metrics.sent.WithLabelValues(typ)
		} else {
			c = n.metrics.deadLettered.WithLabelValues(name)
		}
	}
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		b.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// recipients lists the mails' envelope recipients, sorted.
func recipients(mails []smtptest.Mail) []string {
	var rcpts []string
	for _, m := range mails {
		rcpts = append(rcpts, m.Rcpt)
	}
	slices.Sort(rcpts)
	return rcpts
}

// linkIn finds the link in an email body and returns its query.
func linkIn(t *testing.T, body string) url.Values {
	t.Helper()
	i := strings.Index(body, "https://shop.example/account/confirm?")
	if i < 0 {
		t.Fatalf("no link in:\n%s", body)
	}
	raw := body[i:]
	if j := strings.IndexAny(raw, "\"\r\n <"); j >= 0 {
		raw = raw[:j]
	}
	u, err := url.Parse(strings.ReplaceAll(raw, "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestNotificationBecomesEmailWithLink(t *testing.T) {
	b := newBus(t, nil)
	b.run()
	data := notification("ann@example.com", "en")
	msg := b.publish(events.CustomerVerificationRequested, data)

	m := b.smtp.WaitMails(1)[0]
	if m.Rcpt != data.Email || !strings.Contains(m.Header.Get("To"), data.Email) {
		t.Errorf("recipient %q, To %q, want %s", m.Rcpt, m.Header.Get("To"), data.Email)
	}
	if m.From != "shop@example.com" {
		t.Errorf("envelope from %q", m.From)
	}
	if m.Subject != "Confirm your email address" {
		t.Errorf("subject %q", m.Subject)
	}
	if want := "<" + msg.Header.Get(nats.MsgIdHdr) + "@customerbus>"; m.MessageIDHeader != want {
		t.Errorf("Message-ID %q, want %q", m.MessageIDHeader, want)
	}
	for part, body := range map[string]string{"text": m.Text, "html": m.HTML} {
		q := linkIn(t, body)
		if q.Get("token") != data.Token || q.Get("email") != data.Email || q.Get("ref") != "mail" {
			t.Errorf("%s link query %v: want token, email and the redirect URL's ref", part, q)
		}
		if !strings.Contains(body, "Ann") {
			t.Errorf("%s does not greet the customer:\n%s", part, body)
		}
	}
	b.waitIdle()
	if got := b.counter("sent"); got != 1 {
		t.Errorf("sent counter %v, want 1", got)
	}
}

func TestEmailLanguageFollowsLanguageCodeWithEnglishFallback(t *testing.T) {
	b := newBus(t, nil)
	b.run()
	cases := []struct{ lang, subject string }{
		{"de", "Bestätigen Sie Ihre E-Mail-Adresse"},
		{"de-AT", "Bestätigen Sie Ihre E-Mail-Adresse"},
		{"en", "Confirm your email address"},
		{"fr", "Confirm your email address"},
		{"", "Confirm your email address"},
	}
	for i, c := range cases {
		b.publish(events.CustomerVerificationRequested, notification(string(rune('a'+i))+"@example.com", c.lang))
	}
	got := map[string]string{}
	for _, m := range b.smtp.WaitMails(len(cases)) {
		got[m.Rcpt] = m.Subject
	}
	for i, c := range cases {
		t.Run("lang="+c.lang, func(t *testing.T) {
			if s := got[string(rune('a'+i))+"@example.com"]; s != c.subject {
				t.Errorf("subject %q, want %q", s, c.subject)
			}
		})
	}
}

func TestSameEventTwiceSendsOneEmail(t *testing.T) {
	b := newBus(t, nil)
	b.run()
	data := notification("ann@example.com", "en")
	msg := b.publish(events.CustomerPasswordResetRequested, data)
	// The same CloudEvent again under another Nats-Msg-Id, which JetStream
	// cannot drop, as a re-published outbox row outside the duplicate window.
	b.publishMsg(republished(msg))
	b.publish(events.CustomerPasswordResetRequested, notification("bob@example.com", "en"))

	b.smtp.WaitMails(2)
	b.waitIdle()
	// In either order: an attempt interrupted under load (its claim written
	// but its deadline gone) is sent again after ClaimTimeout, after bob's.
	if got := recipients(b.smtp.Mails()); !slices.Equal(got, []string{"ann@example.com", "bob@example.com"}) {
		t.Fatalf("mails to %v, want one for ann and one for bob", got)
	}
	if d := b.counter("duplicates"); d != 1 {
		t.Errorf("duplicates counter %v, want 1", d)
	}
}

func TestSMTPDownThenBackDeliversOnce(t *testing.T) {
	b := newBus(t, nil)
	b.smtp.Stop()
	b.run()
	data := notification("ann@example.com", "en")
	b.publish(events.CustomerPasswordSetupRequested, data)

	deadline := time.Now().Add(10 * time.Second)
	for b.counter("send_failures") < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the notifier did not retry while SMTP was down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.smtp.Restart()
	m := b.smtp.WaitMails(1)
	b.waitIdle()
	time.Sleep(3 * b.cfg.MaxBackoff) // a stray retry would have arrived by now
	if len(b.smtp.Mails()) != 1 || m[0].Rcpt != data.Email {
		t.Fatalf("got %d mails, want exactly one", len(b.smtp.Mails()))
	}
	if b.counter("sent") != 1 {
		t.Errorf("sent counter %v", b.counter("sent"))
	}
}

func TestRefusedEmailIsDeadLetteredAfterMaxTriesAndOthersGoOn(t *testing.T) {
	b := newBus(t, func(c *Config) { c.MaxTries = 3 })
	b.smtp.RefuseFor("bounce@example.com")
	b.run()
	b.publish(events.CustomerVerificationRequested, notification("bounce@example.com", "en"))
	b.publish(events.CustomerVerificationRequested, notification("ann@example.com", "en"))

	dl := b.deadLetters(1)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	h := dl[0].Headers()
	if h.Get(HeaderReasonKind) != reasonUndeliverable || h.Get(HeaderDeliveries) != "3" ||
		!strings.Contains(h.Get(HeaderReason), "554") || !strings.Contains(h.Get(HeaderReason), "3 tries") {
		t.Errorf("dead letter headers %v", h)
	}
	kept, err := events.FromMsg(&nats.Msg{Subject: dl[0].Subject(), Header: h, Data: dl[0].Data()})
	if err != nil || kept.Type() != events.CustomerVerificationRequested || dl[0].Subject() != DeadLetterSubjectPrefix+events.CustomerVerificationRequested {
		t.Errorf("dead letter is not the original message: subject %s, headers %v", dl[0].Subject(), h)
	}
	b.smtp.WaitMails(1)
	b.waitIdle()
	if m := b.smtp.Mails(); len(m) != 1 || m[0].Rcpt != "ann@example.com" {
		t.Errorf("mails %v, want ann's only", m)
	}
	if got := b.counter(reasonUndeliverable); got != 1 {
		t.Errorf("dead-letter counter %v, want 1", got)
	}
	if got := b.counter("send_failures"); got != 3 {
		t.Errorf("send failures %v, want 3", got)
	}

	// The dead-lettered message is gone for good; the next ones go through.
	b.publish(events.CustomerVerificationRequested, notification("bob@example.com", "en"))
	b.smtp.WaitMails(2)
	b.waitIdle()
}

func TestInvalidMessagesGoStraightToDeadLetters(t *testing.T) {
	b := newBus(t, nil)
	b.run()
	b.publishMsg(&nats.Msg{Subject: events.NotificationsSubjectPrefix + events.CustomerVerificationRequested, Data: []byte("not a cloudevent")})
	bad := notification("ann@example.com", "en")
	bad.RedirectURL = "javascript:alert(1)"
	b.publish(events.CustomerVerificationRequested, bad)
	b.publish(events.CustomerVerificationRequested, notification("bob@example.com", "en"))

	dl := b.deadLetters(2)
	for _, m := range dl {
		if m.Headers().Get(HeaderReasonKind) != reasonInvalid || m.Headers().Get(HeaderDeliveries) != "1" {
			t.Errorf("dead letter headers %v", m.Headers())
		}
	}
	if !strings.Contains(dl[1].Headers().Get(HeaderReason), "redirect_url") {
		t.Errorf("reason %q does not name redirect_url", dl[1].Headers().Get(HeaderReason))
	}
	b.smtp.WaitMails(1)
	b.waitIdle()
	if got := b.counter(reasonInvalid); got != 2 {
		t.Errorf("dead-letter counter %v, want 2", got)
	}
	// The dead letters hold one-time tokens: they are not kept forever.
	st, err := b.js.Stream(context.Background(), DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if age := st.CachedInfo().Config.MaxAge; age != events.DefaultDeadLetterMaxAge {
		t.Errorf("dead-letter stream max age %s, want %s", age, events.DefaultDeadLetterMaxAge)
	}
}

func TestWithoutSMTPEmailsAreWrittenToMailDir(t *testing.T) {
	dir := t.TempDir()
	b := newBus(t, func(c *Config) { c.SMTPURL = ""; c.MailDir = dir })
	b.run()
	data := notification("ann@example.com", "de")
	msg := b.publish(events.CustomerPasswordSetupRequested, data)
	b.waitIdle()

	raw, err := os.ReadFile(filepath.Join(dir, msg.Header.Get(nats.MsgIdHdr)+".eml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := smtptest.ParseMail(raw)
	if err != nil {
		t.Fatal(err)
	}
	if q := m.Link(t).Query(); q.Get("token") != data.Token || m.Subject != "Legen Sie Ihr Passwort fest" {
		t.Errorf("eml: subject %q, link query %v", m.Subject, q)
	}
}

func TestInstancesShareTheWorkAndSendEachEmailOnce(t *testing.T) {
	// A claim outlasts twice AckWait, so no send under way, however slow, is
	// taken for an interrupted one and copied.
	b := newBus(t, func(c *Config) { c.ClaimTimeout = 5 * time.Second })
	b.run()
	b.runNotifier(b.newNotifier())
	const n = 30
	for i := range n {
		data := notification(fmt.Sprintf("c%d@example.com", i), "en")
		msg := b.publish(events.CustomerVerificationRequested, data)
		if i%3 == 0 { // a third of them twice
			b.publishMsg(republished(msg))
		}
	}
	b.smtp.WaitMails(n)
	b.waitIdle()
	seen := map[string]bool{}
	for _, m := range b.smtp.Mails() {
		if seen[m.Rcpt] {
			t.Errorf("%s got two emails", m.Rcpt)
		}
		seen[m.Rcpt] = true
	}
	if len(seen) != n {
		t.Errorf("%d recipients, want %d", len(seen), n)
	}
}
