package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/order-system/order-system/tools/loadgen/result"
)

func TestTimelineSeries(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tl := newTimeline(start)
	// Second 0: 100 completed orders of 1..100 ms. Second 1: nothing. Second 2: one 503
	// and one completed order of 7 ms, whose notification came 40 ms later.
	for i := 1; i <= 100; i++ {
		at := start.Add(time.Duration(i) * 5 * time.Millisecond)
		tl.answer(at, "completed", time.Duration(i)*time.Millisecond, false)
		tl.complete(at, time.Duration(i)*time.Millisecond)
		tl.lag(at, time.Duration(101-i)*time.Millisecond)
	}
	at := start.Add(2500 * time.Millisecond)
	tl.answer(at, "503", 2*time.Second, true)
	tl.answer(at, "completed", 7*time.Millisecond, false)
	tl.complete(at, 7*time.Millisecond)
	tl.lag(at, 40*time.Millisecond)

	got := tl.series()
	want := &result.Timeline{
		Answers: []int{100, 0, 2}, Completed: []int{100, 0, 1}, Errors: []int{0, 0, 1},
		LatencyP50: []float64{50, 0, 7}, LatencyP90: []float64{90, 0, 7}, LatencyP99: []float64{99, 0, 7},
		LagCount: []int{100, 0, 1}, LagP50: []float64{50, 0, 40}, LagP99: []float64{99, 0, 40}, LagMax: []float64{100, 0, 40},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("series (-want +got):\n%s", diff)
	}
	if empty := newTimeline(start).series(); empty.Len() != 0 || empty.LatencyP99 == nil {
		t.Fatalf("a run without answers: %+v, want empty series (not null)", empty)
	}
}

func TestTimelineHistograms(t *testing.T) {
	start := time.Now()
	tl := newTimeline(start)
	for _, d := range []time.Duration{time.Millisecond, time.Millisecond, 1100 * time.Microsecond, 50 * time.Microsecond} {
		tl.answer(start, "completed", d, false)
	}
	tl.answer(start, "transport_error", 40*time.Second, true)
	h := tl.histograms()
	bounds := result.HistogramBounds()
	if !cmp.Equal(h.UpperMs, bounds) {
		t.Fatalf("bounds %v", h.UpperMs)
	}
	// 0.05 ms in the first bucket (up to 0.1 ms), 1 ms in the bucket bounded by 1 ms
	// (index 10), 1.1 ms in the next; nothing above, so the counts end there.
	want := make([]int, 12)
	want[0], want[10], want[11] = 1, 2, 1
	if diff := cmp.Diff(want, h.Counts["completed"]); diff != "" {
		t.Errorf("completed (-want +got):\n%s", diff)
	}
	if c := h.Counts["transport_error"]; len(c) != len(bounds)+1 || c[len(bounds)] != 1 {
		t.Errorf("40 s should fall in the bucket past the last bound: %v", c)
	}
}

func TestRecordFilesEveryAnswerInTheTimeline(t *testing.T) {
	start := time.Now()
	s := &sampleSet{latency: map[string][]time.Duration{}, statuses: map[string]int{}, finished: map[string]time.Time{}, timeline: newTimeline(start)}
	ran := 0
	f := func() { ran++ }
	s.record("completed", 201, start, 3*time.Millisecond, nil, f)
	s.record("insufficient", 400, start, 4*time.Millisecond, nil, f)
	s.record("completed", 503, start.Add(1500*time.Millisecond), 5*time.Millisecond, nil, f)
	s.record("replay", 0, start.Add(1500*time.Millisecond), 30*time.Second, errors.New("timeout"), f)
	tl, h := s.timeline.series(), s.timeline.histograms()
	if !cmp.Equal(tl.Answers, []int{2, 2}) || !cmp.Equal(tl.Errors, []int{0, 2}) || ran != 2 || s.errors != 2 {
		t.Fatalf("answers %v, errors %v, definitive %d, sample errors %d", tl.Answers, tl.Errors, ran, s.errors)
	}
	for _, outcome := range []string{"completed", "insufficient", "503", "transport_error"} {
		n := 0
		for _, c := range h.Counts[outcome] {
			n += c
		}
		if n != 1 {
			t.Errorf("histogram of %s counts %d answers, want 1", outcome, n)
		}
	}
	if len(h.Counts) != 4 {
		t.Errorf("outcomes %v, want completed, insufficient, 503, transport_error", h.Counts)
	}
}

func TestCompactArrays(t *testing.T) {
	r := result.Report{Mode: "closed", Clients: 2, Latency: map[string]result.Percentiles{"completed": {Count: 3, P50: 1.5}},
		Violations: result.Violations{LostNotes: 1, Examples: []string{"order [1,\n2] has no notification", "[3,4]"}},
		Timeline:   &result.Timeline{Answers: []int{3, 4, 5}, LatencyP50: []float64{1.25, -0.5, 1e-7}},
		Histograms: &result.Histograms{UpperMs: []float64{0.1, 1}, Counts: map[string][]int{"completed": {0, 3}}}}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	c := compactArrays(b)
	for _, want := range []string{`"answers": [3, 4, 5]`, `"latency_p50_ms": [1.25, -0.5, 1e-7]`, `"completed": [0, 3]`, `"order [1,\n2] has no notification"`, `"[3,4]"`, "\"examples\": [\n"} {
		if !strings.Contains(string(c), want) {
			t.Errorf("compacted JSON lacks %q:\n%s", want, c)
		}
	}
	var back result.Report
	if err := json.Unmarshal(c, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, back); diff != "" {
		t.Errorf("the compacted JSON reads back differently (-want +got):\n%s", diff)
	}
}
