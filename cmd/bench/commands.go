package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/customerbus/customerbus/events"
)

// commandsWarmup is how many commands the commands case applies, unmeasured,
// before its measured batch (none with -warmup 0).
const commandsWarmup = 1000

// commandLanes is services/customers' lane count, for the report only.
const commandLanes = 16

// runCommands measures customer.create commands published on the bus: an
// integrator publishing as fast as it can (async, a bounded number in
// flight), the service's durable consumer applying them, the relay
// publishing their customer.created. httpRows are the create case's rows of
// the same run, printed beside for comparison (none when it did not run).
func runCommands(ctx context.Context, adminURL, name string, opt options, httpRows []row) error {
	sys, _, stop, err := freshSystem(ctx, adminURL, name, opt)
	if err != nil {
		return err
	}
	defer stop()
	if err := sys.startCommands(ctx); err != nil {
		return err
	}
	pub, err := newPublisher(sys.nats.ClientURL(), opt.commandsInFlight)
	if err != nil {
		return err
	}
	defer pub.close()

	fmt.Printf("GOMAXPROCS %d, CPUs %d; %d customer.create commands published async, at most %d in flight, after %d warm-up; DB pool %d, %d command lanes\n\n",
		runtime.GOMAXPROCS(0), runtime.NumCPU(), opt.commands, opt.commandsInFlight, warmupCount(opt), opt.dbConns, commandLanes)
	if n := warmupCount(opt); n > 0 {
		if _, err := sys.applyCommands(ctx, pub, buildCommands(n), 0); err != nil {
			return fmt.Errorf("commands warm-up: %w", err)
		}
	}
	res, err := sys.applyCommands(ctx, pub, buildCommands(opt.commands), 0)
	if err != nil {
		return err
	}
	// Then at a steady rate the service keeps up with, so the latency is the
	// service's and not time queued behind a flood.
	var paced commandsResult
	if opt.commandsPacedRate > 0 {
		n := int(opt.commandsPacedRate * opt.duration.Seconds())
		if paced, err = sys.applyCommands(ctx, pub, buildCommands(n), opt.commandsPacedRate); err != nil {
			return err
		}
	}
	printCommandsReport(res, paced, opt.commandsPacedRate, httpRows)
	return nil
}

func warmupCount(opt options) int {
	if opt.warmup <= 0 {
		return 0
	}
	return min(commandsWarmup, opt.commands)
}

