package deploycheck_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// The subcharts reach the library chart as a dependency of their Chart.yaml (file://, packaged
// into their charts/ by deploy/helm/dependencies.sh), never through a link in the tree: a link
// checks out as a plain file where links are off, and helm walks it with a warning on every run.
func TestNoSymlinks(t *testing.T) {
	err := filepath.WalkDir("../../deploy/helm", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(path)
			t.Errorf("%s is a link to %s: declare the chart as a file:// dependency instead", path, target)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	subs, err := os.ReadDir(filepath.Join(chart, "charts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range subs {
		c := readChart(t, filepath.Join(chart, "charts", sub.Name(), "Chart.yaml"))
		if c.Type == "library" {
			continue
		}
		var found bool
		for _, d := range c.Dependencies {
			if d.Name == "order-system-lib" {
				found = true
				if d.Repository != "file://../order-system-lib" {
					t.Errorf("charts/%s takes order-system-lib from %q, want file://../order-system-lib", sub.Name(), d.Repository)
				}
			}
		}
		if !found {
			t.Errorf("charts/%s does not declare the library chart order-system-lib as a dependency", sub.Name())
		}
	}
}
