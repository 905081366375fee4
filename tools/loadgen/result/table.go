package result

import "fmt"

// Run is a report under the name it goes by when runs are compared.
type Run struct {
	Name   string
	Report Report
}

// TableNote says what the columns of Table that need it mean.
const TableNote = "÷ pgbench: completed orders/s per pgbench tps; p50..p99.9: completed orders, open loop from the scheduled start; late: open-loop requests that started late"

// Table is the comparison of runs, one row per run under a header, as `loadgen table` prints
// it and `loadgen report` shows it. Latencies are those of orders that completed; "late"
// counts open-loop requests that started after their due time; the ratio to pgbench is
// left out ("-") when pgbenchTPS is 0.
func Table(runs []Run, pgbenchTPS float64) (header []string, rows [][]string) {
	header = []string{"run", "load", "keyed", "orders/s", "completed/s", "÷ pgbench", "p50 ms", "p99 ms", "p99.9 ms", "late", "lag p99 ms", "errors", "max rss MiB", "invariants"}
	for _, run := range runs {
		r := run.Report
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
		rows = append(rows, []string{run.Name, load, fmt.Sprintf("%.0f %%", r.Keyed*100),
			fmt.Sprintf("%.0f", r.OrdersPerSecond), fmt.Sprintf("%.0f", r.CompletedPerSec), ratio,
			fmt.Sprintf("%.1f", c.P50), fmt.Sprintf("%.1f", c.P99), fmt.Sprintf("%.1f", c.P999), late,
			fmt.Sprintf("%.1f", r.NotificationLag.P99), fmt.Sprint(r.Errors), fmt.Sprintf("%.1f", rss), inv})
	}
	return header, rows
}
