package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/order-system/order-system/tools/loadgen/result"
)

// synthetic is a small run (testdata/mix.json: 4 seconds, three definitive outcomes and 503)
// and an open-loop variant of it with no failures.
func synthetic(t *testing.T) []result.Run {
	t.Helper()
	mix, err := result.Read("testdata/mix.json")
	if err != nil {
		t.Fatal(err)
	}
	open, err := result.Read("testdata/mix.json")
	if err != nil {
		t.Fatal(err)
	}
	open.Mode, open.Clients, open.Rate, open.Late = "open", 0, 8, 3
	delete(open.Histograms.Counts, "503")
	return []result.Run{{Name: "mix <a&b>", Report: mix}, {Name: "open loop", Report: open}}
}

var svgElement = regexp.MustCompile(`(?s)<svg\b.*?</svg>`)

func TestWriteDrawsEveryChartInline(t *testing.T) {
	runs := synthetic(t)
	var b bytes.Buffer
	if err := Write(&b, runs, 40); err != nil {
		t.Fatal(err)
	}
	page := b.String()

	// Per run: throughput, latency, lag, CPU, and a histogram per outcome it has (the mix
	// four, the open loop three); the open loop's missing 503 is said in words.
	svgs := svgElement.FindAllString(page, -1)
	if n := strings.Count(page, "<svg"); n != 4+4+4+3 || len(svgs) != n {
		t.Fatalf("%d <svg> (%d complete), want 15", n, len(svgs))
	}
	if !strings.Contains(page, "no 503 answers") {
		t.Error("the open loop's empty 503 cell is not explained")
	}
	for i, svg := range svgs {
		if err := wellFormed(svg); err != nil {
			t.Errorf("chart %d is not well-formed XML: %v", i, err)
		}
		if !strings.Contains(svg, `<svg role="img" aria-label="`) || !strings.Contains(svg, `viewBox="0 0 `) {
			t.Errorf("chart %d starts %.120q", i, svg)
		}
	}
	for _, want := range []string{
		"<!DOCTYPE html>", "mix &lt;a&amp;b&gt;", "open loop", // the run names, escaped
		"pgbench debit tps (same run): 40", "<th>completed/s</th>", "<td>0.143</td>", "<td>8/s open</td>", "<td>21.2</td>",
		"completed orders per second", "latency percentiles over time", "notification lag", "CPU per process",
		"latency histogram: completed", "latency histogram: insufficient", "latency histogram: replay", "latency histogram: 503",
		"4 clients, closed loop, 20 % of new orders keyed, 3.5 s, 26 requests (201: 21, 400: 3, 503: 2)",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Self-contained: no address of any other host, and nothing that would load a resource.
	for _, bad := range []string{"http://", "https://", "<script", "<link", "<img", "<iframe", "@import", "url(", "src=", "href="} {
		if strings.Contains(page, bad) {
			i := strings.Index(page, bad)
			t.Errorf("the page holds %q: …%s…", bad, page[max(i-80, 0):min(i+80, len(page))])
		}
	}
}

func TestWriteShowsTheCPUBill(t *testing.T) {
	runs := synthetic(t)
	var b bytes.Buffer
	if err := Write(&b, runs, 0); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "CPU ms per completed order") {
		t.Error("a CPU bill table for runs without a bill")
	}
	runs[1].Report.CPUBill = &result.CPUBill{CompletedOrders: 21, MachineMsPerOrder: 3.25, MachineNoLoadgenMsPerOrder: 2.5,
		Parts: []result.CPUPart{{Name: "order", CPUSeconds: 0.01, MsPerOrder: 0.476, Processes: 1}, {Name: "nginx <gw>", CPUSeconds: 0.01, MsPerOrder: 0.476, Processes: 2}}}
	b.Reset()
	if err := Write(&b, runs, 0); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		"<tr><th>CPU ms per completed order</th><th>mix &lt;a&amp;b&gt;</th><th>open loop</th></tr>",
		"<tr><td>order</td><td>-</td><td>0.476</td></tr>",
		"<tr><td>nginx &lt;gw&gt;</td><td>-</td><td>0.476</td></tr>",
		"<tr><td>machine total</td><td>-</td><td>3.250</td></tr>",
		"<tr><td>machine total without loadgen</td><td>-</td><td>2.500</td></tr>",
		"all CPUs from /proc/stat",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func wellFormed(doc string) error {
	d := xml.NewDecoder(strings.NewReader(doc))
	for {
		if _, err := d.Token(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func TestChartsAreStandaloneSVG(t *testing.T) {
	runs := synthetic(t)
	charts, err := Charts(runs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range charts[1] {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, " "); got != "throughput latency lag cpu histogram-completed histogram-insufficient histogram-replay" {
		t.Fatalf("charts of the open loop: %s", got)
	}
	for _, c := range charts[0] {
		s := string(c.SVG)
		if !strings.HasPrefix(s, "<?xml") || !strings.Contains(s, `xmlns="http://www.w3.org/2000/svg"`) || wellFormed(s) != nil {
			t.Errorf("%s: not a standalone SVG document: %.200q", c.Name, s)
		}
		if strings.Contains(s, "font-family:Liberation Sans;") {
			t.Errorf("%s: a font without a fallback", c.Name)
		}
	}
}

func TestEmptySeriesDrawEmptyCharts(t *testing.T) {
	mix := synthetic(t)[0].Report
	tests := map[string]struct {
		r              result.Report
		noData, charts int // charts saying "(no data)", charts of the run
	}{
		// Written before timelines and histograms.
		"old": {result.Report{Mode: "closed", Clients: 1, DurationSeconds: 2}, 3, 4},
		// A run that never got an answer.
		"nothing": {result.Report{Mode: "open", Rate: 5, Timeline: &result.Timeline{},
			Histograms: &result.Histograms{UpperMs: []float64{1, 10}, Counts: map[string][]int{"completed": {}, "503": {0, 0}}}}, 3, 4},
		// A second that failed: answers, but no completed order and no notification.
		"failing": {result.Report{Mode: "closed", DurationSeconds: 1, Timeline: &result.Timeline{Answers: []int{3}, Completed: []int{0}, Errors: []int{3},
			LatencyP50: []float64{0}, LatencyP90: []float64{0}, LatencyP99: []float64{0}, LagCount: []int{0}, LagP50: []float64{0}, LagP99: []float64{0}, LagMax: []float64{0}},
			Histograms: &result.Histograms{UpperMs: []float64{1}, Counts: map[string][]int{"503": {0, 3}}}}, 2, 5},
		"one bucket": {result.Report{Mode: "closed", Histograms: &result.Histograms{UpperMs: []float64{5}, Counts: map[string][]int{"completed": {2}}}}, 3, 5},
	}
	for name, tt := range tests {
		for _, runs := range [][]result.Run{{{Name: name, Report: tt.r}}, {{Name: name, Report: tt.r}, {Name: "mix", Report: mix}}} {
			var b bytes.Buffer
			if err := Write(&b, runs, 0); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			page := b.String()
			if n := strings.Count(page, "(no data)"); n != tt.noData {
				t.Errorf("%s beside %d runs: %d charts say they have no data, want %d", name, len(runs)-1, n, tt.noData)
			}
			if n := strings.Count(page, "<svg"); n != tt.charts+8*(len(runs)-1) {
				t.Errorf("%s beside %d runs: %d charts, want %d", name, len(runs)-1, n, tt.charts+8*(len(runs)-1))
			}
			if tt.r.Processes == nil && !strings.Contains(page, "CPU per process during the") {
				t.Errorf("%s: no CPU chart", name)
			}
		}
	}
	if err := Write(io.Discard, nil, 0); err == nil {
		t.Error("a report of no runs should be refused")
	}
}

func TestTheSyntheticRunIsConsistent(t *testing.T) {
	b, err := os.ReadFile("testdata/mix.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := result.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(v []int) (n int) {
		for _, x := range v {
			n += x
		}
		return n
	}
	if sum(r.Timeline.Answers) != r.Orders || sum(r.Timeline.Errors) != r.Errors || sum(r.Timeline.LagCount) != r.NotificationLag.Count {
		t.Fatalf("testdata/mix.json: its timeline does not add up to its summary")
	}
}
