// Package notifier sends the emails that notification events ask for
// (set-password, verification, reset, email-change and deletion links).
//
// It is a durable JetStream pull consumer ("notifier") on
// CUSTOMERBUS_NOTIFICATIONS with explicit acks, so any number of instances
// share the work. Each event is rendered from embedded text and HTML templates
// in the customer's language and sent over SMTP, or written as an .eml file
// when no SMTP server is configured.
//
// # Every email sent, and confirmed ones never again
//
// The notifier records in PostgreSQL which event ids it has sent, and the rule
// is: claim, send, confirm, ack. A claim (a row keyed by event id, naming the
// attempt) is written after the SMTP server answered but before the email is
// handed over; the row is marked sent once the server accepted it, and the
// message is acked only after that. Whoever finds a row:
//
//   - a confirmed row: the email went out; the message is acked and nothing
//     sent (a redelivery, or the same event published again under another
//     Nats-Msg-Id);
//   - an unconfirmed row younger than ClaimTimeout: another attempt may be
//     sending right now; the message comes back after the claim has aged;
//   - an unconfirmed row older than that: an attempt stopped between claim and
//     confirm (the notifier died, or could not record the send), so the email
//     may or may not have gone out. The attempt takes the claim over (one
//     statement that only the first of several attempts wins) and sends the
//     email again. Every copy of an email carries the Message-ID
//     <event id@customerbus> and the same link, so mail systems fold them, and
//     a second copy does no harm where a missing one would leave the customer
//     unable to set a password or verify an address.
//
// When the server refuses the email or cannot be reached, nothing went out:
// the claim is released and the message retried with backoff, at most
// MaxTries deliveries, then dead-lettered as undeliverable. A connection that
// breaks at the final "." of the SMTP transaction (ErrUnknownOutcome) is
// retried the same way. So every email goes out at least once unless the
// server refuses it every time, and an email confirmed sent never goes again;
// a copy goes only after an attempt was interrupted or broken off at the end
// (customerbus_notifier_resent_total counts those after an interruption;
// ClaimTimeout must outlast an attempt, or one still under way would be taken
// over and copied too). Without SMTP the file mailer does better: it finds
// the file an interrupted attempt wrote and writes no second one (see
// dirSender).
//
// # Sweeping the records
//
// The records would grow forever, so each instance deletes, every
// sweepInterval and in small batches, those of emails sent longer than
// DeliveryRetention ago. A record must outlive every delivery of its event,
// and that is not bounded by the notifications stream's MaxAge: the stream
// keeps events forever by default (EVENTS_MAX_AGE=0), a reset or recreated
// consumer (DeliverAll) delivers everything the stream still holds again, and
// a relay that crashed after JetStream stored an event but before marking it
// sent publishes it again whenever it comes back, outside the duplicate
// window. So the notifier bounds it itself: an event with no record that is
// older (by its CloudEvents time, which is before any send of it) than
// DeliveryRetention less clockSlack is never sent but dead-lettered as stale,
// since its record may have been swept; so is an interrupted send of such an
// event, rather than sent again. An unconfirmed claim is never swept: it is
// how a redelivery recognises an interrupted send.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	gomail "github.com/wneessen/go-mail"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/tracing"
)