// startCommands runs the service's command consumer (and its NATS service)
// until close, and waits for the durable consumer to exist, so the measured
// batch does not wait for it.
func (s *system) startCommands(ctx context.Context) error {
	s.done.Go(func() {
		if err := s.svc.RunCommands(s.runCtx, s.js); err != nil {
			fmt.Fprintln(os.Stderr, "bench: commands consumer:", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.js.Consumer(ctx, events.CommandsStream, events.CommandsConsumer)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("consumer %s on %s never appeared: %w", events.CommandsConsumer, events.CommandsStream, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publisher is an integrator: a connection of its own, publishing commands
// asynchronously with at most inFlight unacknowledged.
type publisher struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func newPublisher(url string, inFlight int) (*publisher, error) {
	nc, err := nats.Connect(url, nats.Name("bench-integrator"))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(inFlight))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &publisher{nc: nc, js: js}, nil
}

func (p *publisher) close() { p.nc.Close() }

// buildCommands encodes n customer.create commands, each with a unique email,
// as an integrator would (CloudEvents NATS binding, its own Nats-Msg-Id).
// They are built before the clock starts: the case measures the service, not
// the CloudEvents encoder of the load generator.
func buildCommands(n int) []*nats.Msg {
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		num := strconv.FormatInt(seq.Add(1), 10)
		data, _ := json.Marshal(createBody{
			Email: "cmd-" + num + "@bench.example", FirstName: "Bench", LastName: "User" + num,
			Metadata: map[string]string{"source": "bench"},
		})
		e := cloudevents.NewEvent()
		e.SetID(uuid.NewString())
		e.SetType(events.CmdCustomerCreate)
		e.SetSource("/bench")
		e.SetTime(time.Now())
		if err := e.SetData(cloudevents.ApplicationJSON, json.RawMessage(data)); err != nil {
			panic(err) // JSON bytes always encode
		}
		msg, err := events.ToMsg(context.Background(), e)
		if err != nil {
			panic(err)
		}
		msg.Subject = events.CommandSubject(events.CmdCustomerCreate)
		msg.Header.Set(nats.MsgIdHdr, uuid.NewString())
		msgs[i] = msg
	}
	return msgs
}

type commandsResult struct {
	n, created, rejected, missing int
	// elapsed runs from the first publish to the last customer.created seen;
	// published from the first publish to the last publish acknowledged.
	elapsed, published time.Duration
	lat                percentiles // publish → customer.created, per command
	dbRate             float64     // commands applied per second by processed_at
}

func (r commandsResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.created) / r.elapsed.Seconds()
}

// applyCommands publishes msgs as fast as the publisher's bound allows (or,
// with rate > 0, that many a second), waits for every command's
// customer.created (or command.rejected) until no new one arrives for
// eventWait, and times them.
func (s *system) applyCommands(ctx context.Context, p *publisher, msgs []*nats.Msg, rate float64) (commandsResult, error) {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.Header.Get("ce-id")
	}
	sent := make([]time.Time, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	before := s.watcher.commandOutcomes()
	start := time.Now()
	for i, m := range msgs {
		if ctx.Err() != nil {
			return commandsResult{}, ctx.Err()
		}
		if rate > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		}
		// Blocks while inFlight publishes await their ack; the stall wait is
		// long, as a busy 2-core machine may ack slowly.
		f, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute))
		if err != nil {
			return commandsResult{}, fmt.Errorf("publish command %d: %w", i, err)
		}
		sent[i], futures[i] = time.Now(), f
	}
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return commandsResult{}, ctx.Err()
	case <-time.After(time.Minute):
		return commandsResult{}, fmt.Errorf("%d publishes never acknowledged", p.js.PublishAsyncPending())
	}
	published := time.Since(start)
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return commandsResult{}, fmt.Errorf("publish command %d: %w", i, err)
		}
	}
	fmt.Fprintf(os.Stderr, "commands: %d published in %s\n", len(msgs), published.Round(time.Millisecond))

	if err := s.watcher.awaitCommands(ctx, ids, before); err != nil {
		return commandsResult{}, err
	}
	res := s.watcher.commandLatencies(ids, sent, start)
	res.published = published
	res.dbRate = s.dbApplyRate(ctx, ids)
	return res, nil
}

