package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunReport(t *testing.T) {
	dir := t.TempDir()
	out, svgs := filepath.Join(dir, "bench.html"), filepath.Join(dir, "img")
	if err := os.Mkdir(svgs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := runReport([]string{"-out", out, "-svg-dir", svgs, "-pgbench-tps", "100", "All keyed=report/testdata/mix.json"}); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(page), "<td>All keyed</td>") || strings.Count(string(page), "<svg") != 8 {
		t.Fatalf("bench.html: %v, %d charts", err, strings.Count(string(page), "<svg"))
	}
	for _, name := range []string{"all-keyed-throughput.svg", "all-keyed-latency.svg", "all-keyed-lag.svg", "all-keyed-cpu.svg", "all-keyed-histogram-503.svg"} {
		if b, err := os.ReadFile(filepath.Join(svgs, name)); err != nil || !strings.HasPrefix(string(b), "<?xml") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := runReport([]string{"-out", out, "-svg-dir", svgs, "a=report/testdata/mix.json", "A=report/testdata/mix.json"}); err == nil || !strings.Contains(err.Error(), "other labels") {
		t.Errorf("two labels of one file name: %v", err)
	}
}

func TestRunReportRefusesAMalformedReport(t *testing.T) {
	dir := t.TempDir()
	bad, out := filepath.Join(dir, "bench-open.json"), filepath.Join(dir, "bench.html")
	if err := os.WriteFile(bad, []byte(`{"mode": "open", "rate": 400,, "orders": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	err := runReport([]string{"-out", out, "mix=report/testdata/mix.json", "open loop=" + bad})
	if err == nil || !strings.Contains(err.Error(), bad+": not a loadgen JSON report: invalid character ','") || !strings.Contains(err.Error(), "at byte 30") {
		t.Fatalf("runReport = %v, want the file, what is wrong and where", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("an HTML report was written all the same: %v", err)
	}
	for _, args := range [][]string{{"mix=report/testdata/mix.json"}, {"-out", out}, {"-out", out, "report/testdata/mix.json"}} {
		if err := runReport(args); err == nil {
			t.Errorf("runReport(%q) should fail", args)
		}
	}
}