// Config of the notifier, read from the environment.
type Config struct {
	// SMTPURL is smtp://[user:pass@]host[:port] or smtps://…; empty writes
	// emails to MailDir instead.
	SMTPURL string `env:"SMTP_URL"`
	// SMTPCAFile is a PEM bundle of CA certificates the SMTP server's
	// certificate may chain to besides the system roots (a private CA).
	SMTPCAFile string `env:"SMTP_CA_FILE"`
	// SMTPTLS is what smtp:// does without TLS: "required" (the default)
	// sends nothing unless the server takes STARTTLS, so nobody who strips
	// it from the server's answer reads the emails' one-time links;
	// "opportunistic" sends in clear to a server without it (a local test
	// server). smtps:// is always TLS.
	SMTPTLS string `env:"SMTP_TLS" envDefault:"required"`
	// DeadLetterMaxAge is how long CUSTOMERBUS_NOTIFICATIONS_DLQ keeps a
	// message (they carry one-time tokens).
	DeadLetterMaxAge time.Duration `env:"DEADLETTER_MAX_AGE" envDefault:"720h"`
	// StreamReplicas is how many replicas the dead-letter stream has at
	// least; a stream with more keeps them (events.EnsureStream).
	StreamReplicas int           `env:"STREAM_REPLICAS" envDefault:"1"`
	SMTPTimeout    time.Duration `env:"SMTP_TIMEOUT" envDefault:"15s"`
	MailFrom       string        `env:"MAIL_FROM" envDefault:"customerbus <no-reply@localhost>"`
	MailDir        string        `env:"MAIL_DIR" envDefault:"./var/mail"`
	// MaxTries bounds the deliveries of a message whose email cannot be sent.
	MaxTries int `env:"NOTIFIER_MAX_TRIES" envDefault:"5"`
	// RetryBackoff is the wait before the second try; it doubles per try up
	// to MaxBackoff.
	RetryBackoff time.Duration `env:"NOTIFIER_RETRY_BACKOFF" envDefault:"10s"`
	MaxBackoff   time.Duration `env:"NOTIFIER_MAX_BACKOFF" envDefault:"5m"`
	// AckWait is how long JetStream waits for an answer before it delivers
	// a message again; it must outlast one SMTP send.
	AckWait time.Duration `env:"NOTIFIER_ACK_WAIT" envDefault:"1m"`
	// ClaimTimeout is how long an unconfirmed claim may belong to an attempt
	// still under way; older ones belong to an attempt that stopped, and are
	// taken over to send the email again. Keep it above twice AckWait (an
	// attempt's deadline, then its confirmation's) plus one SMTP send, so that
	// no attempt still under way is taken over and its email copied.
	ClaimTimeout time.Duration `env:"NOTIFIER_CLAIM_TIMEOUT" envDefault:"5m"`
	// DeliveryRetention is how long the record of a sent email is kept, and
	// so how old an event may be and still be sent (see "Sweeping the
	// records"). It should exceed the notifications stream's MaxAge when that
	// is set, so that every event the stream still holds is recognised as sent
	// rather than dead-lettered as stale, and the longest wait a useful email
	// can have (the tokens' lifetime). At least minDeliveryRetention.
	DeliveryRetention time.Duration `env:"NOTIFIER_DELIVERY_RETENTION" envDefault:"720h"`
}

// minDeliveryRetention is the shortest DeliveryRetention New accepts.
const minDeliveryRetention = time.Hour

// clockSlack is how far apart the clocks that stamp an event's time (the
// customers service) and a record's sent_at (PostgreSQL) may be: the age limit
// for sending is this much below DeliveryRetention.
const clockSlack = 10 * time.Minute

// How the records are swept: every sweepInterval (and once at start), in
// statements of at most sweepBatch rows with sweepPause between them, so no
// statement holds its row locks for long.
const (
	sweepInterval = time.Hour
	sweepBatch    = 1000
	sweepPause    = 10 * time.Millisecond
)

// ConsumerName is the durable consumer every notifier instance shares.
const ConsumerName = "notifier"

// Notifier turns notification events into emails.
type Notifier struct {
	q        *gen.Queries
	js       jetstream.JetStream
	log      *zap.Logger
	cfg      Config
	metrics  *metrics
	renderer *renderer
	sender   sender

	// afterSend, when set, runs between sending an email and confirming it;
	// an error makes the notifier drop the message as if it had died there.
	// Tests use it to crash at the worst moment.
	afterSend func() error
	// sweepInterval and sweepBatch are the constants of the same name unless
	// a test changes them.
	sweepInterval time.Duration
	sweepBatch    int
}

