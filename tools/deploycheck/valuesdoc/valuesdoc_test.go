package valuesdoc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sample = `# Shared settings.
global:
  image:
    registry: ""   # e.g. registry.example.com
    pullPolicy: IfNotPresent   # when to pull
  # Login role per service.
  users:
    user: { role: user_service, password: "" }
# The routes, each a <prefix> | service.
routes:
  - { prefix: /users, service: user }
# Requests and limits.
resources:
  requests: { cpu: 50m }
env: {}   # Extra environment, as ` + "`KEY: value`" + `.
`

func TestRows(t *testing.T) {
	rows, err := Rows([]byte(sample), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{"global", "", "Shared settings."},
		{"global.image.registry", `""`, "e.g. registry.example.com"},
		{"global.image.pullPolicy", "IfNotPresent", "when to pull"},
		{"global.users", "", "Login role per service."},
		{"global.users.user", `{role: user_service, password: ""}`, ""},
		{"routes", "[{prefix: /users, service: user}]", "The routes, each a <prefix> | service."},
		{"resources", "", "Requests and limits."},
		{"resources.requests", "{cpu: 50m}", ""},
		{"env", "{}", "Extra environment, as `KEY: value`."},
	}
	if !slices.Equal(rows, want) {
		t.Errorf("rows\n%q\nwant\n%q", rows, want)
	}
	prefixed, _ := Rows([]byte("a: 1 # one\n"), "<service>")
	if len(prefixed) != 1 || prefixed[0].Key != "<service>.a" {
		t.Errorf("prefixed rows %q", prefixed)
	}
}

func TestRowsUndocumented(t *testing.T) {
	_, err := Rows([]byte("# Described.\na:\n  b: 1\nc:\n  d: 2\n  e: 3 # described\nf: 4\n"), "")
	if err == nil {
		t.Fatal("no error for values without a comment")
	}
	for _, key := range []string{"c.d (line 5)", "f (line 7)"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
	for _, key := range []string{"a.b", "c.e"} {
		if strings.Contains(err.Error(), key) {
			t.Errorf("error %q names %s, which is described", err, key)
		}
	}
}

func TestTable(t *testing.T) {
	got := Table([]Row{{"routes", "[{a: b}]", "each a <prefix> | service, `<kept>`"}, {"global", "", "Shared."}})
	want := "| Key | Default | Description |\n|---|---|---|\n" +
		"| `routes` | `[{a: b}]` | each a &lt;prefix&gt; \\| service, `<kept>` |\n" +
		"| `global` |  | Shared. |\n"
	if got != want {
		t.Errorf("table\n%s\nwant\n%s", got, want)
	}
}

func TestMerge(t *testing.T) {
	user := []Row{{"name", "user", "The name."}, {"billingURL", `""`, "Where billing is."}, {"env", "{}", "e.g. LOG_LEVEL"}}
	billing := []Row{{"name", "billing", "The name."}, {"env", "{}", "e.g. LOG_LEVEL"}, {"extra", "1", "Only here."}}
	order := []Row{{"name", "order", "The name."}, {"billingURL", `""`, "Where billing is."}, {"env", "{}", "e.g. RECONCILE"}}
	got := MergedTable(Merge([]Source{{"user", user}, {"billing", billing}, {"order", order}}))
	want := "| Key | Default | Description |\n|---|---|---|\n" +
		"| `name` | user: `user`<br>billing: `billing`<br>order: `order` | The name. |\n" +
		"| `billingURL` | `\"\"` | (user, order only) Where billing is. |\n" +
		"| `env` | `{}` | user, billing: e.g. LOG_LEVEL<br>order: e.g. RECONCILE |\n" +
		"| `extra` | `1` | (billing only) Only here. |\n"
	if got != want {
		t.Errorf("merged table\n%s\nwant\n%s", got, want)
	}
}

func TestUpdate(t *testing.T) {
	dir := t.TempDir()
	for path, content := range map[string]string{
		"values.yaml":          "a: 1 # one\n",
		"charts/x/values.yaml": "b: 2 # two\n",
		"charts/y/values.yaml": "b: 3 # two\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	readme := "# Chart\n\n<!-- values table: values.yaml -->\nstale\n<!-- end of values table -->\n\ntext\n" +
		"<!-- values table: prefix=<s> charts/x/values.yaml charts/y/values.yaml -->\n<!-- end of values table -->\nend\n"
	got, err := Update([]byte(readme), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Chart\n\n<!-- values table: values.yaml -->\n" + Table([]Row{{"a", "1", "one"}}) + "<!-- end of values table -->\n\ntext\n" +
		"<!-- values table: prefix=<s> charts/x/values.yaml charts/y/values.yaml -->\n" +
		"| Key | Default | Description |\n|---|---|---|\n| `<s>.b` | x: `2`<br>y: `3` | two |\n<!-- end of values table -->\nend\n"
	if string(got) != want {
		t.Errorf("updated\n%s\nwant\n%s", got, want)
	}
	again, _ := Update(got, dir)
	if string(again) != string(got) {
		t.Error("a second update changed the README")
	}
	if _, err := Update([]byte("<!-- values table: values.yaml -->\nno end\n"), dir); err == nil {
		t.Error("no error for a table without its end marker")
	}
	if _, err := Update([]byte("# no table\n"), dir); err == nil {
		t.Error("no error for a README without a table")
	}
}
