package result

import (
	"fmt"
	"math"
	"sort"
)

// Timeline is a run second by second, counted from the moment the first order was sent:
// element i of every slice covers the answers that arrived in [i s, i+1 s), and all slices
// have the same length. The last second is usually partial: it ends at duration_seconds.
type Timeline struct {
	Answers   []int `json:"answers"`   // every answer, whatever its status, and transport errors
	Completed []int `json:"completed"` // new orders answered 201; they add up to completed_per_second × duration_seconds
	Errors    []int `json:"errors"`    // 5xx answers and transport errors

	// Latency of the orders counted in Completed (nearest rank, in ms); 0 where Completed
	// is 0. Open loop: from each request's scheduled start, as in latency.
	LatencyP50 []float64 `json:"latency_p50_ms"`
	LatencyP90 []float64 `json:"latency_p90_ms"`
	LatencyP99 []float64 `json:"latency_p99_ms"`

	// Notification lag of the orders answered in that second with a final outcome (completed
	// or refused for want of funds) whose notification was found: how many, and their lag in
	// ms; 0 where LagCount is 0.
	LagCount []int     `json:"lag_count"`
	LagP50   []float64 `json:"lag_p50_ms"`
	LagP99   []float64 `json:"lag_p99_ms"`
	LagMax   []float64 `json:"lag_max_ms"`
}

// Len is the number of seconds; 0 for a report written before timelines were recorded.
func (t *Timeline) Len() int {
	if t == nil {
		return 0
	}
	return len(t.Answers)
}

// Histograms counts the answers of a whole run by latency, per outcome, on one set of
// buckets: bucket 0 counts latencies up to UpperMs[0], bucket i those above UpperMs[i-1] and
// up to UpperMs[i], and bucket len(UpperMs) those above the last bound. The outcomes are the
// kinds of latency (completed, insufficient, replay: every answer below 500, as there), the
// status of 5xx answers ("503") and transport_error.
type Histograms struct {
	UpperMs []float64        `json:"upper_ms"`
	Counts  map[string][]int `json:"counts"` // outcome → count per bucket, trailing empty buckets left out
}

// HistogramBounds are the upper bounds of the buckets loadgen writes: ten per decade from
// 0.1 ms to about 32 s (the client's timeout is 30 s), each to three significant digits, so
// that a bucket is about 26 % wider than the one before it.
func HistogramBounds() []float64 {
	var b []float64
	for k := -10; k <= 45; k++ {
		v := math.Pow(10, float64(k)/10)
		scale := math.Pow(10, 2-math.Floor(math.Log10(v)))
		b = append(b, math.Round(v*scale)/scale)
	}
	return b
}

// Bucket is the index of the bucket of bounds that counts a latency of ms.
func Bucket(bounds []float64, ms float64) int {
	return sort.SearchFloat64s(bounds, ms)
}

// check refuses series of different lengths, which no loadgen writes.
func (t *Timeline) check() error {
	if t == nil {
		return nil
	}
	n := len(t.Answers)
	for _, c := range []struct {
		name string
		len  int
	}{{"completed", len(t.Completed)}, {"errors", len(t.Errors)},
		{"latency_p50_ms", len(t.LatencyP50)}, {"latency_p90_ms", len(t.LatencyP90)}, {"latency_p99_ms", len(t.LatencyP99)},
		{"lag_count", len(t.LagCount)}, {"lag_p50_ms", len(t.LagP50)}, {"lag_p99_ms", len(t.LagP99)}, {"lag_max_ms", len(t.LagMax)}} {
		if c.len != n {
			return fmt.Errorf("%s has %d seconds, answers %d", c.name, c.len, n)
		}
	}
	return nil
}

// check refuses bounds that do not rise from above 0 (a logarithmic axis needs them
// positive) and more counts than buckets.
func (h *Histograms) check() error {
	if h == nil {
		return nil
	}
	for i, b := range h.UpperMs {
		if !(b > 0) || i > 0 && !(b > h.UpperMs[i-1]) {
			return fmt.Errorf("upper_ms must rise from above 0, got %v", h.UpperMs)
		}
	}
	for outcome, counts := range h.Counts {
		if len(counts) > len(h.UpperMs)+1 {
			return fmt.Errorf("%s has %d buckets, upper_ms allows %d", outcome, len(counts), len(h.UpperMs)+1)
		}
		if len(counts) > 0 && len(h.UpperMs) == 0 {
			return fmt.Errorf("%s has counts, upper_ms no bounds", outcome)
		}
	}
	return nil
}