// New returns a notifier; it fails on a bad SMTP_URL, SMTP_CA_FILE, MAIL_FROM
// or NOTIFIER_DELIVERY_RETENTION.
func New(pool *pgxpool.Pool, js jetstream.JetStream, log *zap.Logger, reg prometheus.Registerer, cfg Config) (*Notifier, error) {
	def := Config{SMTPTimeout: 15 * time.Second, MailDir: "./var/mail", MaxTries: 5, RetryBackoff: 10 * time.Second,
		MaxBackoff: 5 * time.Minute, AckWait: time.Minute, ClaimTimeout: 5 * time.Minute, DeliveryRetention: 720 * time.Hour,
		DeadLetterMaxAge: events.DefaultDeadLetterMaxAge}
	for _, d := range []struct{ v, def *time.Duration }{
		{&cfg.SMTPTimeout, &def.SMTPTimeout}, {&cfg.RetryBackoff, &def.RetryBackoff},
		{&cfg.MaxBackoff, &def.MaxBackoff}, {&cfg.AckWait, &def.AckWait}, {&cfg.ClaimTimeout, &def.ClaimTimeout},
		{&cfg.DeliveryRetention, &def.DeliveryRetention}, {&cfg.DeadLetterMaxAge, &def.DeadLetterMaxAge},
	} {
		if *d.v <= 0 {
			*d.v = *d.def
		}
	}
	if cfg.MaxTries <= 0 {
		cfg.MaxTries = def.MaxTries
	}
	if cfg.MailDir == "" {
		cfg.MailDir = def.MailDir
	}
	if _, err := mail.ParseAddress(cfg.MailFrom); err != nil {
		return nil, fmt.Errorf("notifier: MAIL_FROM %q: %w", cfg.MailFrom, err)
	}
	if cfg.DeliveryRetention < minDeliveryRetention {
		return nil, fmt.Errorf("notifier: NOTIFIER_DELIVERY_RETENTION %s: at least %s", cfg.DeliveryRetention, minDeliveryRetention)
	}
	r, err := newRenderer()
	if err != nil {
		return nil, err
	}
	n := &Notifier{q: gen.New(pool), js: js, log: log, cfg: cfg, metrics: newMetrics(reg), renderer: r,
		sweepInterval: sweepInterval, sweepBatch: sweepBatch}
	if cfg.SMTPURL == "" {
		n.sender = dirSender{dir: cfg.MailDir, log: log}
	} else if n.sender, err = newSMTPSender(cfg.SMTPURL, cfg.SMTPTimeout, cfg.SMTPCAFile, cfg.SMTPTLS); err != nil {
		return nil, err
	}
	return n, nil
}

// Run consumes notifications, and sweeps old delivery records, until ctx
// ends. The message being handled when ctx ends is finished first.
func (n *Notifier) Run(ctx context.Context) error {
	cons, err := n.consumer(ctx)
	if err != nil || ctx.Err() != nil {
		return err
	}
	var sweeper sync.WaitGroup
	sweepCtx, stopSweeping := context.WithCancel(ctx)
	sweeper.Go(func() { n.sweepLoop(sweepCtx) })
	defer func() { stopSweeping(); sweeper.Wait() }()
	// One message at a time: a message waiting in a local buffer would use up
	// its AckWait while others are sent. Instances add throughput.
	it, err := events.Messages(cons, events.PullExpiry, jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("notifier: consume: %w", err)
	}
	// Stopping drains: the message already pulled is handled, not left
	// to wait out AckWait.
	defer context.AfterFunc(ctx, it.Drain)()
	return events.EachMessage(it, func(msg jetstream.Msg) { n.handle(ctx, msg) },
		func(err error) { n.log.Warn("notifier: consume", zap.Error(err)) })
}

// consumer creates the dead-letter stream and the durable consumer, retrying
// while NATS or the notifications stream (the relay creates it) is not there.
func (n *Notifier) consumer(ctx context.Context) (jetstream.Consumer, error) {
	return events.DurableConsumer(ctx, n.js, events.NotificationsStream, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "sends notification emails",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       n.cfg.AckWait,
		MaxDeliver:    -1, // the notifier counts tries itself and dead-letters; JetStream would just stop
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}, func(ctx context.Context) error {
		return events.EnsureStream(ctx, n.js, deadLetterStreamConfig(n.cfg.DeadLetterMaxAge, n.cfg.StreamReplicas))
	}, func(err error, backoff time.Duration) {
		n.log.Warn("notifier: stream or consumer not ready, retrying", zap.Error(err), zap.Duration("backoff", backoff))
	})
}

