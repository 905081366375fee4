package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/order-system/order-system/tools/loadgen/report"
)

// runReport writes the HTML report of several runs, and optionally each chart as an SVG file:
//
//	loadgen report -out bench.html [-pgbench-tps N] [-svg-dir dir] label=report.json ...
//
// Nothing is written unless every report reads and every chart draws.
func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("out", "", "the HTML file to write (required)")
	tps := fs.Float64("pgbench-tps", 0, "the pgbench reference of the same run, for the table's ratio column")
	svgDir := fs.String("svg-dir", "", "also write each chart there as <label>-<chart>.svg")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("-out is required")
	}
	runs, err := readRuns(fs.Args())
	if err != nil {
		return err
	}
	var page bytes.Buffer
	if err := report.Write(&page, runs, *tps); err != nil {
		return err
	}
	files := map[string][]byte{*out: page.Bytes()}
	if *svgDir != "" {
		charts, err := report.Charts(runs)
		if err != nil {
			return err
		}
		for i, run := range runs {
			for _, c := range charts[i] {
				name := filepath.Join(*svgDir, slug(run.Name)+"-"+c.Name+".svg")
				if _, taken := files[name]; taken {
					return fmt.Errorf("two runs' charts would both be %s: give the runs other labels", name)
				}
				files[name] = c.SVG
			}
		}
	}
	for name, b := range files {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// slug makes a run's label a file name: lower case, anything but letters and digits a dash.
func slug(label string) string {
	s := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(label))
	if s = strings.Trim(s, "-"); s == "" {
		return "run"
	}
	return s
}
