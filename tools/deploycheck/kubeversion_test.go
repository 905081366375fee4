package deploycheck_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every chart declares the oldest Kubernetes it runs on: the services' preStop sleep action
// needs 1.30.
func TestKubeVersion(t *testing.T) {
	const want = ">=1.30.0-0"
	var found []string
	err := filepath.WalkDir("../../deploy/helm", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "Chart.yaml" {
			return err
		}
		found = append(found, path)
		if got := readChart(t, path).KubeVersion; got != want {
			t.Errorf("%s: kubeVersion %q, want %q", path, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The umbrella chart and every chart under its charts/.
	subs, err := os.ReadDir(filepath.Join(chart, "charts"))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1+len(subs) {
		t.Errorf("found %d Chart.yaml files %v, want the umbrella's and %d subcharts'", len(found), found, len(subs))
	}
	// helm refuses an older cluster.
	if out := helmFails(t, "template", "order-system", chart, "--kube-version", "1.29.9"); !strings.Contains(out, "incompatible with Kubernetes v1.29.9") {
		t.Errorf("rendering for Kubernetes 1.29: %s", out)
	}
}
