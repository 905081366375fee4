package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// runTable prints the JSON reports of several runs as one table:
//
//	loadgen table [-pgbench-tps N] label=report.json ...
func runTable(args []string) error {
	fs := flag.NewFlagSet("table", flag.ContinueOnError)
	tps := fs.Float64("pgbench-tps", 0, "the pgbench reference of the same run, for the ratio column")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rows []tableRow
	for _, arg := range fs.Args() {
		label, file, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("%q: want label=report.json", arg)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var r Report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		rows = append(rows, tableRow{label: label, r: r})
	}
	if len(rows) == 0 {
		return fmt.Errorf("no reports given")
	}
	printTable(os.Stdout, rows, *tps)
	return nil
}

type tableRow struct {
	label string
	r     Report
}

// printTable writes one line per run. Latencies are those of orders that completed; "late"
// counts open-loop requests that started after their due time.
func printTable(w io.Writer, rows []tableRow, pgbenchTPS float64) {
	if pgbenchTPS > 0 {
		fmt.Fprintf(w, "pgbench debit tps (same run): %.0f\n", pgbenchTPS)
	}
	header := []string{"run", "load", "keyed", "orders/s", "completed/s", "÷ pgbench", "p50 ms", "p99 ms", "p99.9 ms", "late", "lag p99 ms", "errors", "max rss MiB", "invariants"}
	lines := [][]string{header}
	for _, row := range rows {
		r := row.r
		load := fmt.Sprintf("%d clients", r.Clients)
		late := "-"
		if r.Mode == "open" {
			load = fmt.Sprintf("%.0f/s open", r.Rate)
			late = fmt.Sprint(r.Late)
		}
		ratio := "-"
		if pgbenchTPS > 0 {
			ratio = fmt.Sprintf("%.3f", r.CompletedPerSec/pgbenchTPS)
		}
		var rss float64
		for _, p := range r.Processes {
			rss = max(rss, p.PeakRSSMiB)
		}
		inv := "ok"
		if n := r.Violations.Total(); n > 0 {
			inv = fmt.Sprintf("%d VIOLATED", n)
		}
		c := r.Latency["completed"]
		lines = append(lines, []string{row.label, load, fmt.Sprintf("%.0f %%", r.Keyed*100),
			fmt.Sprintf("%.0f", r.OrdersPerSecond), fmt.Sprintf("%.0f", r.CompletedPerSec), ratio,
			fmt.Sprintf("%.1f", c.P50), fmt.Sprintf("%.1f", c.P99), fmt.Sprintf("%.1f", c.P999), late,
			fmt.Sprintf("%.1f", r.NotificationLag.P99), fmt.Sprint(r.Errors), fmt.Sprintf("%.1f", rss), inv})
	}
	widths := make([]int, len(header))
	for _, l := range lines {
		for i, cell := range l {
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	for _, l := range lines {
		cells := slices.Clone(l)
		for i, cell := range cells {
			pad := strings.Repeat(" ", widths[i]-len([]rune(cell)))
			if i == 0 {
				cells[i] = cell + pad
			} else {
				cells[i] = pad + cell
			}
		}
		fmt.Fprintln(w, strings.TrimRight(strings.Join(cells, "  "), " "))
	}
	fmt.Fprintln(w, "÷ pgbench: completed orders/s per pgbench tps; p50..p99.9: completed orders, open loop from the scheduled start; late: open-loop requests that started late")
}
