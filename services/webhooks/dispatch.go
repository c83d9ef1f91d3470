package webhooks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/db/outbox"
	"github.com/customerbus/customerbus/events"
)

// maxClaim is how many deliveries one claim takes at most.
const maxClaim = 256

// leaseMargin is how much longer than the timeout a claim holds a
// delivery: an attempt still running then is taken for dead.
const leaseMargin = 30 * time.Second

// finished is an attempt's delivery and what it got.
type finished struct {
	row gen.ClaimWebhookDeliveriesRow
	res result
}

// dispatch claims the deliveries due and attempts each, at most
// Concurrency at once and PerEndpoint to one endpoint, until ctx ends; it
// then lets the attempts in flight finish and records them. Claiming,
// sending and recording overlap: a recorder writes the outcomes in batches
// while more are claimed and sent.
func (s *Service) dispatch(ctx context.Context) error {
	finishedCh := make(chan finished, s.cfg.Concurrency)
	recorded := make(chan []finished, s.cfg.Concurrency)
	recorderDone := make(chan struct{})
	go func() {
		defer close(recorderDone)
		s.recordAll(ctx, finishedCh, recorded)
	}()
	defer func() { close(finishedCh); <-recorderDone }()

	inFlight := 0 // claimed and not yet recorded
	perEndpoint := map[uuid.UUID]int{}
	release := func(batch []finished) {
		for _, f := range batch {
			inFlight--
			if perEndpoint[f.row.WebhookID]--; perEndpoint[f.row.WebhookID] == 0 {
				delete(perEndpoint, f.row.WebhookID)
			}
		}
	}
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	// Attempts run to their end, even while stopping: cut short, their
	// outcome would be unknown and they would only be sent again.
	sendCtx := context.WithoutCancel(ctx)
	for {
		more := false
		if ctx.Err() == nil && inFlight < s.cfg.Concurrency {
			var busy []uuid.UUID
			for id, n := range perEndpoint {
				if n >= s.cfg.PerEndpoint {
					busy = append(busy, id)
				}
			}
			limit := min(maxClaim, s.cfg.Concurrency-inFlight)
			// Not cut short by stopping: a claim cancelled in flight may
			// have committed all the same, and its deliveries would then
			// wait out their lease.
			claimCtx, cancel := context.WithTimeout(sendCtx, s.cfg.Timeout)
			rows, err := s.q.ClaimWebhookDeliveries(claimCtx, gen.ClaimWebhookDeliveriesParams{
				Busy: busy, RowLimit: int32(limit), LeaseMs: (s.cfg.Timeout + leaseMargin).Milliseconds()})
			cancel()
			if err != nil {
				s.log.Warn("claim deliveries", zap.Error(err))
			}
			for _, row := range rows {
				inFlight++
				perEndpoint[row.WebhookID]++
				go func() { finishedCh <- finished{row: row, res: s.sender.send(sendCtx, attemptOf(row))} }()
			}
			// A full claim leaves more due.
			more = len(rows) == limit
		}
		if ctx.Err() != nil && inFlight == 0 {
			return nil
		}
		if !more || inFlight >= s.cfg.Concurrency {
			select {
			case <-ctx.Done():
			case <-s.wake:
			case <-tick.C:
			case batch := <-recorded:
				release(batch)
			}
		}
		// Outcomes recorded meanwhile free their slots, and may have
		// made the next deliveries of their lines due.
		for draining := true; draining; {
			select {
			case batch := <-recorded:
				release(batch)
			default:
				draining = false
			}
		}
	}
}

// maxRecord is how many outcomes one record writes at most.
const maxRecord = 512

// recordAll records the attempts as they finish, those finished together in
// one transaction, and hands each recorded batch back, until finished closes.
func (s *Service) recordAll(ctx context.Context, finishedCh <-chan finished, recorded chan<- []finished) {
	for f := range finishedCh {
		batch := []finished{f}
		for collecting := true; collecting && len(batch) < maxRecord; {
			select {
			case next, ok := <-finishedCh:
				if ok {
					batch = append(batch, next)
				}
				collecting = ok
			default:
				collecting = false
			}
		}
		for {
			err := s.record(context.WithoutCancel(ctx), batch)
			if err == nil {
				break
			}
			// Unrecorded, the claims stay until their leases run out, then
			// the deliveries are tried again: nothing is lost.
			s.log.Warn("record attempts; retrying", zap.Int("attempts", len(batch)), zap.Error(err))
			if ctx.Err() != nil {
				break
			}
			time.Sleep(time.Second)
		}
		recorded <- batch
	}
}

// attemptOf is the attempt of a claimed delivery.
func attemptOf(row gen.ClaimWebhookDeliveriesRow) attempt {
	a := attempt{url: row.Url, contentMode: row.ContentMode, eventID: row.EventID, payload: row.Payload, secrets: []string{row.Secret}}
	if row.PreviousSecret != "" {
		a.secrets = append(a.secrets, row.PreviousSecret)
	}
	return a
}

