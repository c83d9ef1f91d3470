package notifier

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/notifier/smtptest"
)

// crashOnce makes n drop its first message between send and confirm, as if
// it had died there.
func crashOnce(n *Notifier) {
	var crashed atomic.Bool
	n.afterSend = func() error {
		if crashed.CompareAndSwap(false, true) {
			return errors.New("crash")
		}
		return nil
	}
}

// fastTakeOver has an interrupted claim taken over within a second.
func fastTakeOver(c *Config) {
	c.AckWait = 300 * time.Millisecond
	c.ClaimTimeout = 700 * time.Millisecond
}

// confirmed reports whether the event's email is recorded as sent, failing
// the test when it has no record.
func (b *bus) confirmed(id string) bool {
	b.t.Helper()
	var sent bool
	if err := b.pool.QueryRow(context.Background(),
		"SELECT sent_at IS NOT NULL FROM notifier_deliveries WHERE event_id = $1", id).Scan(&sent); err != nil {
		b.t.Fatal(err)
	}
	return sent
}

// wantCounters checks counters, by the names counter takes, summed over b.n
// and the other instances.
func (b *bus) wantCounters(want map[string]float64, others ...*Notifier) {
	b.t.Helper()
	for name, w := range want {
		got := b.counter(name)
		for _, n := range others {
			got += b.counterOf(n, name)
		}
		if got != w {
			b.t.Errorf("%s counter %v, want %v", name, got, w)
		}
	}
}

