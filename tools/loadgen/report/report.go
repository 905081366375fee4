// Package report draws the JSON reports of load generator runs as one HTML page that needs
// nothing else: the side-by-side table of `loadgen table`, then each run's charts in a
// column of its own, every chart an inline SVG drawn with gonum.org/v1/plot. The page loads
// no script, style sheet, font or image from anywhere.
package report

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"

	"github.com/order-system/order-system/tools/loadgen/result"
)

// Charts draws the charts of each run, in the order of runs, on the scales they share.
func Charts(runs []result.Run) ([][]Chart, error) {
	sc := scalesOf(runs)
	out := make([][]Chart, len(runs))
	for i, run := range runs {
		c, err := charts(run.Report, sc)
		if err != nil {
			return nil, fmt.Errorf("run %q: %w", run.Name, err)
		}
		out[i] = c
	}
	return out, nil
}

// Write writes the page comparing runs. pgbenchTPS, when not 0, is the reference of the same
// benchmark, as for `loadgen table`.
func Write(w io.Writer, runs []result.Run, pgbenchTPS float64) error {
	if len(runs) == 0 {
		return fmt.Errorf("no runs to report")
	}
	all, err := Charts(runs)
	if err != nil {
		return err
	}
	header, rows := result.Table(runs, pgbenchTPS)
	page := pageData{Header: header, Rows: rows, Note: result.TableNote, Columns: len(runs)}
	page.BillHeader, page.BillRows = result.BillTable(runs)
	page.BillNote = result.BillNote
	if pgbenchTPS > 0 {
		page.PGBench = fmt.Sprintf("%.0f", pgbenchTPS)
	}
	for _, run := range runs {
		page.Runs = append(page.Runs, columnHead{Name: run.Name, About: about(run.Report)})
	}
	// One row per kind of chart, a cell per run: the time series and the CPU that every run
	// has, then the histogram of each outcome that any run has.
	var kinds []string
	for _, c := range all {
		for _, ch := range c {
			if !slices.Contains(kinds, ch.Name) {
				kinds = append(kinds, ch.Name)
			}
		}
	}
	for _, kind := range kinds {
		row := chartRow{}
		for i, c := range all {
			cell := chartCell{Run: runs[i].Name, Empty: fmt.Sprintf("no %s answers", strings.TrimPrefix(kind, "histogram-"))}
			for _, ch := range c {
				if ch.Name == kind {
					// Drawn here; the SVG writer escapes every text it holds.
					row.Title, cell.SVG = ch.Title, template.HTML(inline(ch.SVG, runs[i].Name+": "+ch.Title))
				}
			}
			row.Cells = append(row.Cells, cell)
		}
		page.Charts = append(page.Charts, row)
	}
	for _, run := range runs {
		if run.Report.Histograms == nil {
			page.Notes = append(page.Notes, fmt.Sprintf("%s: no latency histograms or timeline in its report (written by an older loadgen)", run.Name))
		}
	}
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, page); err != nil {
		return err
	}
	_, err = w.Write(b.Bytes())
	return err
}

// about says in a line what load a run was and what came back.
func about(r result.Report) string {
	load := fmt.Sprintf("%d clients, closed loop", r.Clients)
	if r.Mode == "open" {
		load = fmt.Sprintf("open loop at %.0f requests/s", r.Rate)
	}
	codes := make([]string, 0, len(r.Statuses))
	for code := range r.Statuses {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	statuses := make([]string, len(codes))
	for i, code := range codes {
		statuses[i] = fmt.Sprintf("%s: %d", code, r.Statuses[code])
	}
	return fmt.Sprintf("%s, %.0f %% of new orders keyed, %.1f s, %d requests (%s)", load, r.Keyed*100, r.DurationSeconds, r.Orders, strings.Join(statuses, ", "))
}

type pageData struct {
	PGBench string
	Header  []string
	Rows    [][]string
	Note    string
	// The CPU bill, a column per run; no rows when no run has one.
	BillHeader []string
	BillRows   [][]string
	BillNote   string
	Columns    int
	Runs       []columnHead
	Charts     []chartRow
	Notes      []string
}

type columnHead struct{ Name, About string }

type chartRow struct {
	Title string
	Cells []chartCell
}

type chartCell struct {
	Run   string
	SVG   template.HTML
	Empty string
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>order-system load report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.note { color: #555; font-size: 0.9rem; }
.runs { display: grid; grid-template-columns: repeat({{.Columns}}, minmax(0, 1fr)); gap: 0.5rem 1.5rem; align-items: start; }
.runs h2 { grid-column: 1 / -1; margin: 1.5rem 0 0; font-size: 1.1rem; }
.runs h3 { margin: 0.5rem 0 0; }
figcaption { font-size: 0.85rem; color: #555; }
figure { margin: 0; }
svg { max-width: 100%; height: auto; }
.empty { color: #777; font-style: italic; }
</style>
</head>
<body>
<h1>order-system load report</h1>
{{if .PGBench}}<p>pgbench debit tps (same run): {{.PGBench}}</p>
{{end}}<div class="wide"><table>
<thead><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table></div>
<p class="note">{{.Note}}</p>
{{if .BillRows}}<div class="wide"><table>
<thead><tr>{{range .BillHeader}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .BillRows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table></div>
<p class="note">{{.BillNote}}</p>
{{end}}<p class="note">Over time: the second each answer arrived in, counted from the start of the run (the last, partial second is left out of the rates);
notification lag: when the notification was stored less when its order was answered, by the second of the answer.
Histograms: every answer of the run by outcome, on logarithmic buckets, ten per decade. Runs side by side share their scales.</p>
{{range .Notes}}<p class="note">{{.}}</p>
{{end}}<div class="runs">
{{range .Runs}}<div><h3>{{.Name}}</h3><p class="note">{{.About}}</p></div>
{{end}}{{range .Charts}}<h2>{{.Title}}</h2>
{{range .Cells}}<figure><figcaption>{{.Run}}</figcaption>{{if .SVG}}{{.SVG}}{{else}}<p class="empty">{{.Empty}}</p>{{end}}</figure>
{{end}}{{end}}</div>
</body>
</html>
`))
