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

	"github.com/order-system/order-system/tools/apicheck/tracecheck"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace endpoint: it keeps every span it is sent, by trace id
// (a tracecheck.Store).
type otlpReceiver struct {
	mu     sync.Mutex
	traces map[string][]tracecheck.Span
	errs   []string
}

func newOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	r := &otlpReceiver{traces: map[string][]tracecheck.Span{}}
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
				r.traces[id] = append(r.traces[id], tracecheck.Span{
					Service: service, Name: s.Name, ID: hex.EncodeToString(s.SpanId), Parent: hex.EncodeToString(s.ParentSpanId),
					Kind:   strings.TrimPrefix(s.Kind.String(), "SPAN_KIND_"),
					Status: strings.TrimPrefix(s.GetStatus().GetCode().String(), "STATUS_CODE_"),
				})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
	w.Write(b)
}

// Trace returns the spans received so far for trace id.
func (r *otlpReceiver) Trace(id string) []tracecheck.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tracecheck.Span(nil), r.traces[id]...)
}

// TraceIDs returns the ids of every trace received.
func (r *otlpReceiver) TraceIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.traces))
	for id := range r.traces {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Errors returns the exports the receiver refused.
func (r *otlpReceiver) Errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// waitForTrace waits until trace id holds a span for each hop, and checks the trace (see
// tracecheck.Wait).
func waitForTrace(t *testing.T, store tracecheck.Store, id, callerSpan string, hops []tracecheck.Hop) {
	t.Helper()
	if _, problems := tracecheck.Wait(store, id, callerSpan, hops, 20*time.Second); len(problems) > 0 {
		t.Fatal(strings.Join(problems, "\n"))
	}
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
func checkOneTracePerOrder(t *testing.T, store tracecheck.Store, endpoint string) {
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

	t.Run("order", func(t *testing.T) { waitForTrace(t, store, orderTrace, orderCaller, tracecheck.Order) })
	t.Run("user registration", func(t *testing.T) { waitForTrace(t, store, userTrace, userCaller, tracecheck.Registration) })
}
