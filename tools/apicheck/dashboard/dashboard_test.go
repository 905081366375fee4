package dashboard_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/order-system/order-system/tools/apicheck/dashboard"
)

const grafanaJSON = "../../../deploy/grafana/order-system.json"
const consoleTemplate = "../../../deploy/prometheus/consoles/order-system.html"

// The panels both dashboards must have, as the issue asks for them, and the database's from
// PostgreSQL's exporter.
var wantPanels = []string{"Orders finished", "Request latency", "5xx responses", "Outbox backlog", "Oldest outbox event",
	"Pending orders", "Oldest pending order", "Dead-lettered events", "CPU", "Resident memory",
	"Database connections", "Database transactions"}

var variables = dashboard.Variables{RateInterval: time.Minute, Interval: 15 * time.Second, Range: time.Hour}

// TestTheGrafanaDashboardsQueries: the dashboard of the repository has the panels, each
// querying Prometheus through its datasource variable, and every query comes out of the
// substitution as plain PromQL.
func TestTheGrafanaDashboardsQueries(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(grafanaJSON)
	if err != nil {
		t.Fatal(err)
	}
	titles, queries, err := dashboard.Queries(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(titles, wantPanels) {
		t.Errorf("panels %q, want %q", titles, wantPanels)
	}
	if want := strings.Count(string(raw), `"expr":`); len(queries) != want {
		t.Errorf("%d queries, want one per expr of the file (%d)", len(queries), want)
	}
	perPanel := map[string]int{}
	for _, q := range queries {
		perPanel[q.Panel]++
		expr, err := variables.Substitute(q.Expr)
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		if strings.Contains(expr, "$") || strings.Contains(expr, "[[") {
			t.Errorf("%s: %q still has a variable", q, expr)
		}
	}
	for _, two := range []string{"Orders finished", "Request latency", "Pending orders", "Database connections", "Database transactions"} {
		if perPanel[two] != 2 {
			t.Errorf("panel %q has %d queries, want 2", two, perPanel[two])
		}
	}
	// The dead-letter panel uses the services' own counters: the broker's series need a
	// plugin make run does not require.
	for _, q := range queries {
		if strings.Contains(q.Expr, "rabbitmq_") {
			t.Errorf("%s queries the broker's plugin: %s", q, q.Expr)
		}
	}
}

// TestTheConsoleHasTheGrafanaPanels: the console template's panels are the same, by title.
func TestTheConsoleHasTheGrafanaPanels(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(consoleTemplate)
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, m := range regexp.MustCompile(`data-panel="([^"]*)"`).FindAllStringSubmatch(string(src), -1) {
		titles = append(titles, m[1])
	}
	if !slices.Equal(titles, wantPanels) {
		t.Errorf("console panels %q, want %q", titles, wantPanels)
	}
	code := regexp.MustCompile(`(?s)\{\{/\*.*?\*/\}\}`).ReplaceAllString(string(src), "") // comments aside
	if strings.Contains(code, "rabbitmq_") {
		t.Error("the console queries the broker's plugin, which make run does not require")
	}
}

func dashboardJSON(panels string) []byte {
	return []byte(`{"templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
		"panels": [` + panels + `]}`)
}

const ds = `"datasource": {"type": "prometheus", "uid": "${datasource}"}`

// TestQueriesWalkRowsAndSkipHiddenQueries: the panels of a collapsed row count, the row does
// not, and a hidden query is not run.
func TestQueriesWalkRowsAndSkipHiddenQueries(t *testing.T) {
	t.Parallel()
	raw := dashboardJSON(`{"type": "timeseries", "title": "Top", ` + ds + `, "targets": [{"refId": "A", "expr": "up"}]},
		{"type": "row", "title": "More", "panels": [
			{"type": "stat", "title": "Inside", "datasource": {"type": "prometheus", "uid": "$datasource"},
			 "targets": [{"refId": "A", "expr": "a", "hide": true}, {"refId": "B", "expr": "b", ` + ds + `}]}]}`)
	titles, queries, err := dashboard.Queries(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(titles, []string{"Top", "Inside"}) {
		t.Errorf("titles %q, want Top and Inside", titles)
	}
	want := []dashboard.Query{{Panel: "Top", RefID: "A", Expr: "up"}, {Panel: "Inside", RefID: "B", Expr: "b"}}
	if !slices.Equal(queries, want) {
		t.Errorf("queries %+v, want %+v", queries, want)
	}
}

// TestQueriesRefuseWhatTheyCannotRun: each broken panel is named in the error.
func TestQueriesRefuseWhatTheyCannotRun(t *testing.T) {
	t.Parallel()
	for name, panel := range map[string]string{
		"no datasource":       `{"type": "timeseries", "title": "P", "targets": [{"refId": "A", "expr": "up"}]}`,
		"a fixed datasource":  `{"type": "timeseries", "title": "P", "datasource": {"type": "prometheus", "uid": "abc123"}, "targets": [{"refId": "A", "expr": "up"}]}`,
		"an unknown variable": `{"type": "timeseries", "title": "P", "datasource": {"type": "prometheus", "uid": "${other}"}, "targets": [{"refId": "A", "expr": "up"}]}`,
		"another type":        `{"type": "timeseries", "title": "P", "datasource": {"type": "loki", "uid": "${datasource}"}, "targets": [{"refId": "A", "expr": "up"}]}`,
		"an empty expression": `{"type": "timeseries", "title": "P", ` + ds + `, "targets": [{"refId": "A", "expr": " "}]}`,
		"no queries":          `{"type": "timeseries", "title": "P", ` + ds + `, "targets": []}`,
		"a query elsewhere":   `{"type": "timeseries", "title": "P", ` + ds + `, "targets": [{"refId": "A", "expr": "up", "datasource": {"type": "prometheus", "uid": "xyz"}}]}`,
	} {
		if _, queries, err := dashboard.Queries(dashboardJSON(panel)); err == nil || !strings.Contains(err.Error(), `"P"`) {
			t.Errorf("%s: queries %+v, error %v; want an error naming panel P", name, queries, err)
		}
	}
	if _, _, err := dashboard.Queries([]byte(`{"panels": []}`)); err == nil {
		t.Error("a dashboard without panels passed")
	}
	if _, _, err := dashboard.Queries([]byte(`<html>`)); err == nil {
		t.Error("HTML passed as a dashboard")
	}
}

// TestSubstitute: Grafana's built-in variables in each of its forms, regular expressions
// with $ left alone, any other variable an error naming it.
func TestSubstitute(t *testing.T) {
	t.Parallel()
	v := dashboard.Variables{RateInterval: 90 * time.Second, Interval: 1500 * time.Millisecond, Range: 2 * time.Hour}
	for expr, want := range map[string]string{
		`rate(x[$__rate_interval])`:                             `rate(x[90s])`,
		`rate(x[${__rate_interval}]) + rate(y[[[__interval]]])`: `rate(x[90s]) + rate(y[1500ms])`,
		`increase(x[$__range]) / $__range_s`:                    `increase(x[2h]) / 7200`,
		`x offset $__interval`:                                  `x offset 1500ms`,
		`$__interval_ms + $__range_ms`:                          `1500 + 7200000`,
		`x{route=~"/orders$", a="$"}`:                           `x{route=~"/orders$", a="$"}`,
	} {
		got, err := v.Substitute(expr)
		if err != nil || got != want {
			t.Errorf("Substitute(%q) = %q, %v; want %q", expr, got, err, want)
		}
	}
	for _, expr := range []string{`up{job="$job"}`, `rate(x[${window}])`, `x[[instance]]`} {
		if got, err := v.Substitute(expr); err == nil || !strings.Contains(err.Error(), "unknown variables") {
			t.Errorf("Substitute(%q) = %q, %v; want an error for the unknown variable", expr, got, err)
		}
	}
	if got, _ := (dashboard.Variables{RateInterval: time.Minute}).Substitute("[$__rate_interval]"); got != "[1m]" {
		t.Errorf("a minute is %q, want [1m]", got)
	}
}

// TestSeries: only series with a number count, and an error answer is an error with
// Prometheus's message.
func TestSeries(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]int{
		`{"status":"success","data":{"resultType":"vector","result":[]}}`:                                                                       0,
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1,"2.5"]},{"metric":{},"value":[1,"0"]}]}}`: 2,
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1,"NaN"]}]}}`:                               0,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"NaN"],[2,"3"]]},{"values":[[1,"NaN"]]}]}}`:      1,
		`{"status":"success","data":{"resultType":"scalar","result":[1,"4"]}}`:                                                                  1,
	} {
		got, err := dashboard.Series([]byte(body))
		if err != nil || got != want {
			t.Errorf("Series(%s) = %d, %v; want %d", body, got, err, want)
		}
	}
	_, err := dashboard.Series([]byte(`{"status":"error","errorType":"bad_data","error":"parse error: unexpected identifier"}`))
	if err == nil || !strings.Contains(err.Error(), "parse error") {
		t.Errorf("an error answer: %v; want its message", err)
	}
	for _, body := range []string{`not json`, `{"status":"success","data":{"resultType":"string","result":[1,"x"]}}`} {
		if _, err := dashboard.Series([]byte(body)); err == nil {
			t.Errorf("Series(%s) passed", body)
		}
	}
}

// TestOldestScrapeAndEvaluation: the least recent one counts, never is the zero time.
func TestOldestScrapeAndEvaluation(t *testing.T) {
	t.Parallel()
	targets := `{"status":"success","data":{"activeTargets":[
		{"scrapePool":"user","lastScrape":"2026-12-06T22:00:05Z"},
		{"scrapePool":"order","lastScrape":"2026-12-06T22:00:01.5Z"},
		{"scrapePool":"billing","lastScrape":"2026-12-06T22:00:03Z"}]}}`
	got, err := dashboard.OldestScrape([]byte(targets))
	if want := time.Date(2026, 12, 6, 22, 0, 1, 5e8, time.UTC); err != nil || !got.Equal(want) {
		t.Errorf("OldestScrape = %v, %v; want %v", got, err, want)
	}
	never := `{"status":"success","data":{"activeTargets":[{"lastScrape":"2026-12-06T22:00:05Z"},{"lastScrape":"0001-01-01T00:00:00Z"}]}}`
	if got, err := dashboard.OldestScrape([]byte(never)); err != nil || !got.IsZero() {
		t.Errorf("with a target never scraped: %v, %v; want the zero time", got, err)
	}
	if _, err := dashboard.OldestScrape([]byte(`{"status":"success","data":{"activeTargets":[]}}`)); err == nil {
		t.Error("no targets passed")
	}
	now := time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)
	rules := `{"status":"success","data":{"groups":[{"name":"a","lastEvaluation":"2026-12-06T22:00:04Z"},{"name":"b","lastEvaluation":"2026-12-06T22:00:02Z"}]}}`
	if got, err := dashboard.OldestEvaluation([]byte(rules), now); err != nil || !got.Equal(time.Date(2026, 12, 6, 22, 0, 2, 0, time.UTC)) {
		t.Errorf("OldestEvaluation = %v, %v", got, err)
	}
	if got, err := dashboard.OldestEvaluation([]byte(`{"status":"success","data":{"groups":[]}}`), now); err != nil || !got.Equal(now) {
		t.Errorf("without groups: %v, %v; want now", got, err)
	}
}

// TestDownTargets: a target is down unless its last scrape was; each is named with its error.
func TestDownTargets(t *testing.T) {
	t.Parallel()
	targets := `{"status":"success","data":{"activeTargets":[
		{"scrapePool":"user","labels":{"instance":"user:8080","job":"user"},"health":"up","lastError":""},
		{"scrapePool":"postgres","labels":{"instance":"postgres-exporter:9187","job":"postgres"},"health":"down","lastError":"connection refused"},
		{"scrapePool":"order","labels":{"instance":"order:8080","job":"order"},"health":"unknown","lastError":""}]}}`
	got, err := dashboard.DownTargets([]byte(targets))
	want := []string{"order order:8080: unknown", "postgres postgres-exporter:9187: down, connection refused"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("DownTargets = %q, %v; want %q", got, err, want)
	}
	allUp := `{"status":"success","data":{"activeTargets":[{"scrapePool":"user","labels":{"instance":"user:8080"},"health":"up"}]}}`
	if got, err := dashboard.DownTargets([]byte(allUp)); err != nil || len(got) != 0 {
		t.Errorf("every target up: %q, %v; want none down", got, err)
	}
	if _, err := dashboard.DownTargets([]byte(`{"status":"error","errorType":"bad_data","error":"nope"}`)); err == nil {
		t.Error("an error answer passed")
	}
}
