package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// client calls the command service the way an app would: JSON over keep-alive
// HTTP connections, one shared client for every worker.
type client struct {
	baseURL, token string
	http           *http.Client
}

// newClient keeps at least one idle connection per worker, so no call pays for
// a new TCP connection after the warm-up (the default keeps only 2 per host).
func newClient(baseURL, token string, maxConcurrency int) *client {
	idle := max(maxConcurrency, 2)
	return &client{
		baseURL: baseURL,
		token:   token,
		http: &http.Client{
			Transport: &http.Transport{MaxIdleConns: idle, MaxIdleConnsPerHost: idle, IdleConnTimeout: time.Minute},
			Timeout:   30 * time.Second,
		},
	}
}

type createBody struct {
	Email      string            `json:"email"`
	FirstName  string            `json:"first_name"`
	LastName   string            `json:"last_name"`
	Metadata   map[string]string `json:"metadata"`
	Attributes map[string]any    `json:"attributes,omitempty"`
}

// call is one successful create.
type call struct {
	id      string
	done    time.Time // response read: the transaction has committed
	latency time.Duration
}

// create POSTs customer number n and times it from send to response read.
func (c *client) create(n int64) (call, error) { return c.createWith(n, nil) }

// createWithAttributes is create with values of the bench's three indexed
// attributes (see defineBenchAttributes).
func (c *client) createWithAttributes(n int64) (call, error) {
	return c.createWith(n, map[string]any{"tier": "silver", "points": n % 10_000, "dob": "1990-04-01"})
}

func (c *client) createWith(n int64, attributes map[string]any) (call, error) {
	num := strconv.FormatInt(n, 10)
	body, err := json.Marshal(createBody{
		Email: "bench-" + num + "@bench.example", FirstName: "Bench", LastName: "User" + num,
		Metadata: map[string]string{"source": "bench"}, Attributes: attributes,
	})
	if err != nil {
		return call{}, err
	}
	req, err := http.NewRequest(http.MethodPost, c.baseURL+"/v1/customers", bytes.NewReader(body))
	if err != nil {
		return call{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return call{}, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	done := time.Now()
	if err != nil {
		return call{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		return call{}, fmt.Errorf("create: status %d: %s", resp.StatusCode, raw)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.ID == "" {
		return call{}, fmt.Errorf("create: no id in %s: %v", raw, err)
	}
	return call{id: out.ID, done: done, latency: done.Sub(start)}, nil
}

// listPage is what the search case reads of a list response.
type listPage struct {
	Customers      []json.RawMessage `json:"customers"`
	Count          *int64            `json:"count"`
	CountPrecision *string           `json:"count_precision"`
	NextCursor     *string           `json:"next_cursor"`
}

// list GETs one page of customers and times it from send to response read;
// decoding the page is not timed, as for create.
func (c *client) list(ctx context.Context, qs url.Values) (listPage, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/v1/customers?"+qs.Encode(), nil)
	if err != nil {
		return listPage{}, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return listPage{}, 0, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	latency := time.Since(start)
	if err != nil {
		return listPage{}, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return listPage{}, 0, fmt.Errorf("list %s: status %d: %s", qs.Encode(), resp.StatusCode, raw)
	}
	var page listPage
	if err := json.Unmarshal(raw, &page); err != nil {
		return listPage{}, 0, fmt.Errorf("list: %w", err)
	}
	return page, latency, nil
}
