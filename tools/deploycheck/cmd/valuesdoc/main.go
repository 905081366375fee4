// Command valuesdoc rewrites the values tables of the chart's README from its values files
// (package valuesdoc): run it from tools/deploycheck after changing a values file,
//
//	go run ./cmd/valuesdoc
//
// which make deploy-check would otherwise refuse (TestChartReadme).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/order-system/order-system/tools/deploycheck/valuesdoc"
)

func main() {
	chart := flag.String("chart", "../../deploy/helm/order-system", "the chart, whose README.md is rewritten")
	flag.Parse()
	readme := filepath.Join(*chart, "README.md")
	old, err := os.ReadFile(readme)
	if err == nil {
		var updated []byte
		if updated, err = valuesdoc.Update(old, *chart); err == nil && !bytes.Equal(old, updated) {
			err = os.WriteFile(readme, updated, 0o644)
			fmt.Println("rewrote", readme)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "valuesdoc:", err)
		os.Exit(1)
	}
}