// errInvalid marks data no retry can fix.
var errInvalid = errors.New("invalid notification")

// errClaimed means another attempt holds the event's claim.
var errClaimed = errors.New("notifier: event claimed by another attempt")

// verdict is what becomes of a message.
type verdict struct {
	ack   bool
	delay time.Duration // Nak with this delay, when not ack and no kind
	kind  string        // dead-letter with this reason kind
	err   error
	drop  bool // neither: as if the notifier had died (tests only)
}

func (n *Notifier) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil { // cannot happen on a consumer's message
		n.log.Error("notifier: message without metadata", zap.Error(err))
		return
	}
	// Shutdown does not cut a send short: its outcome would be unknown.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.AckWait)
	defer cancel()
	log := n.log.With(zap.Uint64("stream_seq", meta.Sequence.Stream), zap.Uint64("delivery", meta.NumDelivered))
	v := n.process(ctx, msg, meta, log)
	switch {
	case v.drop:
		return
	case v.ack:
		err = msg.Ack()
	case v.kind != "":
		log.Warn("notifier: dead-lettering", zap.String("reason", v.kind), zap.Error(v.err))
		if err = n.deadLetter(ctx, msg, meta, v.kind, v.err); err != nil {
			err = errors.Join(err, msg.NakWithDelay(n.backoff(1)))
		}
	default:
		log.Info("notifier: retrying later", zap.Duration("delay", v.delay), zap.Error(v.err))
		err = msg.NakWithDelay(v.delay)
	}
	if err != nil { // JetStream delivers it again after AckWait; the claims keep that safe
		log.Warn("notifier: answering JetStream", zap.Error(err))
	}
}

