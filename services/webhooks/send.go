package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/tracing"
)

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// maxResponseRead bounds how much of an answer is read (and discarded):
// enough to reuse the connection, never a whole download.
const maxResponseRead = 64 << 10

// errForbiddenAddress is an endpoint resolving to an address the guard
// refuses.
var errForbiddenAddress = errors.New("the endpoint resolves to a loopback, private, link-local or metadata address, which deliveries may not reach (WEBHOOKS_ALLOW_PRIVATE_ADDRESSES)")

// sender makes the attempts.
type sender struct {
	client *http.Client
}

func newSender(cfg Config) *sender {
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivateAddresses {
		// Checked on the address being connected to, after DNS: a name
		// that resolves differently the second time gets no further.
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil || forbidden(ip) {
				return errForbiddenAddress
			}
			return nil
		}
	}
	transport := &http.Transport{
		Proxy:             nil, // a proxy would connect for us, past the guard
		DialContext:       dialer.DialContext,
		ForceAttemptHTTP2: true,
		MaxIdleConns:      cfg.Concurrency,
		// Endpoints may share a host; the dispatcher bounds each endpoint.
		MaxIdleConnsPerHost:   cfg.Concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
	}
	return &sender{client: &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		// A redirect is an answer like any other non-2xx: not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// forbidden reports whether deliveries may not reach ip by default.
func forbidden(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() ||
		sharedAddressSpace.Contains(ip) || thisNetwork.Contains(ip) || ip == broadcast
}

var (
	sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10") // carrier NAT; some clouds' metadata
	thisNetwork        = netip.MustParsePrefix("0.0.0.0/8")
	broadcast          = netip.MustParseAddr("255.255.255.255")
)

// attempt is one try of one delivery.
type attempt struct {
	url         string
	contentMode string
	eventID     string
	payload     []byte   // the CloudEvent in JSON
	secrets     []string // each signs: the current one, and during a rotation's grace the previous
}

// result is what an attempt got.
type result struct {
	code    int // the HTTP status; 0 when there was no answer
	latency time.Duration
	err     string // why it failed; empty when delivered
}

func (r result) delivered() bool { return r.err == "" }

// send makes the attempt. Only a 2xx within the timeout delivers.
func (s *sender) send(ctx context.Context, a attempt) (r result) {
	req, err := request(ctx, a, time.Now())
	if err != nil {
		return result{err: err.Error()}
	}
	ctx, span := tracing.Delivering(ctx, a.payload, a.eventID, req.URL.Hostname())
	defer func() {
		if r.code != 0 {
			span.SetAttributes(semconv.HTTPResponseStatusCode(r.code))
		}
		var err error
		if !r.delivered() {
			err = errors.New(r.err)
		}
		tracing.End(span, err)
	}()
	// The receiver continues the event's trace: from this delivery's span
	// when tracing is on, else from the event's own traceparent.
	traceParent := tracing.TraceParent(ctx)
	if traceParent == "" {
		traceParent = events.StoredTraceParent(a.payload)
	}
	if events.ValidTraceParent(traceParent) {
		req.Header.Set("traceparent", traceParent)
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return result{latency: time.Since(start), err: describe(err)}
	}
	defer resp.Body.Close()
	var head bytes.Buffer
	_, _ = io.Copy(&head, io.LimitReader(resp.Body, maxResponseRead))
	r = result{code: resp.StatusCode, latency: time.Since(start)}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		r.err = "answered " + resp.Status
		if snippet := bounded(head.Bytes(), 200); snippet != "" {
			r.err += ": " + snippet
		}
	}
	return r
}

// request is the attempt's HTTP request, signed at now.
func request(ctx context.Context, a attempt, now time.Time) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, nil)
	if err != nil {
		return nil, fmt.Errorf("the endpoint's URL: %w", err)
	}
	body := a.payload
	if a.contentMode == "binary" {
		// The event's data as the body, its attributes as ce- headers.
		var e cloudevents.Event
		if err := json.Unmarshal(a.payload, &e); err != nil {
			return nil, fmt.Errorf("the stored event: %w", err)
		}
		if err := cehttp.WriteRequest(ctx, binding.ToMessage(&e), req); err != nil {
			return nil, fmt.Errorf("the event in binary mode: %w", err)
		}
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
	} else {
		req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }

	var sigs []string
	for _, secret := range a.secrets {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			return nil, fmt.Errorf("the endpoint's secret: %w", err)
		}
		sig, err := wh.Sign(a.eventID, now, body)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig)
	}
	req.Header.Set(HeaderID, a.eventID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, strings.Join(sigs, " "))
	req.Header.Set("User-Agent", "customerbus-webhooks/1")
	return req, nil
}

// describe says why a request got no answer, without the URL again.
func describe(err error) string {
	if errors.Is(err, errForbiddenAddress) {
		return errForbiddenAddress.Error()
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return "no answer within WEBHOOKS_TIMEOUT"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Error()
	}
	return err.Error()
}

// bounded is at most n bytes of b as valid UTF-8 on one line.
func bounded(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "")), " ")
}