// record writes the outcomes of finished attempts in one transaction: each
// delivery delivered, retried later, or given up; the endpoints' health;
// and the endpoints to disable, each with its webhook.disabled.
func (s *Service) record(ctx context.Context, batch []finished) error {
	var p gen.RecordWebhookAttemptsParams
	var healthy, failing, gone []uuid.UUID
	lastError := map[uuid.UUID]string{}
	outcomes := make([]string, len(batch))
	for i, f := range batch {
		status, retry, outcome := "delivered", time.Duration(0), outcomeDelivered
		switch {
		case f.res.delivered():
			healthy = append(healthy, f.row.WebhookID)
		case f.res.code == http.StatusGone:
			status, outcome = "failed", outcomeGone
			gone = append(gone, f.row.WebhookID)
		case int(f.row.Attempts) <= len(s.cfg.RetryDelays):
			status, outcome = "pending", outcomeRetrying
			retry = jitter(s.cfg.RetryDelays[f.row.Attempts-1])
		default:
			status, outcome = "failed", outcomeFailed
		}
		if !f.res.delivered() {
			failing = append(failing, f.row.WebhookID)
			lastError[f.row.WebhookID] = f.res.err
		}
		outcomes[i] = outcome
		p.Ids, p.Attempts, p.Statuses = append(p.Ids, f.row.ID), append(p.Attempts, f.row.Attempts), append(p.Statuses, status)
		p.RetryMs, p.Codes = append(p.RetryMs, retry.Milliseconds()), append(p.Codes, int32(f.res.code))
		p.LatenciesMs = append(p.LatenciesMs, float64(f.res.latency.Microseconds())/1000)
		p.Errors = append(p.Errors, f.res.err)
	}
	// An endpoint that delivered in this batch is healthy, whatever else failed.
	failing = slices.DeleteFunc(failing, func(id uuid.UUID) bool { return slices.Contains(healthy, id) })
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if _, err := q.RecordWebhookAttempts(ctx, p); err != nil {
			return err
		}
		if len(healthy) > 0 {
			if err := q.MarkWebhooksHealthy(ctx, healthy); err != nil {
				return err
			}
		}
		if len(failing) == 0 && len(gone) == 0 {
			return nil
		}
		if err := q.MarkWebhooksFailing(ctx, failing); err != nil {
			return err
		}
		off, err := q.DisableWebhooks(ctx, gen.DisableWebhooksParams{Gone: gone, Failing: failing, FailingForMs: s.cfg.DisableAfter.Milliseconds()})
		if err != nil || len(off) == 0 {
			return err
		}
		evs := make([]cloudevents.Event, len(off))
		for i, w := range off {
			if evs[i], err = disabledEvent(w, lastError[w.ID]); err != nil {
				return err
			}
			s.log.Warn("endpoint disabled", zap.Stringer("webhook", w.ID), zap.String("reason", *w.DisabledReason), zap.String("last_error", lastError[w.ID]))
			s.m.disabled.WithLabelValues(*w.DisabledReason).Inc()
		}
		return outbox.Write(ctx, q, evs)
	})
	if err != nil {
		return fmt.Errorf("webhooks: record attempts: %w", err)
	}
	for i, f := range batch {
		s.m.deliveries.WithLabelValues(outcomes[i]).Inc()
		if f.res.code != 0 {
			s.m.latency.Observe(f.res.latency.Seconds())
		}
	}
	return nil
}

// jitter spreads a retry delay over ±20%, so the retries of many
// deliveries that failed together do not arrive together.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// disabledEvent is the webhook.disabled of an endpoint just switched off.
func disabledEvent(w gen.Webhook, lastError string) (cloudevents.Event, error) {
	return events.New(events.Meta{
		Type: events.WebhookDisabled, Source: events.SourceWebhooks, Subject: w.ID.String(), PartitionKey: w.ID.String(),
		Sequence: int64(w.TimesDisabled), Time: w.UpdatedAt, TraceParent: events.NewTraceParent(),
		Actor: events.Actor{Type: events.AuthServiceAccount, ID: ConsumerName},
	}, events.WebhookDisabledData{Webhook: publicWebhook(w, time.Now()), Reason: *w.DisabledReason, LastError: lastError})
}

// publicWebhook is an endpoint as events show it, as the API does: no
// secret, and no expiry of a previous secret that signs no more.
func publicWebhook(w gen.Webhook, now time.Time) events.Webhook {
	pw := events.Webhook{
		ID: w.ID, URL: w.Url, EventTypes: w.EventTypes, ContentMode: w.ContentMode, Description: w.Description,
		IsActive: w.IsActive, DisabledReason: w.DisabledReason, DisabledAt: utc(w.DisabledAt), FailingSince: utc(w.FailingSince),
		CreatedAt: w.CreatedAt.UTC(), UpdatedAt: w.UpdatedAt.UTC(),
	}
	if w.PreviousSecretExpiresAt != nil && w.PreviousSecretExpiresAt.After(now) {
		pw.PreviousSecretExpiresAt = utc(w.PreviousSecretExpiresAt)
	}
	return pw
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