// process sends the email of one message, claim before send (see the package
// comment), and says what to answer JetStream.
func (n *Notifier) process(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, log *zap.Logger) (v verdict) {
	e, data, err := decode(msg)
	if err != nil {
		return verdict{kind: reasonInvalid, err: err}
	}
	ctx, span := tracing.Handling(ctx, "notifier handle", e)
	defer func() { tracing.End(span, v.err) }()
	id := uuid.MustParse(e.ID()) // decode checked it
	log = tracing.Logger(ctx, log).With(zap.String("ce_id", e.ID()), zap.String("ce_type", e.Type()), zap.Stringer("customer_id", data.CustomerID))

	// prev is the claim of an attempt that stopped between claim and confirm,
	// taken over to send the email again.
	var prev *gen.GetNotifierDeliveryRow
	switch st, err := n.q.GetNotifierDelivery(ctx, id); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return verdict{delay: n.backoff(1), err: fmt.Errorf("notifier: read delivery: %w", err)}
	case st.SentAt != nil:
		n.metrics.duplicates.Inc()
		log.Info("notifier: email already sent", zap.Time("sent_at", *st.SentAt))
		return verdict{ack: true}
	case st.Now.Sub(st.ClaimedAt) < n.cfg.ClaimTimeout:
		return verdict{delay: n.cfg.ClaimTimeout - st.Now.Sub(st.ClaimedAt), err: errClaimed}
	default:
		prev = &st
	}
	if age := time.Since(e.Time()); age > n.cfg.DeliveryRetention-clockSlack {
		// Its record, if it was sent, may have been swept.
		return verdict{kind: reasonStale, err: fmt.Errorf(
			"event from %s is older than NOTIFIER_DELIVERY_RETENTION (%s) less %s: a record of its email may have been swept, so it is not sent",
			e.Time().UTC().Format(time.RFC3339), n.cfg.DeliveryRetention, clockSlack)}
	}

	em, err := n.renderer.render(e.Type(), data)
	if err != nil {
		return verdict{kind: reasonInvalid, err: err}
	}
	m, err := n.message(e.ID(), em)
	if err != nil {
		return verdict{kind: reasonInvalid, err: err}
	}

	claimID := uuid.New()
	var claimed bool
	var claimErr error
	already, err := n.sender.Send(ctx, e.ID(), m, func(ctx context.Context) error {
		var rows int64
		var err error
		if prev == nil {
			rows, err = n.q.ClaimNotifierDelivery(ctx, gen.ClaimNotifierDeliveryParams{EventID: id, EventType: e.Type(), ClaimID: claimID})
		} else {
			rows, err = n.q.TakeOverNotifierDelivery(ctx, gen.TakeOverNotifierDeliveryParams{EventID: id, ClaimID: claimID, OldClaimID: prev.ClaimID})
		}
		switch {
		case err != nil:
			claimErr = fmt.Errorf("notifier: claim: %w", err)
		case rows == 0:
			claimErr = errClaimed
		default:
			claimed = true
		}
		return claimErr
	})
	switch {
	case err == nil:
	case claimErr != nil: // nothing sent; the next delivery reads the row
		return verdict{delay: n.backoff(1), err: claimErr}
	default: // refused, unreachable or broken off at the end (ErrUnknownOutcome): retried, a copy at worst
		n.metrics.sendFailures.Inc()
		if claimed {
			if rerr := n.q.ReleaseNotifierDelivery(ctx, gen.ReleaseNotifierDeliveryParams{EventID: id, ClaimID: claimID}); rerr != nil {
				// The claim ages and is taken over: the email is sent all the same.
				log.Error("notifier: release claim", zap.Error(rerr))
			}
		}
		if int(meta.NumDelivered) >= n.cfg.MaxTries {
			return verdict{kind: reasonUndeliverable, err: fmt.Errorf("%d tries: %w", meta.NumDelivered, err)}
		}
		return verdict{delay: n.backoff(int(meta.NumDelivered)), err: err}
	}

	if n.afterSend != nil {
		if err := n.afterSend(); err != nil {
			return verdict{drop: true}
		}
	}
	if err := n.confirm(ctx, id, claimID); err != nil {
		// Not acked: the redelivery finds the claim unconfirmed and, once it
		// has aged, takes it over and sends the email again.
		log.Error("notifier: email sent but not recorded", zap.Error(err))
		return verdict{delay: n.cfg.ClaimTimeout, err: err}
	}
	switch {
	case already:
		n.metrics.alreadyWritten.Inc()
		log.Info("notifier: email found written by an earlier attempt, not written again")
		return verdict{ack: true}
	case prev != nil:
		n.metrics.resent.Inc()
		log.Info("notifier: email sent again after an interrupted attempt", zap.Time("claimed_at", prev.ClaimedAt))
	}
	n.metrics.sent.WithLabelValues(e.Type()).Inc()
	log.Info("notifier: email sent", zap.String("to", data.Email))
	return verdict{ack: true}
}

// confirm marks the claim sent, retrying briefly: the email is out, and a
// lost confirmation would have it sent again. It has AckWait of its own
// rather than what the send left of the message's: a slow send is no reason
// to send a copy.
func (n *Notifier) confirm(ctx context.Context, id, claimID uuid.UUID) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.AckWait)
	defer cancel()
	var err error
	for try := range 5 {
		var rows int64
		rows, err = n.q.MarkNotifierDeliverySent(ctx, gen.MarkNotifierDeliverySentParams{EventID: id, ClaimID: claimID})
		if err == nil && rows == 0 {
			// Only its owner releases a claim, so another attempt took it over
			// (this one outlived ClaimTimeout) and sends the email again.
			return errors.New("notifier: confirm: claim taken over by another attempt")
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("notifier: confirm: %w", err)
		case <-time.After(time.Duration(100<<try) * time.Millisecond):
		}
	}
	return fmt.Errorf("notifier: confirm: %w", err)
}

