// Package httpclient builds the HTTP client services use to call each other: pooled
// keep-alive connections, a bounded timeout, the request id carried along, and a client span
// for each call whose W3C trace context goes with it.
package httpclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/order-system/order-system/pkg/logger"
)

// New returns a client whose every call ends within timeout. Idle connections are kept per
// host up to the concurrency a service sees, so calls do not pay a TCP handshake.
func New(timeout time.Duration) *http.Client {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Timeout: timeout, Transport: tracingTransport{requestIDTransport{transport}}}
}

type requestIDTransport struct{ next http.RoundTripper }

func (t requestIDTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if id := logger.RequestID(req.Context()); id != "" && req.Header.Get("X-Request-ID") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("X-Request-ID", id)
	}
	return t.next.RoundTrip(req)
}

// DoJSON sends in (if not nil) as a JSON body and returns the status and the response body.
// Any transport failure is returned as an error; every status is returned to the caller.
//
// A non-empty idempotencyKey is sent as Idempotency-Key, for calls the server applies once
// per key whatever the method. The header is also what lets Go's transport send a POST again
// on a new connection when a kept-alive one was closed by the server before it answered
// (an instance shutting down in a rollout), instead of failing the call.
func DoJSON(ctx context.Context, c *http.Client, method, url, idempotencyKey string, in any) (int, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, fmt.Errorf("marshal request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, nil, fmt.Errorf("new request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, out, nil
}
