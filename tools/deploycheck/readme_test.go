package deploycheck_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/order-system/order-system/tools/deploycheck/valuesdoc"
	"sigs.k8s.io/yaml"
)

// The chart's README lists every value with its default and its comment, as the values files
// have them: a value added, changed or documented anew without the README following fails.
func TestChartReadme(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(chart, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := valuesdoc.Update(readme, chart)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readme, want) {
		t.Errorf("deploy/helm/order-system/README.md and the values files disagree: run `go run ./cmd/valuesdoc` in tools/deploycheck")
	}
	for _, row := range []string{"| `ingress.host` | `arch.homework` |", "| `<service>.replicas` | `1` |", "| `postgresql.storage` | `1Gi` |"} {
		if !bytes.Contains(want, []byte(row)) {
			t.Errorf("the values tables lack %q", row)
		}
	}
}

// notes renders the chart's NOTES.txt (which helm template leaves out) through a copy of the
// chart with a template that puts it in a ConfigMap.
func notes(t *testing.T, set ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "order-system")
	if err := os.CopyFS(dir, os.DirFS(chart)); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(chart, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"_notes_under_test.tpl": `{{- define "notes-under-test" -}}` + "\n" + string(text) + "{{- end }}\n",
		"notes-under-test.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ include \"notes-under-test\" . | toJson }}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, "templates", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	docs := manifests(t, dir, append(set, "--show-only=templates/notes-under-test.yaml")...)
	var cm struct{ Data map[string]string }
	if err := yaml.Unmarshal([]byte(docs[len(docs)-1]), &cm); err != nil {
		t.Fatal(err)
	}
	return cm.Data["notes"]
}

// After an install, helm prints how to reach the API, however it is exposed, and how to run
// the release's tests.
func TestNotes(t *testing.T) {
	for _, tt := range []struct {
		name      string
		set       []string
		want, not []string
	}{
		{"default", nil,
			[]string{"Reach the API through the Ingress order-system (class nginx) at http://arch.homework/\n", "helm test order-system --namespace default",
				"serves /billing, /notifications, /orders, /users", "GET http://arch.homework/ lists", "newman run postman/order-system.postman_collection.json -e postman/k8s.postman_environment.json"},
			[]string{"port-forward", "HTTPRoute", "--env-var", "Sign-in"}},
		{"tls and another host", []string{"ingress.tls.secretName=tls", "ingress.host=shop.example.com"},
			[]string{"at https://shop.example.com/", "--env-var baseUrl=https://shop.example.com"}, nil},
		{"HTTPRoute only", []string{"ingress.enabled=false", "httpRoute.enabled=true", gatewayAPI},
			[]string{"HTTPRoute order-system for the host arch.homework, on the Gateway gateway"}, []string{"Ingress order-system", "port-forward"}},
		{"neither", []string{"ingress.enabled=false", "order.fullnameOverride=shop-orders"},
			[]string{"port-forward service/shop-orders 8080:8080", "helm test order-system"}, []string{"newman", "GET http"}},
		{"sign-in", []string{"global.auth.enabled=true", "global.auth.devProvider=true"},
			[]string{"needs an access token from http://order-system-devidp:8070"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := notes(t, tt.set...)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("NOTES lack %q:\n%s", w, got)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("NOTES have %q:\n%s", n, got)
				}
			}
		})
	}
}
