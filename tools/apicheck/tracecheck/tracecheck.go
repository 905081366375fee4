// Package tracecheck checks that the spans of one request form the trace order-system
// promises: every hop of the request (the service's own span, its call to billing, billing's
// handling, the publish of the event and its consumer's handling) under the span it follows,
// all of them under the caller's span, none failed.
//
// The spans come from a Store: Jaeger's query API (Jaeger, as a person would see them), or
// any receiver of the services' OTLP exports. The system tests check both with it
// (tests/system), and cmd/tracecheck checks a running system through its gateway and Jaeger
// (make compose-test).
package tracecheck

import (
	"fmt"
	"strings"
	"time"
)

// Span is what the checks look at in a span.
type Span struct {
	Service, Name, Kind, Status string // Kind as OTLP names it (SERVER, CLIENT, ...); Status UNSET, OK or ERROR
	ID, Parent                  string // hexadecimal
}

func (s Span) String() string {
	return fmt.Sprintf("%s %q (%s, id %s, parent %s, status %s)", s.Service, s.Name, s.Kind, s.ID, s.Parent, s.Status)
}

// Hop is one span a trace must hold, and the hop whose span must be its parent ("" for the
// caller's own span, which no store holds).
type Hop struct {
	Key           string
	Service, Name string
	Kind          string
	ParentOf      string
}

// Order is an order's trace: its request, its call to billing, billing's handling of the
// payment, the publish of order.completed and the notification service's handling of it.
var Order = []Hop{
	{Key: "order request", Service: "order", Name: "POST /orders", Kind: "SERVER"},
	{Key: "call to billing", Service: "order", Name: "POST", Kind: "CLIENT", ParentOf: "order request"},
	{Key: "billing pay", Service: "billing", Name: "POST /internal/payments", Kind: "SERVER", ParentOf: "call to billing"},
	{Key: "publish", Service: "order", Name: "publish order-system.events", Kind: "PRODUCER", ParentOf: "order request"},
	{Key: "notification stored", Service: "notification", Name: "process notification.orders", Kind: "CONSUMER", ParentOf: "publish"},
}

// Registration is a user's registration: its request, its call to billing, billing opening
// the account, the publish of user.created and billing's handling of that event.
var Registration = []Hop{
	{Key: "user request", Service: "user", Name: "POST /users", Kind: "SERVER"},
	{Key: "call to billing", Service: "user", Name: "PUT", Kind: "CLIENT", ParentOf: "user request"},
	{Key: "account opened", Service: "billing", Name: "PUT /internal/accounts/:userId", Kind: "SERVER", ParentOf: "call to billing"},
	{Key: "publish", Service: "user", Name: "publish order-system.events", Kind: "PRODUCER", ParentOf: "user request"},
	{Key: "user.created handled", Service: "billing", Name: "process billing.users", Kind: "CONSUMER", ParentOf: "publish"},
}

// Store is where the services' spans are read back.
type Store interface {
	Trace(id string) []Span // the spans of trace id found so far
	TraceIDs() []string     // what else the store holds, for a failure's message
	Errors() []string       // what went wrong receiving or reading spans
}

// Wait waits up to timeout until trace id in store holds a span for each hop, then checks
// that each hop's parent is the span named, that every span of the trace descends from the
// caller's span and that none failed. It returns the trace's spans and what is wrong with
// it, nothing when all is well.
func Wait(store Store, id, callerSpan string, hops []Hop, timeout time.Duration) ([]Span, []string) {
	deadline := time.Now().Add(timeout)
	for {
		spans := store.Trace(id)
		found, missing := match(spans, hops)
		if len(missing) == 0 {
			return spans, check(spans, found, callerSpan, hops)
		}
		if time.Now().After(deadline) {
			return spans, []string{fmt.Sprintf("trace %s lacks %q after %s; it holds:\n%s\nother traces: %q, store errors: %q",
				id, missing, timeout, List(spans), store.TraceIDs(), store.Errors())}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// match finds the span of each hop, and names the hops without one.
func match(spans []Span, hops []Hop) (found map[string]Span, missing []string) {
	found = map[string]Span{}
	for _, h := range hops {
		for _, s := range spans {
			if s.Service == h.Service && s.Name == h.Name && s.Kind == h.Kind {
				found[h.Key] = s
			}
		}
		if _, ok := found[h.Key]; !ok {
			missing = append(missing, h.Key)
		}
	}
	return found, missing
}

func check(spans []Span, found map[string]Span, callerSpan string, hops []Hop) []string {
	var problems []string
	for _, h := range hops {
		want := callerSpan
		if h.ParentOf != "" {
			want = found[h.ParentOf].ID
		}
		if got := found[h.Key]; got.Parent != want {
			problems = append(problems, fmt.Sprintf("%s: parent %s, want %s (%s)\ntrace:\n%s", h.Key, got.Parent, want, parentName(h), List(spans)))
		}
	}
	// One connected trace: every span's parent is the caller's span or a span of the trace.
	ids := map[string]bool{callerSpan: true}
	for _, s := range spans {
		ids[s.ID] = true
	}
	for _, s := range spans {
		if !ids[s.Parent] {
			problems = append(problems, fmt.Sprintf("span %s hangs off a span the trace does not hold", s))
		}
		if s.Status == "ERROR" {
			problems = append(problems, fmt.Sprintf("span %s failed", s))
		}
	}
	return problems
}

func parentName(h Hop) string {
	if h.ParentOf == "" {
		return "the caller's span"
	}
	return h.ParentOf
}

// List writes spans one a line, for a message.
func List(spans []Span) string {
	lines := make([]string, len(spans))
	for i, s := range spans {
		lines[i] = "  " + s.String()
	}
	return strings.Join(lines, "\n")
}
