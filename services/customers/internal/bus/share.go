package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// Instances share the work of the bus commands: one instance at a time
// reads them (the pinned consumer) and keeps their order on its lanes, and
// each lane's batch is applied by whichever instance the queue group on
// applySubject picks, itself included. A lane sends its next batch only
// when the last one's answer has come, so one customer's commands are
// still applied one after another, in the order they were published.
const (
	applySubject = "customerbus.internal.commands.apply"
	applyQueue   = "customers"
)

// applyTimeout is how long a lane waits for the answer to its batch: an
// instance killed while applying it holds the lane up that long, and
// RetryDelay more.
const applyTimeout = 2 * time.Second

// applyRequest is a lane's batch sent to the instance that applies it.
type applyRequest struct {
	Commands []wireCommand `json:"commands"`
}

// wireCommand is a command's message as it crosses between instances, as
// it was stored: the applying instance reads it as the reading one did.
// Its subject and header go as bytes, which JSON carries as they are: it
// would replace invalid UTF-8 in strings, and the applying instance would
// apply a command the reading one refused.
type wireCommand struct {
	Subject []byte       `json:"subject"`
	Header  []wireHeader `json:"header"`
	Data    []byte       `json:"data"`
	Seq     uint64       `json:"seq"`
	Key     string       `json:"key"`
}

type wireHeader struct {
	Name   []byte   `json:"name"`
	Values [][]byte `json:"values"`
}

func toWire(c command) wireCommand {
	w := wireCommand{Subject: []byte(c.msg.Subject()), Data: c.msg.Data(), Seq: c.seq, Key: c.key}
	for name, values := range c.msg.Headers() {
		h := wireHeader{Name: []byte(name)}
		for _, v := range values {
			h.Values = append(h.Values, []byte(v))
		}
		w.Header = append(w.Header, h)
	}
	return w
}

func (w wireCommand) msg() *nats.Msg {
	m := &nats.Msg{Subject: string(w.Subject), Header: nats.Header{}, Data: w.Data}
	for _, h := range w.Header {
		for _, v := range h.Values {
			m.Header[string(h.Name)] = append(m.Header[string(h.Name)], string(v))
		}
	}
	return m
}

// applyReply answers an applyRequest: for each command, in order, the
// reason to dead-letter it ("" when it was applied or rejected), or an
// error on the applying instance's side (nothing was kept: send it again).
type applyReply struct {
	DeadLetter []string `json:"dead_letter,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// serveApply applies the batches lanes send, until ctx ends. Each runs at
// once on a goroutine of its own; the senders' lanes bound how many run.
func (b *Bus) serveApply(ctx context.Context, nc *nats.Conn) error {
	sub, err := nc.QueueSubscribe(applySubject, applyQueue, func(m *nats.Msg) {
		go b.handleApply(ctx, m)
	})
	if err != nil {
		return fmt.Errorf("bus: serve %s: %w", applySubject, err)
	}
	<-ctx.Done()
	if err := sub.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return err
	}
	return nil
}

func (b *Bus) handleApply(ctx context.Context, m *nats.Msg) {
	var req applyRequest
	reply := applyReply{}
	err := json.Unmarshal(m.Data, &req)
	if err != nil {
		reply.Error = fmt.Sprintf("bad request: %v", err)
	} else {
		cmds := make([]command, len(req.Commands))
		for i, w := range req.Commands {
			if cmds[i], err = readCommand(w.msg()); err != nil {
				break // the reading instance could read it: a bug, not poison
			}
			cmds[i].seq, cmds[i].key = w.Seq, w.Key
		}
		if err == nil {
			reply.DeadLetter, err = b.applyHere(ctx, cmds)
		}
		if err != nil {
			reply.Error = err.Error()
		}
	}
	body, _ := json.Marshal(reply)
	if err := m.Respond(body); err != nil {
		b.log.Warn("bus: answer to a batch lost", zap.Error(err))
	}
}

// applyShared has a batch applied by some instance (see applySubject) and
// returns, for each command, the reason to dead-letter it or "".
func (b *Bus) applyShared(ctx context.Context, nc *nats.Conn, batch []command) ([]string, error) {
	req := applyRequest{Commands: make([]wireCommand, len(batch))}
	for i, c := range batch {
		req.Commands[i] = toWire(c)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > nc.MaxPayload() {
		return b.applyHere(ctx, batch) // large commands: too big to send on
	}
	// An instance that stops mid-batch rolls it back, one killed never
	// answers: past applyTimeout the batch is sent again (the keep-alive
	// holds it meanwhile), and a command applied meanwhile is recognised by
	// its id.
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, applySubject, body)
	if err != nil {
		return nil, fmt.Errorf("bus: apply a batch: %w", err)
	}
	var reply applyReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return nil, fmt.Errorf("bus: apply a batch: bad answer: %w", err)
	}
	if reply.Error != "" {
		return nil, errors.New(reply.Error)
	}
	if len(reply.DeadLetter) != len(batch) {
		return nil, fmt.Errorf("bus: apply a batch: %d answers for %d commands", len(reply.DeadLetter), len(batch))
	}
	return reply.DeadLetter, nil
}

// applyHere applies a batch on this instance and returns, for each command,
// the reason to dead-letter it or "".
func (b *Bus) applyHere(ctx context.Context, batch []command) ([]string, error) {
	outs, err := b.applyCommands(ctx, batch)
	if err != nil {
		return nil, err
	}
	deadLetter := make([]string, len(outs))
	for i, o := range outs {
		var poison *poisonError
		if errors.As(o.poison, &poison) {
			deadLetter[i] = poison.reason
		}
	}
	return deadLetter, nil
}
