package deploycheck_test

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// labelled is what the label checks read of any object.
type labelled struct {
	Kind     string
	Metadata struct {
		Name   string
		Labels map[string]string
	}
	Spec struct {
		Selector    map[string]any // a Service's labels, or a workload's or budget's LabelSelector
		PodSelector map[string]any // a NetworkPolicy's
		Template    *struct {
			Metadata struct{ Labels map[string]string }
		}
	}
}

// component is the app.kubernetes.io/component of each app.kubernetes.io/name.
var component = map[string]string{
	"user": "backend", "billing": "backend", "order": "backend", "notification": "backend",
	"user-test": "test", "billing-test": "test", "order-test": "test", "notification-test": "test",
	"postgresql": "database", "rabbitmq": "message-broker",
	"index": "default-backend", "devidp": "identity-provider", "jaeger": "tracing",
}

// labelValue is a version as helm create and Bitnami's charts put it in a label: "+" is not
// allowed in a label value.
func labelValue(s string) string {
	s = strings.ReplaceAll(s, "+", "_")
	return strings.TrimSuffix(s[:min(len(s), 63)], "-")
}

// checkLabels checks the standard labels of every object of a rendering of the chart in dir
// and of its pods' templates, and that selectors hold the name and the instance only. meta
// gives the Chart.yaml of the chart that renders an object, by its directory. It returns
// the kinds it saw.
func checkLabels(t *testing.T, dir string, docs []string, meta func(dir string) chartMeta) []string {
	t.Helper()
	var kinds []string
	for _, doc := range docs {
		var o labelled
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		if o.Kind == "" {
			continue
		}
		kinds = append(kinds, o.Kind)
		// "# Source: order-system/charts/billing/templates/service.yaml": the chart is the
		// path up to templates/, below the top chart's own directory.
		_, source, _ := strings.Cut(doc, "# Source: ")
		source, _, _ = strings.Cut(source, "\n")
		top, rest, _ := strings.Cut(source, "/")
		sub, _, ok := strings.Cut("/"+rest, "/templates/")
		if top == "" || !ok {
			t.Fatalf("%s %s: no source in %q", o.Kind, o.Metadata.Name, doc)
		}
		c := meta(filepath.Join(dir, sub))
		what := o.Kind + " " + o.Metadata.Name
		name := o.Metadata.Labels["app.kubernetes.io/name"]
		wantComponent, ok := component[name]
		if name == "order-system" { // the umbrella chart's own objects
			wantComponent, ok = "ingress", true
			if o.Kind == "Secret" {
				wantComponent = "credentials"
			}
		}
		if !ok {
			t.Errorf("%s: app.kubernetes.io/name %q is none of the chart's parts", what, name)
		}
		want := map[string]string{
			"app.kubernetes.io/name":       name,
			"app.kubernetes.io/instance":   "order-system",
			"app.kubernetes.io/version":    labelValue(c.AppVersion),
			"app.kubernetes.io/component":  wantComponent,
			"app.kubernetes.io/managed-by": "Helm",
			"app.kubernetes.io/part-of":    "order-system",
			"helm.sh/chart":                labelValue(c.Name + "-" + c.Version),
		}
		check := func(what string, got map[string]string) {
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: label %s %q, want %q (chart %s %s, app %s)", what, k, got[k], v, c.Name, c.Version, c.AppVersion)
				}
			}
			for k, v := range got {
				if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(errs) > 0 {
					t.Errorf("%s: label %s=%q is not valid: %v", what, k, v, errs)
				}
			}
		}
		check(what, o.Metadata.Labels)
		selector := map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "order-system"}
		if tpl := o.Spec.Template; tpl != nil {
			check(what+" pod template", tpl.Metadata.Labels)
		} else if o.Kind == "Deployment" || o.Kind == "StatefulSet" {
			t.Errorf("%s has no pod template", what)
		}
		// Selectors are immutable: only what never changes with a version.
		var sel map[string]any
		switch o.Kind {
		case "Service":
			sel = o.Spec.Selector
		case "Deployment", "StatefulSet", "PodDisruptionBudget":
			sel, _ = o.Spec.Selector["matchLabels"].(map[string]any)
			if len(o.Spec.Selector) != 1 {
				t.Errorf("%s: selector %v, want matchLabels only", what, o.Spec.Selector)
			}
		case "NetworkPolicy": // named as the pods it protects
			sel, _ = o.Spec.PodSelector["matchLabels"].(map[string]any)
		default:
			continue
		}
		got := map[string]string{}
		for k, v := range sel {
			got[k], _ = v.(string)
		}
		if !maps.Equal(got, selector) {
			t.Errorf("%s: selector %v, want %v", what, got, selector)
		}
	}
	slices.Sort(kinds)
	return slices.Compact(kinds)
}