// awaitCommands waits until every command has its customer.created or
// command.rejected, or none arrived for eventWait. It polls the count of
// outcomes seen, which was before when the commands were published, and
// checks the ids themselves only once the count says they may all be in:
// looking up every id at each poll would take CPU from what is measured.
func (w *watcher) awaitCommands(ctx context.Context, ids []string, before int) error {
	last, lastChange, lastReport := -1, time.Now(), time.Now()
	for {
		n := w.commandOutcomes() - before
		now := time.Now()
		if n != last {
			last, lastChange = n, now
		}
		if n >= len(ids) && w.commandsSeen(ids) == len(ids) || now.Sub(lastChange) > eventWait {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if now.Sub(lastReport) >= 10*time.Second {
			fmt.Fprintf(os.Stderr, "commands: %d of %d applied\n", n, len(ids))
			lastReport = now
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *watcher) commandOutcomes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.outcomes
}

func (w *watcher) commandsSeen(ids []string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, id := range ids {
		_, created := w.caused[id]
		_, rejected := w.rejected[id]
		if created || rejected {
			n++
		}
	}
	return n
}

func (w *watcher) commandLatencies(ids []string, sent []time.Time, start time.Time) commandsResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	res := commandsResult{n: len(ids)}
	lat := make([]time.Duration, 0, len(ids))
	var lastSeen time.Time
	for i, id := range ids {
		if at, ok := w.caused[id]; ok {
			lat = append(lat, max(at.Sub(sent[i]), 0))
			if at.After(lastSeen) {
				lastSeen = at
			}
			continue
		}
		if _, ok := w.rejected[id]; ok {
			res.rejected++
			continue
		}
		res.missing++
	}
	res.created = len(lat)
	res.lat = summarize(lat)
	if res.created > 0 {
		res.elapsed = lastSeen.Sub(start)
	}
	return res
}

// dbApplyRate is the commands' rate as the database saw them: from the first
// to the last processed_at (each command's transaction start). Set beside the
// observed rate, it tells the consumer's pace from the relay's lag. 0 when
// unknown.
func (s *system) dbApplyRate(ctx context.Context, ids []string) float64 {
	var n int
	var secs float64
	err := s.pool.QueryRow(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM max(processed_at) - min(processed_at)), 0)::float8
		FROM processed_commands WHERE command_id = ANY($1)`, ids).Scan(&n, &secs)
	if err != nil || secs <= 0 {
		return 0
	}
	return float64(n) / secs
}

func printCommandsReport(r, paced commandsResult, pacedRate float64, httpRows []row) {
	fmt.Println("| path | created/s | latency measured | p50 | p95 | p99 |")
	fmt.Println("|---|---:|---|---:|---:|---:|")
	fmt.Printf("| bus commands (%d at once) | %.0f | publish → customer.created | %s | %s | %s |\n",
		r.n, r.rate(), ms(r.lat.p50), ms(r.lat.p95), ms(r.lat.p99))
	if pacedRate > 0 {
		fmt.Printf("| bus commands (%d, paced at %.0f/s) | %.0f | publish → customer.created | %s | %s | %s |\n",
			paced.n, pacedRate, paced.rate(), ms(paced.lat.p50), ms(paced.lat.p95), ms(paced.lat.p99))
	}
	for _, h := range httpRows {
		fmt.Printf("| HTTP POST, concurrency %d | %.0f | call | %s | %s | %s |\n",
			h.concurrency, h.ours.rate, ms(h.ours.call.p50), ms(h.ours.call.p95), ms(h.ours.call.p99))
	}
	fmt.Println()
	fmt.Printf("commands: published (acked) in %s = %.0f/s; %d of %d applied and seen in %s; database applied %.0f/s (first to last processed_at)\n",
		r.published.Round(time.Millisecond), float64(r.n)/r.published.Seconds(), r.created, r.n, r.elapsed.Round(time.Millisecond), r.dbRate)
	fmt.Println("(published at once, publish → customer.created is mostly time queued behind the others; paced, it is the service's own)")
	for _, r := range []commandsResult{r, paced} {
		if r.rejected > 0 || r.missing > 0 {
			fmt.Printf("WARNING!!! of %d commands, %d were rejected and %d had no customer.created within %s of the last one\n",
				r.n, r.rejected, r.missing, eventWait)
		}
	}
	printCommandsAim(r, httpRows)
}

// printCommandsAim compares the bus with the HTTP path's best rate of the run.
func printCommandsAim(r commandsResult, httpRows []row) {
	const label = "aim: bus commands >= the HTTP create rate"
	if len(httpRows) == 0 {
		fmt.Printf("%s: not compared (add create to -cases)\n", label)
		return
	}
	best := slices.MaxFunc(httpRows, func(a, b row) int {
		switch {
		case a.ours.rate < b.ours.rate:
			return -1
		case a.ours.rate > b.ours.rate:
			return 1
		}
		return 0
	})
	ratio := r.rate() / best.ours.rate
	verdict := "MET"
	if ratio < 1 {
		verdict = "NOT MET"
	}
	if r.missing > 0 || r.rejected > 0 {
		verdict += ", but commands went missing or were rejected"
	}
	fmt.Printf("%s (best: %.0f/s at concurrency %d): %s (%.0f%%)\n", label, best.ours.rate, best.concurrency, verdict, 100*ratio)
}
