package report

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/order-system/order-system/tools/loadgen/result"
)

// Chart is one chart of one run.
type Chart struct {
	Name  string // throughput, latency, lag, cpu or histogram-<outcome>: its file name in -svg-dir
	Title string
	SVG   []byte // a standalone SVG document
}

// scales are the ranges that the charts of every run share, so that side by side they
// compare at a glance: the same seconds, the same heights, the same latencies.
type scales struct {
	seconds          float64 // the longest run
	perSecond        float64 // the most answers in any second
	latency          float64 // the highest per-second p99
	lagMin, lagMax   float64
	cpu              float64 // the most CPU seconds of any process
	histFrom, histTo float64 // ms, powers of ten around every counted bucket
	outcomes         []string
}

// outcomeOrder puts the definitive answers first, in the order of the mix, then the failures.
var outcomeOrder = []string{"completed", "insufficient", "replay"}

func scalesOf(runs []result.Run) scales {
	sc := scales{histFrom: math.Inf(1), histTo: math.Inf(-1)}
	seen := map[string]bool{}
	for _, run := range runs {
		r := run.Report
		sc.seconds = max(sc.seconds, r.DurationSeconds, float64(r.Timeline.Len()))
		if t := r.Timeline; t.Len() > 0 {
			for i := range t.Len() {
				sc.perSecond = max(sc.perSecond, float64(t.Answers[i]))
				if t.Completed[i] > 0 {
					sc.latency = max(sc.latency, t.LatencyP99[i])
				}
				if t.LagCount[i] > 0 {
					sc.lagMin, sc.lagMax = min(sc.lagMin, t.LagP50[i]), max(sc.lagMax, t.LagMax[i])
				}
			}
		}
		for _, p := range r.Processes {
			sc.cpu = max(sc.cpu, p.CPUSeconds)
		}
		if h := r.Histograms; h != nil {
			for outcome, counts := range h.Counts {
				for i, n := range counts {
					if n > 0 {
						lo, hi := bucketEdges(h.UpperMs, i)
						sc.histFrom, sc.histTo = min(sc.histFrom, lo), max(sc.histTo, hi)
						seen[outcome] = true
					}
				}
			}
		}
	}
	if math.IsInf(sc.histFrom, 1) {
		sc.histFrom, sc.histTo = 0.1, 1000
	}
	sc.histFrom, sc.histTo = math.Pow(10, math.Floor(math.Log10(sc.histFrom))), math.Pow(10, math.Ceil(math.Log10(sc.histTo)))
	for _, o := range outcomeOrder {
		if seen[o] {
			sc.outcomes = append(sc.outcomes, o)
			delete(seen, o)
		}
	}
	var rest []string
	for o := range seen {
		rest = append(rest, o)
	}
	slices.Sort(rest)
	sc.outcomes = append(sc.outcomes, rest...)
	return sc
}

// bucketEdges are the latencies bucket i of a histogram counts, from above lo up to hi; the
// first and the last bucket, open on one side, are drawn one bucket wide.
func bucketEdges(upper []float64, i int) (lo, hi float64) {
	n := len(upper)
	switch {
	case n == 1 && i == 0:
		return upper[0] / 2, upper[0]
	case n == 1:
		return upper[0], upper[0] * 2
	case i == 0:
		return upper[0] * upper[0] / upper[1], upper[0]
	case i == n:
		return upper[n-1], upper[n-1] * upper[n-1] / upper[n-2]
	}
	return upper[i-1], upper[i]
}

var (
	blue   = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	orange = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	red    = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	grey   = color.RGBA{R: 0x88, G: 0x88, B: 0x88, A: 0xff}
)

