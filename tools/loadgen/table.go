package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/order-system/order-system/tools/loadgen/result"
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
	runs, err := readRuns(fs.Args())
	if err != nil {
		return err
	}
	printTable(os.Stdout, runs, *tps)
	return nil
}

// readRuns reads the reports named by label=report.json arguments, in their order.
func readRuns(args []string) ([]result.Run, error) {
	var runs []result.Run
	for _, arg := range args {
		label, file, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want label=report.json", arg)
		}
		r, err := result.Read(file)
		if err != nil {
			return nil, err
		}
		runs = append(runs, result.Run{Name: label, Report: r})
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("no reports given")
	}
	return runs, nil
}

// printTable writes result.Table as aligned text, one line per run, then the CPU bill of the
// runs that have one (result.BillTable), a column per run.
func printTable(w io.Writer, runs []result.Run, pgbenchTPS float64) {
	if pgbenchTPS > 0 {
		fmt.Fprintf(w, "pgbench debit tps (same run): %.0f\n", pgbenchTPS)
	}
	header, rows := result.Table(runs, pgbenchTPS)
	printAligned(w, header, rows)
	fmt.Fprintln(w, result.TableNote)
	if header, rows := result.BillTable(runs); len(rows) > 0 {
		fmt.Fprintln(w)
		printAligned(w, header, rows)
		fmt.Fprintln(w, result.BillNote)
	}
}

// printAligned writes a header and its rows in columns, the first left-aligned, the others
// right-aligned.
func printAligned(w io.Writer, header []string, rows [][]string) {
	lines := append([][]string{header}, rows...)
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
}