// noDeadLetters fails the test if the dead-letter stream holds anything.
func (b *bus) noDeadLetters() {
	b.t.Helper()
	s, err := b.js.Stream(context.Background(), DeadLetterStream)
	if err != nil {
		b.t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 0 {
		b.t.Errorf("%d dead letters, want none", n)
	}
}

// The notifier dies after the SMTP server accepted the email but before the
// send is recorded. The redelivery finds the claim unconfirmed, waits while
// it is young (its owner may still be sending), then takes it over and sends
// the email again, under the same Message-ID: a copy does no harm, a missing
// email would leave the customer without the link.
func TestEmailInterruptedBeforeConfirmIsSentAgainUnderTheSameMessageID(t *testing.T) {
	b := newBus(t, fastTakeOver)
	crashOnce(b.n)
	b.run()
	data := notification("ann@example.com", "en")
	id := b.publish(events.CustomerPasswordSetupRequested, data).Header.Get(nats.MsgIdHdr)

	b.smtp.WaitMails(2)
	b.waitIdle()
	time.Sleep(2 * b.cfg.ClaimTimeout) // a third copy would have come by now
	mails := b.smtp.Mails()
	if len(mails) != 2 {
		t.Fatalf("%d mails, want 2: the one the crash interrupted and one more", len(mails))
	}
	for i, m := range mails {
		if want := "<" + id + "@customerbus>"; m.MessageIDHeader != want || m.Rcpt != data.Email {
			t.Errorf("mail %d to %s has Message-ID %q, want %q to %s", i, m.Rcpt, m.MessageIDHeader, want, data.Email)
		}
		if tok := m.Link(t).Query().Get("token"); tok != data.Token {
			t.Errorf("mail %d carries token %q, want %q", i, tok, data.Token)
		}
	}
	b.noDeadLetters()
	if !b.confirmed(id) {
		t.Error("the send after the crash is not recorded")
	}
	b.wantCounters(map[string]float64{"resent": 1})

	// After the crash the notifier carries on as usual.
	b.publish(events.CustomerPasswordSetupRequested, notification("bob@example.com", "en"))
	b.smtp.WaitMails(3)
	b.waitIdle()
}

// A send that outlasts the message's deadline (AckWait), as under load, is
// still recorded: with only what was left of that deadline its confirmation
// would fail, and the send, looking interrupted, would go again.
func TestSlowSendIsRecordedNotCopied(t *testing.T) {
	b := newBus(t, fastTakeOver)
	var slowed atomic.Bool
	b.n.afterSend = func() error {
		if slowed.CompareAndSwap(false, true) {
			time.Sleep(b.cfg.AckWait + 100*time.Millisecond)
		}
		return nil
	}
	b.run()
	id := b.publish(events.CustomerVerificationRequested, notification("ann@example.com", "en")).Header.Get(nats.MsgIdHdr)

	b.smtp.WaitMails(1)
	b.waitIdle()
	time.Sleep(2 * b.cfg.ClaimTimeout) // a copy would have come by now
	if n := len(b.smtp.Mails()); n != 1 {
		t.Errorf("%d mails, want 1", n)
	}
	b.wantCounters(map[string]float64{"resent": 0})
	if !b.confirmed(id) {
		t.Error("the slow send is not recorded")
	}
}

// A notifier was killed between claim and confirm (its claim, a minute old,
// is all that is left of it). The event comes to two instances at once, as
// a redelivery and a re-publication: one takes the claim over and sends, the
// other finds the send recorded.
func TestInterruptedSendIsTakenOverByOneInstanceOnly(t *testing.T) {
	b := newBus(t, func(c *Config) { c.ClaimTimeout = 5 * time.Second })
	msg := b.event(time.Now(), events.CustomerVerificationRequested, notification("ann@example.com", "en"))
	id := msg.Header.Get(nats.MsgIdHdr)
	b.record(uuid.MustParse(id), time.Minute, -1)
	other := b.newNotifier()
	b.run()
	b.runNotifier(other)
	b.publishMsg(msg)
	b.publishMsg(republished(msg))

	b.smtp.WaitMails(1)
	b.waitIdle()
	if got := recipients(b.smtp.Mails()); !slices.Equal(got, []string{"ann@example.com"}) {
		t.Errorf("mails to %v, want one to ann", got)
	}
	b.wantCounters(map[string]float64{"resent": 1, "duplicates": 1}, other)
	b.noDeadLetters()
	if !b.confirmed(id) {
		t.Error("the send is not recorded")
	}
}

// The statement behind a take-over: of several attempts that found the same
// interrupted claim, exactly one gets it, and a confirmed send can be taken
// over by none.
func TestOnlyOneAttemptTakesOverAnInterruptedClaim(t *testing.T) {
	b := newBus(t, nil)
	ctx := context.Background()
	id := uuid.New()
	b.record(id, time.Minute, -1)
	st, err := b.n.q.GetNotifierDelivery(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var won atomic.Int64
	claims := make([]uuid.UUID, 8)
	for i := range claims {
		claims[i] = uuid.New()
		wg.Go(func() {
			rows, err := b.n.q.TakeOverNotifierDelivery(ctx, gen.TakeOverNotifierDeliveryParams{EventID: id, ClaimID: claims[i], OldClaimID: st.ClaimID})
			if err != nil {
				t.Error(err)
			}
			won.Add(rows)
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d attempts took the claim over, want 1", won.Load())
	}
	now, err := b.n.q.GetNotifierDelivery(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(claims, now.ClaimID) || !now.ClaimedAt.After(st.ClaimedAt) {
		t.Errorf("claim %s claimed at %s, want one of the attempts' and newer than %s", now.ClaimID, now.ClaimedAt, st.ClaimedAt)
	}
	if err := b.n.confirm(ctx, id, now.ClaimID); err != nil {
		t.Fatal(err)
	}
	if rows, err := b.n.q.TakeOverNotifierDelivery(ctx, gen.TakeOverNotifierDeliveryParams{EventID: id, ClaimID: uuid.New(), OldClaimID: now.ClaimID}); err != nil || rows != 0 {
		t.Errorf("a confirmed send was taken over (%d rows, err %v)", rows, err)
	}
}

// mailFiles lists the names in the mail directory.
func mailFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Without SMTP the email is a file, so an attempt can see whether the one it
// takes over got as far as writing it: the file of an attempt that died
// before confirming is the email sent, and no second one is written.
func TestFileMailerWritesAnInterruptedEmailOnce(t *testing.T) {
	dir := t.TempDir()
	b := newBus(t, func(c *Config) { fastTakeOver(c); c.SMTPURL = ""; c.MailDir = dir })
	crashOnce(b.n)
	b.run()
	id := b.publish(events.CustomerVerificationRequested, notification("ann@example.com", "en")).Header.Get(nats.MsgIdHdr)
	path := filepath.Join(dir, id+".eml")
	var first os.FileInfo
	for deadline := time.Now().Add(5 * time.Second); first == nil; time.Sleep(10 * time.Millisecond) {
		first, _ = os.Stat(path)
		if time.Now().After(deadline) {
			t.Fatal("no email file after 5s")
		}
	}

	b.waitIdle()
	b.wantCounters(map[string]float64{"already_written": 1, "resent": 0})
	if now, err := os.Stat(path); err != nil || !os.SameFile(first, now) {
		t.Errorf("the email file was written again (err %v)", err)
	}
	if got := mailFiles(t, dir); !slices.Equal(got, []string{id + ".eml"}) {
		t.Errorf("mail directory holds %v, want the one email", got)
	}
	b.noDeadLetters()
	if !b.confirmed(id) {
		t.Error("the email is not recorded as sent")
	}
}

// A notifier killed while writing leaves a temporary file, never an email
// file; the attempt that takes its claim over writes the email.
func TestFileMailerLeftoverTempFileIsNotASend(t *testing.T) {
	dir := t.TempDir()
	b := newBus(t, func(c *Config) { c.SMTPURL = ""; c.MailDir = dir })
	data := notification("ann@example.com", "en")
	msg := b.event(time.Now(), events.CustomerVerificationRequested, data)
	id := msg.Header.Get(nats.MsgIdHdr)
	b.record(uuid.MustParse(id), time.Minute, -1)
	leftover := "." + id + "-1234.tmp"
	if err := os.WriteFile(filepath.Join(dir, leftover), []byte("From: Shop <shop@example.com>\r\nTo: ann@"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.run()
	b.publishMsg(msg)

	b.waitIdle()
	raw, err := os.ReadFile(filepath.Join(dir, id+".eml"))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := smtptest.ParseMail(raw); err != nil || m.Link(t).Query().Get("token") != data.Token {
		t.Errorf("email file %v does not carry the token:\n%s", err, raw)
	}
	b.wantCounters(map[string]float64{"resent": 1, "already_written": 0})
	if got := mailFiles(t, dir); !slices.Equal(got, []string{leftover, id + ".eml"}) {
		t.Errorf("mail directory holds %v, want the leftover and the email", got)
	}
	b.noDeadLetters()
}

// cutShort writes half an email and fails, as a full disk would.
type cutShort struct{}

func (cutShort) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, "From: Shop <shop@example.com>\r\nTo: ann@")
	if err == nil {
		err = errors.New("no space left on device")
	}
	return int64(n), err
}

func TestEmailFileWriteCutShortLeavesNoFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := writeFileAtomic(dir, filepath.Join(dir, "a.eml"), ".a-*.tmp", cutShort{}); err == nil {
		t.Fatal("a failed write reported success")
	}
	if got := mailFiles(t, dir); len(got) != 0 {
		t.Errorf("mail directory holds %v after a failed write, want nothing", got)
	}
}
