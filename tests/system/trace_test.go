package system_test

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// span is what the trace tests look at in an exported span.
type span struct {
	service, name, kind, status string
	id, parent                  string
}

func (s span) String() string {
	return fmt.Sprintf("%s %q (%s, id %s, parent %s, status %s)", s.service, s.name, s.kind, s.id, s.parent, s.status)
}

// otlpReceiver is an OTLP/HTTP trace endpoint: it keeps every span it is sent, by trace id.
type otlpReceiver struct {
	mu     sync.Mutex
	traces map[string][]span
	errs   []string
}

func newOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	r := &otlpReceiver{traces: map[string][]span{}}
	srv := httptest.NewServer(http.HandlerFunc(r.export))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func (r *otlpReceiver) export(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	var export collectorpb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &export)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.URL.Path != "/v1/traces" || err != nil {
		r.errs = append(r.errs, fmt.Sprintf("%s %s: %v", req.Method, req.URL.Path, err))
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	for _, rs := range export.ResourceSpans {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				id := hex.EncodeToString(s.TraceId)
				r.traces[id] = append(r.traces[id], span{
					service: service, name: s.Name, id: hex.EncodeToString(s.SpanId), parent: hex.EncodeToString(s.ParentSpanId),
					kind:   strings.TrimPrefix(s.Kind.String(), "SPAN_KIND_"),
					status: strings.TrimPrefix(s.GetStatus().GetCode().String(), "STATUS_CODE_"),
				})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
	w.Write(b)
}

// trace returns the spans received so far for trace id.
func (r *otlpReceiver) trace(id string) []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]span(nil), r.traces[id]...)
}

