package result

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseReadsWhatLoadgenWrites(t *testing.T) {
	r, err := Parse([]byte(`{"mode":"open","rate":450,"orders":9000,"latency":{"completed":{"count":8000,"p99_ms":25.5}},"violations":{"lost_notifications":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != "open" || r.Rate != 450 || r.Orders != 9000 || r.Latency["completed"].P99 != 25.5 || r.Violations.Total() != 2 {
		t.Fatalf("parsed %+v", r)
	}
}

func TestParseRefusesWhatIsNotAReport(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"cut short":     {`{"mode":"closed","orders":`, "unexpected end of JSON input"},
		"not JSON":      {`mode=closed`, "(at byte 1)"},
		"a wrong type":  {`{"mode":"closed","orders":"many"}`, `field "orders" holds a JSON string`},
		"another JSON":  {`{"name":"order-system"}`, `"mode" is ""`},
		"a JSON array":  {`[1,2]`, "not a loadgen JSON report"},
		"an empty file": {``, "not a loadgen JSON report"},
		"series of different lengths": {`{"mode":"closed","timeline":{"answers":[1,2],"completed":[1]}}`,
			"a broken loadgen JSON report: timeline: completed has 1 seconds, answers 2"},
		"bounds that fall": {`{"mode":"closed","latency_histograms":{"upper_ms":[1,0.5],"counts":{}}}`,
			"a broken loadgen JSON report: latency_histograms: upper_ms must rise from above 0"},
		"more counts than buckets": {`{"mode":"closed","latency_histograms":{"upper_ms":[1],"counts":{"503":[0,1,2]}}}`,
			"503 has 3 buckets, upper_ms allows 2"},
	}
	for name, tt := range tests {
		_, err := Parse([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "loadgen JSON report") {
			t.Errorf("%s: Parse(%q) = %v, want an error with %q", name, tt.in, err, tt.want)
		}
	}
}

func TestReadNamesTheFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bench-keyed.json")
	if err := os.WriteFile(file, []byte(`{"mode": "closed", "clients": 32,`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Read(file)
	if err == nil || !strings.HasPrefix(err.Error(), file+": not a loadgen JSON report") {
		t.Fatalf("Read = %v, want an error starting with the file's name", err)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("Read of a missing file = %v", err)
	}
}

func TestTableHasARowPerRunWithEveryColumn(t *testing.T) {
	runs := []Run{
		{Name: "mix", Report: Report{Mode: "closed", Clients: 32, Keyed: 0.2, CompletedPerSec: 900, Latency: map[string]Percentiles{"completed": {P50: 30.04}}}},
		{Name: "open loop", Report: Report{Mode: "open", Rate: 450, Late: 7, Processes: map[string]ProcStats{"order": {PeakRSSMiB: 22}, "user": {PeakRSSMiB: 18}}}},
	}
	header, rows := Table(runs, 0)
	if len(rows) != 2 || len(rows[0]) != len(header) || len(rows[1]) != len(header) {
		t.Fatalf("header %v, rows %v", header, rows)
	}
	cell := func(row int, col string) string {
		for i, h := range header {
			if h == col {
				return rows[row][i]
			}
		}
		t.Fatalf("no column %q", col)
		return ""
	}
	for _, c := range []struct {
		row       int
		col, want string
	}{
		{0, "run", "mix"}, {0, "load", "32 clients"}, {0, "keyed", "20 %"}, {0, "÷ pgbench", "-"}, {0, "p50 ms", "30.0"}, {0, "late", "-"},
		{1, "load", "450/s open"}, {1, "late", "7"}, {1, "max rss MiB", "22.0"}, {1, "invariants", "ok"},
	} {
		if got := cell(c.row, c.col); got != c.want {
			t.Errorf("row %d, %s = %q, want %q", c.row, c.col, got, c.want)
		}
	}
	if _, rows := Table(runs, 4500); rows[0][5] != "0.200" {
		t.Errorf("ratio to pgbench %q, want 0.200", rows[0][5])
	}
}

func TestBillTable(t *testing.T) {
	bill := func(orders int, parts ...CPUPart) *CPUBill {
		return &CPUBill{CompletedOrders: orders, Parts: parts, MachineMsPerOrder: 2.5, MachineNoLoadgenMsPerOrder: 2.0004}
	}
	runs := []Run{
		{Name: "mix", Report: Report{CPUBill: bill(1000,
			CPUPart{Name: "order", CPUSeconds: 0.47, MsPerOrder: 0.47, Processes: 1},
			CPUPart{Name: "postgres (ended, unsampled)"}, // nothing ended unseen
			CPUPart{Name: "rabbitmq"})}},                 // no broker found
		{Name: "older", Report: Report{}},
		{Name: "open loop", Report: Report{CPUBill: bill(500,
			CPUPart{Name: "order", CPUSeconds: 0.3, MsPerOrder: 0.6, Processes: 2},
			CPUPart{Name: "nginx", CPUSeconds: 0.05, MsPerOrder: 0.1, Processes: 2})}},
		{Name: "nothing completed", Report: Report{CPUBill: bill(0, CPUPart{Name: "order", CPUSeconds: 1, Processes: 1})}},
	}
	header, rows := BillTable(runs)
	if diff := cmp.Diff([]string{"CPU ms per completed order", "mix", "older", "open loop", "nothing completed"}, header); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	want := [][]string{
		{"order", "0.470", "-", "0.600", "-"},
		{"postgres (ended, unsampled)", "-", "-", "-", "-"},
		{"rabbitmq", "-", "-", "-", "-"},
		{"nginx", "-", "-", "0.100", "-"},
		{MachineRow, "2.500", "-", "2.500", "-"},
		{MachineNoLoadgenRow, "2.000", "-", "2.000", "-"},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if _, rows := BillTable(runs[1:2]); rows != nil {
		t.Errorf("no run with a bill: rows %v, want none", rows)
	}
}
