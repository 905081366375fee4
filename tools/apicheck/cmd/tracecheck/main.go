// Command tracecheck checks that a running system's traces reach its Jaeger whole: through
// the API at -base-url (the gateway) it registers a user, tops up their account and places an
// order, the registration and the order each under a traceparent of its own, as a traced
// client would send them, then reads both traces back from Jaeger's query API (-jaeger) and
// checks them (package tracecheck): the order's request, its call to billing, billing's
// handling of the payment, the publish of order.completed and the notification service's
// handling of it, all under the caller's span and none failed; the same for the registration
// and user.created. It exits 1 saying what is missing or wrong.
//
//	tracecheck -base-url http://127.0.0.1:8000 -jaeger http://127.0.0.1:16686
//
// The services must export their spans to that Jaeger (OTEL_EXPORTER_OTLP_ENDPOINT) and sign-in
// must be off.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/order-system/order-system/tools/apicheck/tracecheck"
)

func main() {
	base := flag.String("base-url", "http://127.0.0.1:8000", "the system's API (the gateway)")
	jaeger := flag.String("jaeger", "http://127.0.0.1:16686", "the Jaeger query service (its UI's address)")
	timeout := flag.Duration("timeout", 30*time.Second, "how long the spans may take to reach Jaeger (the services send them every 5 s)")
	flag.Parse()
	if err := run(context.Background(), strings.TrimRight(*base, "/"), *jaeger, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "tracecheck:", err)
		os.Exit(1)
	}
}

// traced is a request's trace context, as a traced client makes it.
type traced struct{ trace, span string }

func newTraced() traced { return traced{trace: randomHex(16), span: randomHex(8)} }

func (t traced) header() string { return "00-" + t.trace + "-" + t.span + "-01" }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func run(ctx context.Context, base, jaegerURL string, timeout time.Duration) error {
	j := &tracecheck.Jaeger{URL: jaegerURL}
	if err := j.Ready(ctx, 30*time.Second); err != nil {
		return err
	}

	registration, order := newTraced(), newTraced()
	var user struct{ ID string }
	email := "traced-" + randomHex(4) + "@example.com"
	if err := call(ctx, base+"/users", registration, http.StatusCreated, `{"name":"Traced","email":"`+email+`"}`, &user); err != nil {
		return fmt.Errorf("register a user: %w", err)
	}
	if err := call(ctx, base+"/billing/deposit", traced{}, http.StatusOK, `{"userId":"`+user.ID+`","amount":100}`, nil); err != nil {
		return fmt.Errorf("top up: %w", err)
	}
	var placed struct{ ID, Status string }
	if err := call(ctx, base+"/orders", order, http.StatusCreated, `{"userId":"`+user.ID+`","email":"`+email+`","price":40}`, &placed); err != nil {
		return fmt.Errorf("place an order: %w", err)
	}
	fmt.Printf("tracecheck: order %s %s in trace %s, user %s registered in trace %s\n", placed.ID, placed.Status, order.trace, user.ID, registration.trace)

	failed := 0
	for _, c := range []struct {
		what string
		t    traced
		hops []tracecheck.Hop
	}{{"the order", order, tracecheck.Order}, {"the registration", registration, tracecheck.Registration}} {
		spans, problems := tracecheck.Wait(j, c.t.trace, c.t.span, c.hops, timeout)
		if len(problems) > 0 {
			failed++
			fmt.Printf("FAILED trace of %s:\n%s\n", c.what, strings.Join(problems, "\n"))
			continue
		}
		fmt.Printf("tracecheck: trace of %s in Jaeger, %d spans:\n%s\n", c.what, len(spans), tracecheck.List(spans))
	}
	if failed > 0 {
		return fmt.Errorf("%d of 2 traces are not whole in Jaeger at %s", failed, jaegerURL)
	}
	return nil
}

// call POSTs body to url under t's traceparent (none for the zero traced), requires status,
// and decodes the answer into v unless it is nil.
func call(ctx context.Context, url string, t traced, status int, body string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if t.trace != "" {
		req.Header.Set("traceparent", t.header())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != status {
		return fmt.Errorf("POST %s: %s, want %d: %.300s", url, resp.Status, status, answer)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(answer, v)
}
