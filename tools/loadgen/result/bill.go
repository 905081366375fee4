package result

import "fmt"

// CPUBill is what the run cost in CPU per completed order (an order answered 201), part by
// part of the system, the load generator and the whole machine, over the time orders were
// placed (the setup of the users before it and the wait for notifications after it are
// left out). tools/loadgen/procstat says how each part is measured and what it can miss.
type CPUBill struct {
	CompletedOrders int       `json:"completed_orders"`
	WindowSeconds   float64   `json:"window_seconds"`
	SamplePeriodMs  float64   `json:"sample_period_ms"` // how often the process list was read
	Samples         int       `json:"samples"`
	ClockTicks      uint64    `json:"clock_ticks_per_second"`
	Parts           []CPUPart `json:"parts"`
	// All CPUs of the machine: user, nice, system, irq, softirq and steal time from
	// /proc/stat, whoever spent it (other work on a shared machine included).
	MachineCPUSeconds          float64 `json:"machine_cpu_seconds"`
	MachineMsPerOrder          float64 `json:"machine_ms_per_order"`
	MachineNoLoadgenMsPerOrder float64 `json:"machine_without_loadgen_ms_per_order"`
}

// CPUPart is one line of the bill: a service (all its instances), the PostgreSQL backends
// of one role, the server's other processes, RabbitMQ, nginx or the load generator.
type CPUPart struct {
	Name       string  `json:"name"`
	CPUSeconds float64 `json:"cpu_seconds"`
	MsPerOrder float64 `json:"ms_per_order"`
	Processes  int     `json:"processes"` // processes seen in it during the run
}

// Machine rows of BillTable, after the parts.
const (
	MachineRow          = "machine total"
	MachineNoLoadgenRow = "machine total without loadgen"
)

// BillNote says what BillTable's figures are.
const BillNote = "CPU ms per completed order: CPU time over the time orders were placed ÷ orders answered 201; a service counts all its instances; machine total: all CPUs from /proc/stat, other work on the machine included; -: nothing to count (no such process, no order completed, or a report without a bill)"

// BillTable is the CPU bill of each run, a column per run and a row per part, then the
// machine total with and without the load generator: the rows `loadgen table` prints under
// "CPU ms per completed order". No rows when no run has a bill (reports written before it
// was measured); "-" in the column of such a run or of one without a completed order, and
// for a part with neither a process nor CPU (a broker not found, nothing ended unseen).
func BillTable(runs []Run) (header []string, rows [][]string) {
	header = []string{"CPU ms per completed order"}
	var names []string
	seen := map[string]bool{}
	billed := false
	for _, run := range runs {
		header = append(header, run.Name)
		if b := run.Report.CPUBill; b != nil {
			billed = true
			for _, p := range b.Parts {
				if !seen[p.Name] {
					seen[p.Name] = true
					names = append(names, p.Name)
				}
			}
		}
	}
	if !billed {
		return header, nil
	}
	cell := func(b *CPUBill, ms float64, measured bool) string {
		if b == nil || b.CompletedOrders == 0 || !measured {
			return "-"
		}
		return fmt.Sprintf("%.3f", ms)
	}
	for _, name := range names {
		row := []string{name}
		for _, run := range runs {
			b := run.Report.CPUBill
			var part CPUPart
			if b != nil {
				for _, p := range b.Parts {
					if p.Name == name {
						part = p
					}
				}
			}
			row = append(row, cell(b, part.MsPerOrder, part.Processes > 0 || part.CPUSeconds > 0))
		}
		rows = append(rows, row)
	}
	total, noLoadgen := []string{MachineRow}, []string{MachineNoLoadgenRow}
	for _, run := range runs {
		if b := run.Report.CPUBill; b != nil {
			total = append(total, cell(b, b.MachineMsPerOrder, true))
			noLoadgen = append(noLoadgen, cell(b, b.MachineNoLoadgenMsPerOrder, true))
		} else {
			total, noLoadgen = append(total, "-"), append(noLoadgen, "-")
		}
	}
	return header, append(rows, total, noLoadgen)
}