// fromDisk reads the Chart.yaml of a chart directory.
func fromDisk(t *testing.T) func(string) chartMeta {
	return func(dir string) chartMeta { return readChart(t, filepath.Join(dir, "Chart.yaml")) }
}

// Every object the charts render, and every pod's template, carries the recommended labels
// and helm.sh/chart, the umbrella's objects with the umbrella's chart and version and each
// subchart's with its own, whether installed under the umbrella or on its own.
func TestStandardLabels(t *testing.T) {
	everything := []string{"global.auth.enabled=true", "global.auth.devProvider=true", "httpRoute.enabled=true", gatewayAPI,
		"global.podDisruptionBudget.enabled=true", "global.autoscaling.enabled=true",
		"global.metrics.serviceMonitor.enabled=true", serviceMonitorAPI, "global.tracing.jaeger=true", "postgresql.metrics.enabled=true"}
	kinds := checkLabels(t, chart, manifests(t, chart, everything...), fromDisk(t))
	want := []string{"ConfigMap", "Deployment", "HTTPRoute", "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy",
		"Pod", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "ServiceMonitor", "StatefulSet"}
	if !slices.Equal(kinds, want) {
		t.Errorf("checked kinds %v, want %v", kinds, want)
	}
	for _, sub := range []string{"user", "billing", "order", "notification", "postgresql", "rabbitmq"} {
		dir := filepath.Join(chart, "charts", sub)
		docs := manifests(t, dir, append(givenPasswords, "superuserPassword=pw-postgres", "metrics.enabled=true",
			"global.metrics.serviceMonitor.enabled=true", serviceMonitorAPI)...)
		if kinds := checkLabels(t, dir, docs, fromDisk(t)); len(kinds) < 3 {
			t.Errorf("%s on its own: checked only %v", sub, kinds)
		}
	}
}

// A chart version with build metadata ("+"), which a label value cannot hold, still makes
// valid labels: the chart as packaged with such a version renders with "_" in its place.
func TestChartVersionWithPlus(t *testing.T) {
	const version = "0.1.0+build.7"
	dir := t.TempDir()
	helm(t, "package", chart, "--version", version, "--app-version", version, "--destination", dir)
	packaged := filepath.Join(dir, "order-system-"+version+".tgz")
	docs := manifests(t, packaged)
	umbrella := 0
	checkLabels(t, chart, docs, func(d string) chartMeta {
		c := readChart(t, filepath.Join(d, "Chart.yaml"))
		if d == chart {
			umbrella++
			c.Version, c.AppVersion = version, version
		}
		return c
	})
	if umbrella == 0 {
		t.Fatal("no object of the umbrella chart itself")
	}
	for _, doc := range docs {
		if strings.Contains(doc, "# Source: order-system/templates/") && !strings.Contains(doc, "helm.sh/chart: order-system-0.1.0_build.7\n") {
			t.Errorf("an umbrella object without helm.sh/chart order-system-0.1.0_build.7:\n%s", doc[:min(len(doc), 400)])
		}
	}
}
