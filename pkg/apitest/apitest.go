// Package apitest serves an HTTP API for a test and sends it requests: the one helper the
// services' API tests share, so that each test file shows its API and its assertions, not
// its plumbing.
package apitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Client sends requests to one server.
type Client struct {
	// URL is the server's base URL; a request's path is appended to it.
	URL string
}

// Serve starts h on a loopback port for the rest of the test and returns a client of it.
func Serve(t testing.TB, h http.Handler) Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return Client{URL: srv.URL}
}

// Response is an answer read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Text is the body without its trailing newline.
func (r Response) Text() string { return strings.TrimSpace(string(r.Body)) }

// String shows the status and the body, for failure messages.
func (r Response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Text()) }

// JSON decodes the body into v and ends the test when it is not that JSON.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("answer %s: %v", r, err)
	}
}

// Do sends one request (body may be empty; header is name, value, name, value…) and reads the
// whole answer. It takes no *testing.T, so the goroutines a test starts may call it.
func (c Client) Do(method, path, body string, header ...string) (Response, error) {
	if len(header)%2 != 0 {
		return Response{}, fmt.Errorf("header %q: want name, value pairs", header)
	}
	req, err := http.NewRequest(method, c.URL+path, strings.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return Send(req)
}

// Send sends a request the test built itself (a chunked body, say) and reads the whole answer.
func Send(req *http.Request) (Response, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: read the answer: %w", req.Method, req.URL.Path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Call is Do on the test's own goroutine: a request that gets no answer ends the test.
func (c Client) Call(t testing.TB, method, path, body string, header ...string) Response {
	t.Helper()
	r, err := c.Do(method, path, body, header...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