// charts draws the charts of one run: the time series, the CPU per process, then a latency
// histogram for each outcome the run has.
func charts(r result.Report, sc scales) ([]Chart, error) {
	var out []Chart
	add := func(name, title string, p *plot.Plot, err error) error {
		if err != nil {
			return fmt.Errorf("%s chart: %w", name, err)
		}
		svg, err := render(p)
		if err != nil {
			return fmt.Errorf("%s chart: %w", name, err)
		}
		out = append(out, Chart{Name: name, Title: title, SVG: svg})
		return nil
	}
	t := r.Timeline
	complete := func(i int) bool { return t.Completed[i] > 0 }
	lagged := func(i int) bool { return t.LagCount[i] > 0 }
	// The last second is cut short by the end of the run: as a rate it would read as a drop.
	fullSecond := func(i int) bool { return float64(i+1) <= r.DurationSeconds }
	failures := hasErrors(t)

	p, err := timeChart("completed orders per second", "answers per second", sc, sc.perSecond, []series{
		{"completed", blue, ints(t, func(t *result.Timeline) []int { return t.Completed }), fullSecond, false},
		{"all answers", grey, ints(t, func(t *result.Timeline) []int { return t.Answers }), fullSecond, false},
		{"errors (5xx, transport)", red, ints(t, func(t *result.Timeline) []int { return t.Errors }), func(i int) bool { return failures && fullSecond(i) }, false},
	})
	if err := add("throughput", "completed orders per second", p, err); err != nil {
		return nil, err
	}
	p, err = timeChart("latency of completed orders, per second", "ms", sc, sc.latency, []series{
		{"p50", blue, floats(t, func(t *result.Timeline) []float64 { return t.LatencyP50 }), complete, false},
		{"p90", orange, floats(t, func(t *result.Timeline) []float64 { return t.LatencyP90 }), complete, false},
		{"p99", red, floats(t, func(t *result.Timeline) []float64 { return t.LatencyP99 }), complete, false},
	})
	if err := add("latency", "latency percentiles over time", p, err); err != nil {
		return nil, err
	}
	// The maximum first and dashed: with a hundred orders a second it is also the p99, which
	// is drawn over it.
	p, err = timeChart("notification lag, by the second the order was answered", "ms", sc, sc.lagMax, []series{
		{"max", grey, floats(t, func(t *result.Timeline) []float64 { return t.LagMax }), lagged, true},
		{"p99", red, floats(t, func(t *result.Timeline) []float64 { return t.LagP99 }), lagged, false},
		{"p50", blue, floats(t, func(t *result.Timeline) []float64 { return t.LagP50 }), lagged, false},
	})
	if p != nil {
		p.Y.Min = min(0, sc.lagMin)
	}
	if err := add("lag", "notification lag", p, err); err != nil {
		return nil, err
	}
	p, err = cpuChart(r, sc)
	if err := add("cpu", "CPU per process", p, err); err != nil {
		return nil, err
	}
	if h := r.Histograms; h != nil {
		for _, outcome := range sc.outcomes {
			if counts := h.Counts[outcome]; slices.ContainsFunc(counts, func(n int) bool { return n > 0 }) {
				p, err := histogram(outcome, h.UpperMs, counts, sc)
				if err := add("histogram-"+outcome, "latency histogram: "+outcome, p, err); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

func hasErrors(t *result.Timeline) bool {
	return t.Len() > 0 && slices.ContainsFunc(t.Errors, func(n int) bool { return n > 0 })
}

// ints and floats read one series of a timeline, none from a report without one.
func ints(t *result.Timeline, f func(*result.Timeline) []int) []float64 {
	if t.Len() == 0 {
		return nil
	}
	v := make([]float64, t.Len())
	for i, n := range f(t) {
		v[i] = float64(n)
	}
	return v
}

func floats(t *result.Timeline, f func(*result.Timeline) []float64) []float64 {
	if t.Len() == 0 {
		return nil
	}
	return f(t)
}

// series is one line of a chart over time: value i is second i of the run, drawn at its
// middle where ok(i).
type series struct {
	name   string
	color  color.Color
	values []float64
	ok     func(i int) bool
	dashed bool
}

// newPlot is a plot in a sans-serif font with a grid.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, xLabel, yLabel
	for _, s := range []*text.Style{&p.Title.TextStyle, &p.X.Label.TextStyle, &p.Y.Label.TextStyle, &p.X.Tick.Label, &p.Y.Tick.Label, &p.Legend.TextStyle} {
		s.Font.Variant = "Sans"
	}
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.X.Label.TextStyle.Font.Size, p.Y.Label.TextStyle.Font.Size, p.Legend.TextStyle.Font.Size = vg.Points(10), vg.Points(10), vg.Points(10)
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	return p
}

// timeChart draws series over the run's seconds, on the shared time axis, from 0 to top
// with room above for the legend. A second without a sample leaves a gap in its line.
func timeChart(title, yLabel string, sc scales, top float64, lines []series) (*plot.Plot, error) {
	p := newPlot(title, "seconds since the start of the run", yLabel)
	p.X.Min, p.X.Max = 0, max(sc.seconds, 1)
	p.Y.Min, p.Y.Max = 0, max(top*1.3, 1)
	drawn := 0
	for _, s := range lines {
		var first *plotter.Line
		for _, seg := range segments(s.values, s.ok) {
			l, pts, err := plotter.NewLinePoints(seg)
			if err != nil {
				return nil, err
			}
			l.Color, l.Width = s.color, vg.Points(1.2)
			if s.dashed {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			}
			pts.Color, pts.Shape, pts.Radius = s.color, draw.CircleGlyph{}, vg.Points(1.2)
			p.Add(l, pts)
			if first == nil {
				first = l
				p.Legend.Add(s.name, l)
			}
			drawn += len(seg)
		}
	}
	if drawn == 0 {
		p.Title.Text += " (no data)"
	}
	return p, nil
}

// segments are the runs of consecutive seconds where ok holds, each second at its middle.
func segments(values []float64, ok func(i int) bool) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for i, v := range values {
		if !ok(i) {
			if len(cur) > 0 {
				out, cur = append(out, cur), nil
			}
			continue
		}
		cur = append(cur, plotter.XY{X: float64(i) + 0.5, Y: v})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// cpuChart draws the CPU seconds of each process (all its instances) during the run.
func cpuChart(r result.Report, sc scales) (*plot.Plot, error) {
	p := newPlot(fmt.Sprintf("CPU per process during the %.0f s run", r.DurationSeconds), "", "CPU seconds")
	p.Y.Min, p.Y.Max = 0, max(sc.cpu*1.2, 1)
	names := make([]string, 0, len(r.Processes))
	for n := range r.Processes {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		p.Title.Text += " (none recorded)"
		p.X.Min, p.X.Max = 0, 1
		p.HideX()
		return p, nil
	}
	values := make(plotter.Values, len(names))
	labels := plotter.XYLabels{}
	for i, n := range names {
		values[i] = r.Processes[n].CPUSeconds
		labels.XYs = append(labels.XYs, plotter.XY{X: float64(i), Y: values[i]})
		labels.Labels = append(labels.Labels, fmt.Sprintf("%.2f", values[i]))
	}
	bars, err := plotter.NewBarChart(values, vg.Points(28))
	if err != nil {
		return nil, err
	}
	bars.Color, bars.LineStyle.Width = blue, 0
	l, err := plotter.NewLabels(labels)
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].Font.Variant = "Sans"
		l.TextStyle[i].XAlign = text.XCenter
		l.Offset = vg.Point{Y: vg.Points(3)}
	}
	p.Add(bars, l)
	p.NominalX(names...)
	return p, nil
}

// histogram draws how many answers of one outcome took how long, both axes logarithmic: the
// tail's few answers stay visible beside the bulk.
func histogram(outcome string, upper []float64, counts []int, sc scales) (*plot.Plot, error) {
	total, most := 0, 0
	var bins []plotter.HistogramBin
	for i, n := range counts {
		total, most = total+n, max(most, n)
		if n > 0 {
			lo, hi := bucketEdges(upper, i)
			bins = append(bins, plotter.HistogramBin{Min: lo, Max: hi, Weight: float64(n)})
		}
	}
	p := newPlot(fmt.Sprintf("%s: %d answers by latency", cmp.Or(outcome, "unnamed outcome"), total), "ms", "answers")
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.X.Min, p.X.Max = sc.histFrom, sc.histTo
	p.Y.Min, p.Y.Max = 0.5, math.Pow(10, math.Ceil(math.Log10(float64(max(most, 1))*1.5)))
	h := &plotter.Histogram{Bins: bins, FillColor: blue, LineStyle: plotter.DefaultLineStyle, LogY: true}
	h.LineStyle.Color = color.White
	h.LineStyle.Width = vg.Points(0.5)
	p.Add(h)
	return p, nil
}
