package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// RPC names of the NATS service.
const (
	RPCServiceName   = "customerbus"
	RPCSubjectPrefix = "customerbus.rpc."
)

// serveRPC serves every command as a request on customerbus.rpc.<command>
// (nats.go micro service "customerbus", visible to `nats micro ls`): the
// request is the command's CloudEvent, the reply the resource, or an error
// reply (Nats-Service-Error-Code = the HTTP status) with the problem. It is
// the same application as the bus consumer's, with the same once-only
// record: a repeated request gets the first reply.
func (b *Bus) serveRPC(ctx context.Context, nc *nats.Conn) error {
	srv, err := micro.AddService(nc, micro.Config{
		Name: RPCServiceName, Version: "1.0.0",
		Description: "customerbus commands as requests; the request is the command's CloudEvent",
	})
	if err != nil {
		return fmt.Errorf("bus: rpc service: %w", err)
	}
	for _, cmd := range events.Commands {
		name := strings.NewReplacer(".", "_").Replace(cmd)
		handler := micro.HandlerFunc(func(r micro.Request) { b.handleRPC(ctx, cmd, r) })
		if err := srv.AddEndpoint(name, handler, micro.WithEndpointSubject(RPCSubjectPrefix+cmd)); err != nil {
			return fmt.Errorf("bus: rpc endpoint %s: %w", cmd, err)
		}
	}
	<-ctx.Done()
	return srv.Stop()
}

var (
	jsonHeader    = micro.WithHeaders(micro.Headers{"Content-Type": []string{"application/json"}})
	problemHeader = micro.WithHeaders(micro.Headers{"Content-Type": []string{"application/problem+json"}})
)

func (b *Bus) handleRPC(ctx context.Context, cmd string, r micro.Request) {
	e, err := readEvent(&nats.Msg{Subject: r.Subject(), Header: nats.Header(r.Headers()), Data: r.Data()})
	if err == nil && e.Type() != cmd {
		err = fmt.Errorf("the CloudEvent's type is %q; this endpoint takes %q", e.Type(), cmd)
	}
	if err != nil {
		p := problem.For(customer.FieldErr("", customer.CodeMalformed, "%v", err))
		body, _ := json.Marshal(p)
		_ = r.Error(strconv.Itoa(p.Status), err.Error(), body, problemHeader)
		return
	}
	out, err := b.applyCommand(ctx, command{event: e, sender: requester(r.Headers()), subjectOK: true})
	var poison *poisonError
	if err != nil && !errors.As(err, &poison) {
		b.log.Error("bus: rpc command failed", zap.String("command_id", e.ID()), zap.Error(err))
		_ = r.Error("500", "the command failed on the server's side; retry with the same id", nil)
		return
	}
	if !out.Rejected {
		_ = r.Respond(out.Reply, jsonHeader)
		return
	}
	var p problem.Details
	_ = json.Unmarshal(out.Reply, &p)
	_ = r.Error(strconv.Itoa(p.Status), p.Title, out.Reply, problemHeader)
}

// requester is the account of a request that came from another NATS
// account: the server sets Nats-Request-Info on a request crossing an
// import, replacing any the client set, so it names the integrator's
// account. A request from the service's own account has none.
func requester(h micro.Headers) string {
	var info struct {
		Account string `json:"acc"`
	}
	if err := json.Unmarshal([]byte(nats.Header(h).Get("Nats-Request-Info")), &info); err != nil {
		return ""
	}
	return info.Account
}
