package tracecheck_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/order-system/order-system/tools/apicheck/tracecheck"
)

const caller = "10f067aa0ba902b7"

// store is a Store holding fixed traces.
type store map[string][]tracecheck.Span

func (s store) Trace(id string) []tracecheck.Span { return s[id] }
func (s store) TraceIDs() []string                { return nil }
func (s store) Errors() []string                  { return nil }

// orderTrace is an order's trace as the services export it.
func orderTrace() []tracecheck.Span {
	return []tracecheck.Span{
		{Service: "order", Name: "POST /orders", Kind: "SERVER", Status: "UNSET", ID: "a1", Parent: caller},
		{Service: "order", Name: "POST", Kind: "CLIENT", Status: "UNSET", ID: "a2", Parent: "a1"},
		{Service: "billing", Name: "POST /internal/payments", Kind: "SERVER", Status: "UNSET", ID: "b1", Parent: "a2"},
		{Service: "billing", Name: "ledger pay", Kind: "INTERNAL", Status: "UNSET", ID: "b2", Parent: "b1"},
		{Service: "order", Name: "publish order-system.events", Kind: "PRODUCER", Status: "UNSET", ID: "a3", Parent: "a1"},
		{Service: "notification", Name: "process notification.orders", Kind: "CONSUMER", Status: "UNSET", ID: "n1", Parent: "a3"},
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func([]tracecheck.Span) []tracecheck.Span
		want   []string // a part of each problem, in order
	}{
		{"a whole trace", func(s []tracecheck.Span) []tracecheck.Span { return s }, nil},
		{"the notification never came", func(s []tracecheck.Span) []tracecheck.Span { return s[:5] }, []string{`lacks ["notification stored"]`}},
		{"billing's span under the order's request", func(s []tracecheck.Span) []tracecheck.Span {
			s[2].Parent = "a1"
			return s
		}, []string{"billing pay: parent a1, want a2 (call to billing)"}},
		{"the request not under the caller's span", func(s []tracecheck.Span) []tracecheck.Span {
			s[0].Parent = "ffffffffffffffff"
			return s
		}, []string{"order request: parent ffffffffffffffff, want " + caller + " (the caller's span)", `"POST /orders" (SERVER, id a1, parent ffffffffffffffff, status UNSET) hangs off`}},
		{"a span of a trace of its own", func(s []tracecheck.Span) []tracecheck.Span {
			s[3].Parent = "c0"
			return s
		}, []string{`"ledger pay" (INTERNAL, id b2, parent c0, status UNSET) hangs off a span the trace does not hold`}},
		{"a failed span", func(s []tracecheck.Span) []tracecheck.Span {
			s[3].Status = "ERROR"
			return s
		}, []string{`"ledger pay" (INTERNAL, id b2, parent b1, status ERROR) failed`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := store{"t1": tt.change(orderTrace())}
			spans, problems := tracecheck.Wait(s, "t1", caller, tracecheck.Order, 200*time.Millisecond)
			if len(spans) != len(s["t1"]) {
				t.Errorf("%d spans returned, want the trace's %d", len(spans), len(s["t1"]))
			}
			if len(problems) != len(tt.want) {
				t.Fatalf("problems %q, want %d: %q", problems, len(tt.want), tt.want)
			}
			for i, want := range tt.want {
				if !strings.Contains(problems[i], want) {
					t.Errorf("problem %d %q, want it to say %q", i, problems[i], want)
				}
			}
		})
	}
}

// TestWaitWaits: spans that arrive while it waits count.
func TestWaitWaits(t *testing.T) {
	t.Parallel()
	ch := make(chan []tracecheck.Span, 1)
	s := &later{ready: ch}
	go func() {
		time.Sleep(200 * time.Millisecond)
		ch <- orderTrace()
	}()
	if _, problems := tracecheck.Wait(s, "t1", caller, tracecheck.Order, 5*time.Second); problems != nil {
		t.Errorf("problems %q, want none once the spans came", problems)
	}
}

type later struct {
	ready chan []tracecheck.Span
	spans []tracecheck.Span
}

func (l *later) Trace(string) []tracecheck.Span {
	select {
	case l.spans = <-l.ready:
	default:
	}
	return l.spans
}
func (l *later) TraceIDs() []string { return nil }
func (l *later) Errors() []string   { return nil }

// jaegerAnswer is GET /api/traces/{id} of Jaeger v2's query API for a part of an order's trace
// (its shape, trimmed to the fields the package reads and a few it does not).
const jaegerAnswer = `{"data": [{"traceID": "5bf92f3577b34da6a3ce929d0e0e4736", "spans": [
  {"traceID": "5bf92f3577b34da6a3ce929d0e0e4736", "spanID": "a1", "operationName": "POST /orders",
   "references": [{"refType": "CHILD_OF", "traceID": "5bf92f3577b34da6a3ce929d0e0e4736", "spanID": "10f067aa0ba902b7"}],
   "startTime": 1760000000000000, "duration": 9000,
   "tags": [{"key": "http.request.method", "type": "string", "value": "POST"}, {"key": "span.kind", "type": "string", "value": "server"}],
   "processID": "p1"},
  {"traceID": "5bf92f3577b34da6a3ce929d0e0e4736", "spanID": "b1", "operationName": "POST /internal/payments",
   "references": [{"refType": "CHILD_OF", "traceID": "5bf92f3577b34da6a3ce929d0e0e4736", "spanID": "a2"}],
   "tags": [{"key": "span.kind", "type": "string", "value": "server"}, {"key": "otel.status_code", "type": "string", "value": "ERROR"}, {"key": "http.response.status_code", "type": "int64", "value": 500}],
   "processID": "p2"}],
  "processes": {"p1": {"serviceName": "order", "tags": []}, "p2": {"serviceName": "billing", "tags": []}}}]}`

func TestJaeger(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/services":
			w.Write([]byte(`{"data": ["order", "billing"]}`))
		case "/api/traces/5bf92f3577b34da6a3ce929d0e0e4736":
			w.Write([]byte(jaegerAnswer))
		case "/api/traces/broken":
			http.Error(w, "storage down", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	j := &tracecheck.Jaeger{URL: srv.URL + "/"}
	if err := j.Ready(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	got := j.Trace("5bf92f3577b34da6a3ce929d0e0e4736")
	want := []tracecheck.Span{
		{Service: "order", Name: "POST /orders", Kind: "SERVER", Status: "UNSET", ID: "a1", Parent: caller},
		{Service: "billing", Name: "POST /internal/payments", Kind: "SERVER", Status: "ERROR", ID: "b1", Parent: "a2"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("spans\n%s\nwant\n%s", tracecheck.List(got), tracecheck.List(want))
	}
	if spans := j.Trace("4bf92f3577b34da6a3ce929d0e0e4736"); spans != nil || j.Errors() != nil {
		t.Errorf("a trace not there yet: spans %v, errors %q, want none of either", spans, j.Errors())
	}
	if spans := j.Trace("broken"); spans != nil || len(j.Errors()) != 1 || !strings.Contains(j.Errors()[0], "500") {
		t.Errorf("a failing query API: spans %v, errors %q, want one error", spans, j.Errors())
	}
	if ids := j.TraceIDs(); !slices.Equal(ids, []string{"services seen: order, billing"}) {
		t.Errorf("TraceIDs %q", ids)
	}
}

func TestJaegerNotReady(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	j := &tracecheck.Jaeger{URL: srv.URL}
	if err := j.Ready(context.Background(), 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Ready on a server that is not Jaeger: %v, want a 404 error", err)
	}
}
