package deploycheck_test

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
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

// rendered is one object of a rendering, with the template file it comes from.
type rendered struct {
	file string // the template's path, below deploy/helm
	kind string
	name string
	hook string // helm.sh/hook
}

// renderFiles renders a chart (its directory) and reads every object's kind, name, test hook
// and template file ("# Source:" is the file below the chart's parent directory).
func renderFiles(t *testing.T, dir string, set ...string) []rendered {
	t.Helper()
	var out []rendered
	for _, doc := range manifests(t, dir, set...) {
		var o struct {
			Kind     string
			Metadata struct {
				Name        string
				Annotations map[string]string
			}
		}
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		if o.Kind == "" {
			continue
		}
		_, source, ok := strings.Cut(doc, "# Source: ")
		source, _, _ = strings.Cut(source, "\n")
		if !ok || source == "" {
			t.Fatalf("%s %s: no source in %q", o.Kind, o.Metadata.Name, doc)
		}
		file, err := filepath.Rel("../../deploy/helm", filepath.Join(filepath.Dir(dir), source))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rendered{file, o.Kind, o.Metadata.Name, o.Metadata.Annotations["helm.sh/hook"]})
	}
	return out
}

// everyTemplate renders the umbrella chart and each subchart on its own with the values that
// switch every optional object on, so that every template renders what it can.
func everyTemplate(t *testing.T) []rendered {
	t.Helper()
	on := []string{"global.auth.enabled=true", "global.auth.devProvider=true", "httpRoute.enabled=true", gatewayAPI,
		"global.podDisruptionBudget.enabled=true", "global.autoscaling.enabled=true",
		"global.metrics.serviceMonitor.enabled=true", serviceMonitorAPI, "global.tracing.jaeger=true", "postgresql.metrics.enabled=true"}
	out := renderFiles(t, chart, on...)
	for _, sub := range []string{"user", "billing", "order", "notification", "postgresql", "rabbitmq"} {
		out = append(out, renderFiles(t, filepath.Join(chart, "charts", sub),
			append(givenPasswords, "superuserPassword=pw-postgres", "global.podDisruptionBudget.enabled=true", "global.autoscaling.enabled=true",
				"global.metrics.serviceMonitor.enabled=true", serviceMonitorAPI, "metrics.enabled=true")...)...)
	}
	return out
}

// Every template file renders objects of one kind at most (a service's Deployment, Service,
// ConfigMap... each in a file of its own), so that a file's name says what it holds. Every
// template file is seen rendering, but for checks.yaml, which only refuses values.
func TestOneKindPerTemplate(t *testing.T) {
	kinds := map[string]map[string]bool{}
	for _, o := range everyTemplate(t) {
		if kinds[o.file] == nil {
			kinds[o.file] = map[string]bool{}
		}
		kinds[o.file][o.kind] = true
	}
	for file, k := range kinds {
		if len(k) > 1 {
			t.Errorf("%s renders %d kinds %v: one kind per template file", file, len(k), slices.Sorted(maps.Keys(k)))
		}
	}
	silent := map[string]bool{"order-system/templates/checks.yaml": true}
	err := filepath.WalkDir("../../deploy/helm", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !slices.Contains(strings.Split(filepath.ToSlash(path), "/"), "templates") {
			return err
		}
		if strings.HasPrefix(d.Name(), "_") || d.Name() == "NOTES.txt" {
			return nil
		}
		file, _ := filepath.Rel("../../deploy/helm", path)
		if _, seen := kinds[file]; !seen && !silent[file] {
			t.Errorf("%s rendered nothing with every option on: the check did not see it", file)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// helm test's pods live under templates/tests/ in each chart that has them, and nothing else
// does: helm create's layout, where a chart's tests are found at a glance.
func TestTestHooksUnderTests(t *testing.T) {
	hooks := 0
	for _, o := range everyTemplate(t) {
		isTest := slices.Contains(strings.Split(o.hook, ","), "test") || slices.Contains(strings.Split(o.hook, ","), "test-success")
		inTests := strings.Contains(filepath.ToSlash(o.file), "/templates/tests/")
		if isTest {
			hooks++
		}
		if isTest && !inTests {
			t.Errorf("%s %s is a helm test hook from %s: put it under templates/tests/", o.kind, o.name, o.file)
		}
		if inTests && !isTest {
			t.Errorf("%s %s from %s is no helm test hook", o.kind, o.name, o.file)
		}
	}
	// The four services' tests under the umbrella chart, and each service's on its own.
	if hooks != 8 {
		t.Errorf("%d helm test hooks, want 8 (the four services', under the umbrella and on their own)", hooks)
	}
}
