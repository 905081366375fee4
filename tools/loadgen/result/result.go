// Package result is the JSON report of one load generator run: what `loadgen -out` writes,
// and what `loadgen table` and `loadgen report` read. Other tools read its fields too (the
// cluster test with jq, make bench with sed), so a field once written keeps its name and
// meaning; new ones are added beside them.
package result

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Report is the JSON written to -out.
type Report struct {
	Mode            string                 `json:"mode"`    // "closed" or "open"
	Clients         int                    `json:"clients"` // closed loop
	Rate            float64                `json:"rate"`    // open loop: requests per second scheduled
	Keyed           float64                `json:"keyed"`   // share of new orders with an Idempotency-Key
	Late            int                    `json:"late"`    // open loop: requests that started late
	LateAfterMs     float64                `json:"late_after_ms"`
	MaxLateMs       float64                `json:"max_late_ms"`
	PeakInFlight    int                    `json:"peak_in_flight"` // open loop
	DurationSeconds float64                `json:"duration_seconds"`
	Orders          int                    `json:"orders"`
	OrdersPerSecond float64                `json:"orders_per_second"`
	CompletedPerSec float64                `json:"completed_per_second"`
	Latency         map[string]Percentiles `json:"latency"`
	Statuses        map[string]int         `json:"statuses"`
	Errors          int                    `json:"errors"`
	NotificationLag Percentiles            `json:"notification_lag"`
	Processes       map[string]ProcStats   `json:"processes"`
	Violations      Violations             `json:"violations"`

	// The run over time and latency by outcome, for charts; nil in reports written before
	// they were recorded.
	Timeline   *Timeline   `json:"timeline,omitempty"`
	Histograms *Histograms `json:"latency_histograms,omitempty"`

	// CPU per completed order, part by part; nil in reports written before it was measured.
	CPUBill *CPUBill `json:"cpu_bill,omitempty"`
}

// Percentiles summarises a sample of durations.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// ProcStats is what a service cost during the run: the CPU of all its instances and the
// largest peak resident set of any one of them.
type ProcStats struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	Instances  int     `json:"instances"`
}

// Violations is the end-to-end invariant check.
type Violations struct {
	DoubleDebits      int      `json:"double_debits"`
	MissingDebits     int      `json:"missing_debits"`
	UnexpectedDebits  int      `json:"unexpected_debits"`
	BalanceMismatches int      `json:"balance_mismatches"`
	LostNotes         int      `json:"lost_notifications"`
	DuplicatedNotes   int      `json:"duplicated_notifications"`
	WrongNoteType     int      `json:"wrong_notification_type"`
	UnexpectedNotes   int      `json:"unexpected_notifications"`
	Unfinished        int      `json:"unfinished_orders"`
	Examples          []string `json:"examples,omitempty"`
}

// Total is the number of violations.
func (v Violations) Total() int {
	return v.DoubleDebits + v.MissingDebits + v.UnexpectedDebits + v.BalanceMismatches + v.LostNotes + v.DuplicatedNotes + v.WrongNoteType + v.UnexpectedNotes + v.Unfinished
}

// Read reads the report in file; its errors name the file and say what is wrong with it.
func Read(file string) (Report, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Report{}, err
	}
	r, err := Parse(b)
	if err != nil {
		return Report{}, fmt.Errorf("%s: %w", file, err)
	}
	return r, nil
}

// Parse decodes a report. Anything that is not the JSON loadgen writes is refused, with
// where the text went wrong, rather than read as a run of zeros.
func Parse(b []byte) (Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return Report{}, fmt.Errorf("not a loadgen JSON report: %v (at byte %d)", err, syn.Offset)
		case errors.As(err, &typ):
			return Report{}, fmt.Errorf("not a loadgen JSON report: field %q holds a JSON %s (at byte %d)", typ.Field, typ.Value, typ.Offset)
		}
		return Report{}, fmt.Errorf("not a loadgen JSON report: %w", err)
	}
	if r.Mode != "closed" && r.Mode != "open" {
		return Report{}, fmt.Errorf(`not a loadgen JSON report: "mode" is %q, want "closed" or "open"`, r.Mode)
	}
	if err := r.Timeline.check(); err != nil {
		return Report{}, fmt.Errorf("a broken loadgen JSON report: timeline: %w", err)
	}
	if err := r.Histograms.check(); err != nil {
		return Report{}, fmt.Errorf("a broken loadgen JSON report: latency_histograms: %w", err)
	}
	return r, nil
}