// sweepLoop sweeps at once and then every sweepInterval until ctx ends.
func (n *Notifier) sweepLoop(ctx context.Context) {
	tick := time.NewTicker(n.sweepInterval)
	defer tick.Stop()
	for {
		deleted, err := n.sweep(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			n.log.Warn("notifier: sweep delivery records", zap.Error(err), zap.Int64("deleted", deleted))
		case deleted > 0:
			n.log.Info("notifier: swept delivery records", zap.Int64("deleted", deleted), zap.Duration("retention", n.cfg.DeliveryRetention))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sweep deletes the records of emails sent longer than DeliveryRetention ago,
// at most sweepBatch per statement, and returns how many it deleted. Rows
// another instance's sweep holds are skipped, not waited for.
func (n *Notifier) sweep(ctx context.Context) (int64, error) {
	var total int64
	for {
		deleted, err := n.q.SweepNotifierDeliveries(ctx, gen.SweepNotifierDeliveriesParams{
			RetentionSeconds: n.cfg.DeliveryRetention.Seconds(), BatchSize: int32(n.sweepBatch),
		})
		total += deleted
		n.metrics.swept.Add(float64(deleted))
		if err != nil {
			return total, fmt.Errorf("notifier: sweep: %w", err)
		}
		if deleted < int64(n.sweepBatch) {
			return total, nil
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(sweepPause):
		}
	}
}

// backoff is the wait after the given delivery failed.
func (n *Notifier) backoff(delivery int) time.Duration {
	d := n.cfg.RetryBackoff
	for i := 1; i < delivery && d < n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, n.cfg.MaxBackoff)
}

// decode reads a notification CloudEvent and its data from a message.
func decode(msg jetstream.Msg) (event.Event, events.NotificationData, error) {
	var data events.NotificationData
	e, err := events.FromMsg(natsMsg(msg))
	if err != nil {
		return e, data, err
	}
	if err := e.Validate(); err != nil {
		return e, data, fmt.Errorf("%w: %v", events.ErrInvalidEvent, err)
	}
	if e.Time().IsZero() { // the age check needs it
		return e, data, fmt.Errorf("%w: no time", errInvalid)
	}
	if _, err := uuid.Parse(e.ID()); err != nil {
		return e, data, fmt.Errorf("%w: id %q is not a UUID", errInvalid, e.ID())
	}
	if !events.IsNotification(e.Type()) {
		return e, data, fmt.Errorf("%w: type %q is not a notification type", errInvalid, e.Type())
	}
	if err := e.DataAs(&data); err != nil {
		return e, data, fmt.Errorf("%w: data: %v", errInvalid, err)
	}
	// Every notification but the linkless ones carries a link's token.
	linkless := slices.Contains(events.LinklessNotifications, e.Type())
	if data.Email == "" || (data.Token == "" && !linkless) || (data.Token != "" && data.RedirectURL == "") {
		return e, data, fmt.Errorf("%w: email, token and redirect_url are required", errInvalid)
	}
	return e, data, nil
}

// message builds the email. Its Message-ID is <event id@customerbus>, the
// same in every attempt and instance, so the copy sent after an interrupted
// attempt is folded with the first by mail systems that may have it.
func (n *Notifier) message(id string, em email) (*gomail.Msg, error) {
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := m.From(n.cfg.MailFrom); err != nil {
		return nil, fmt.Errorf("notifier: from: %w", err)
	}
	if err := m.To(em.To); err != nil {
		return nil, fmt.Errorf("%w: recipient %q: %v", errInvalid, em.To, err)
	}
	m.Subject(em.Subject)
	m.SetMessageIDWithValue(id + "@customerbus")
	m.SetDate()
	m.SetBodyString(gomail.TypeTextPlain, em.Text)
	m.AddAlternativeString(gomail.TypeTextHTML, em.HTML)
	return m, nil
}

// natsMsg gives the events helpers the message in the form they read.
func natsMsg(msg jetstream.Msg) *nats.Msg {
	return &nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()}
}