// traceIDs returns the ids of every trace received.
func (r *otlpReceiver) traceIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.traces))
	for id := range r.traces {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// errors returns the exports the receiver refused.
func (r *otlpReceiver) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// hop is one span a trace must hold, and the span that must be its parent ("" for the
// caller's own span, which the receiver never gets).
type hop struct {
	key            string
	service, name  string
	kind, parentOf string
}

// traceStore is where a test reads the services' spans back: its own receiver, or a Jaeger.
type traceStore interface {
	trace(id string) []span // the spans of trace id found so far
	traceIDs() []string     // what else the store holds, for a failure's message
	errors() []string       // what went wrong receiving or reading spans
}

// waitForTrace waits until trace id holds a span for each hop and checks that each hop's
// parent is the one named, that every span of the trace descends from the caller's span, and
// that no span failed.
func waitForTrace(t *testing.T, r traceStore, id, callerSpan string, hops []hop) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var spans []span
	found := map[string]span{}
	for {
		spans = r.trace(id)
		clear(found)
		for _, h := range hops {
			for _, s := range spans {
				if s.service == h.service && s.name == h.name && s.kind == h.kind {
					found[h.key] = s
				}
			}
		}
		if len(found) == len(hops) {
			break
		}
		if time.Now().After(deadline) {
			var missing []string
			for _, h := range hops {
				if _, ok := found[h.key]; !ok {
					missing = append(missing, h.key)
				}
			}
			t.Fatalf("trace %s lacks %q after 20 s; it holds:\n%s\nother traces: %q, receiver errors: %q", id, missing, list(spans), r.traceIDs(), r.errors())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, h := range hops {
		want := callerSpan
		if h.parentOf != "" {
			want = found[h.parentOf].id
		}
		if got := found[h.key]; got.parent != want {
			t.Errorf("%s: parent %s, want %s (%s)\ntrace:\n%s", h.key, got.parent, want, h.parentOf, list(spans))
		}
	}
	// One connected trace: every span's parent is the caller's span or a span of the trace.
	ids := map[string]bool{callerSpan: true}
	for _, s := range spans {
		ids[s.id] = true
	}
	for _, s := range spans {
		if !ids[s.parent] {
			t.Errorf("span %s hangs off a span the trace does not hold", s)
		}
		if s.status == "ERROR" {
			t.Errorf("span %s failed", s)
		}
	}
}

func list(spans []span) string {
	lines := make([]string, len(spans))
	for i, s := range spans {
		lines[i] = "  " + s.String()
	}
	return strings.Join(lines, "\n")
}

// TestOneTracePerOrder places an order with a traceparent, as a traced client would, with
// the services exporting to a receiver of the test's own: the order's request, its call to
// billing, billing's handling of it, the publish of order.completed and the notification
// service's handling of that event form one trace under the caller's span.
//
// The user service is not on an order's path (an order names its user; nothing asks the
// user service about it), so the registration is traced on its own, and checked too: the
// user's request, its call to billing, billing's handling, the publish of user.created and
// billing's handling of that event.
func TestOneTracePerOrder(t *testing.T) {
	receiver, endpoint := newOTLPReceiver(t)
	checkOneTracePerOrder(t, receiver, endpoint)
}

// TestOneTracePerOrderInJaeger is the same with a real Jaeger (v2, built from the Go module
// proxy by scripts/build-jaeger.sh; make system passes its path in JAEGER_BIN) receiving the
// spans over OTLP, and the traces read back from its query API, as a person would see them.
func TestOneTracePerOrderInJaeger(t *testing.T) {
	jaeger, endpoint := startJaeger(t)
	checkOneTracePerOrder(t, jaeger, endpoint)
}

// checkOneTracePerOrder runs the services exporting to endpoint, registers a user and places
// an order each under a caller's traceparent, and checks both traces in store.
func checkOneTracePerOrder(t *testing.T, store traceStore, endpoint string) {
	s := newSystem(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"})
	s.startAll()

	const userTrace, userCaller = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r := s.call("POST", s.url("user")+"/users", `{"name":"Traced","email":"traced@example.com"}`, "traceparent", "00-"+userTrace+"-"+userCaller+"-01")
	if r.Status != 201 {
		t.Fatalf("create user: %d %s", r.Status, r.Body)
	}
	var u struct{ ID string }
	r.json(t, &u)
	if r := s.call("POST", s.url("billing")+"/billing/deposit", `{"userId":"`+u.ID+`","amount":100}`); r.Status != 200 {
		t.Fatalf("deposit: %d %s", r.Status, r.Body)
	}

	const orderTrace, orderCaller = "5bf92f3577b34da6a3ce929d0e0e4736", "10f067aa0ba902b7"
	if r := s.call("POST", s.url("order")+"/orders", orderBody(u.ID, "40"), "traceparent", "00-"+orderTrace+"-"+orderCaller+"-01"); r.Status != 201 {
		t.Fatalf("place order: %d %s", r.Status, r.Body)
	}

	t.Run("order", func(t *testing.T) {
		waitForTrace(t, store, orderTrace, orderCaller, []hop{
			{key: "order request", service: "order", name: "POST /orders", kind: "SERVER"},
			{key: "call to billing", service: "order", name: "POST", kind: "CLIENT", parentOf: "order request"},
			{key: "billing pay", service: "billing", name: "POST /internal/payments", kind: "SERVER", parentOf: "call to billing"},
			{key: "publish", service: "order", name: "publish order-system.events", kind: "PRODUCER", parentOf: "order request"},
			{key: "notification stored", service: "notification", name: "process notification.orders", kind: "CONSUMER", parentOf: "publish"},
		})
	})
	t.Run("user registration", func(t *testing.T) {
		waitForTrace(t, store, userTrace, userCaller, []hop{
			{key: "user request", service: "user", name: "POST /users", kind: "SERVER"},
			{key: "call to billing", service: "user", name: "PUT", kind: "CLIENT", parentOf: "user request"},
			{key: "account opened", service: "billing", name: "PUT /internal/accounts/:userId", kind: "SERVER", parentOf: "call to billing"},
			{key: "publish", service: "user", name: "publish order-system.events", kind: "PRODUCER", parentOf: "user request"},
			{key: "user.created handled", service: "billing", name: "process billing.users", kind: "CONSUMER", parentOf: "publish"},
		})
	})
}
