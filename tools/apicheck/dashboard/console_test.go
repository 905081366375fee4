package dashboard_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/order-system/order-system/tools/apicheck/dashboard"
)

// testdata/console.html is the console page as Chromium serialized it once its graphs were
// drawn, served by a Prometheus 2.42 with Debian's console libraries.
func renderedConsole(t *testing.T) string {
	t.Helper()
	dom, err := os.ReadFile("testdata/console.html")
	if err != nil {
		t.Fatal(err)
	}
	return string(dom)
}

// TestARenderedConsoleShowsEveryPanel: on the page as rendered, every panel has values and a
// drawn line, and they are the Grafana dashboard's panels.
func TestARenderedConsoleShowsEveryPanel(t *testing.T) {
	t.Parallel()
	panels, err := dashboard.ConsolePanels(renderedConsole(t))
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, p := range panels {
		titles = append(titles, p.Title)
		if len(p.Problems) > 0 || len(p.Values) == 0 {
			t.Errorf("panel %q: values %q, problems %q", p.Title, p.Values, p.Problems)
		}
	}
	if !slices.Equal(titles, wantPanels) {
		t.Errorf("panels %q, want %q", titles, wantPanels)
	}
	if d := dashboard.ComparePanels(wantPanels, panels); d != nil {
		t.Errorf("the same panels differ: %q", d)
	}
}

// panelSection returns the part of dom from the panel's element to the next panel's.
func panelSection(t *testing.T, dom, title string) (start, end int) {
	t.Helper()
	start = strings.Index(dom, `data-panel="`+title+`"`)
	if start < 0 {
		t.Fatalf("no panel %q in the fixture", title)
	}
	end = strings.Index(dom[start+1:], "data-panel=")
	if end < 0 {
		return start, len(dom)
	}
	return start, start + 1 + end
}

// breakPanel applies change to the part of the page that is the panel's.
func breakPanel(t *testing.T, dom, title string, change func(string) string) string {
	start, end := panelSection(t, dom, title)
	broken := change(dom[start:end])
	if broken == dom[start:end] {
		t.Fatalf("the change left panel %q as it was", title)
	}
	return dom[:start] + broken + dom[end:]
}

var (
	firstValue = regexp.MustCompile(`class="panel-value">[^<]*<`)
	linePaths  = regexp.MustCompile(`<path class="path" d="[^"]*"`)
	graphTable = regexp.MustCompile(`(?s)<svg.*</svg>`)
)

// TestAPanelWithoutDataFails: each way a panel can lack data is found, in that panel only.
func TestAPanelWithoutDataFails(t *testing.T) {
	t.Parallel()
	dom := renderedConsole(t)
	for name, c := range map[string]struct {
		panel  string
		change func(string) string
		want   string
	}{
		"no data on the server": {"Outbox backlog", func(s string) string {
			return firstValue.ReplaceAllString(s, `class="panel-value">no data<`)
		}, "no data"},
		"NaN on the server": {"Request latency", func(s string) string {
			return firstValue.ReplaceAllLiteralString(s, `class="panel-value">NaN<`)
		}, "NaN"},
		"an empty value": {"CPU", func(s string) string {
			return firstValue.ReplaceAllLiteralString(s, `class="panel-value"> <`)
		}, "empty"},
		"no values at all": {"Resident memory", func(s string) string {
			return strings.ReplaceAll(s, `class="panel-value"`, `class="value"`)
		}, "no values"},
		"no line drawn": {"Dead-lettered events", func(s string) string {
			return graphTable.ReplaceAllLiteralString(s, `<div class="prom_graph_error">No timeseries returned</div>`)
		}, "No timeseries returned"},
		"a line of NaN": {"Orders finished", func(s string) string {
			return linePaths.ReplaceAllLiteralString(s, `<path class="path" d="MNaN,NaNL1,NaN"`)
		}, "no graph line"},
		"an empty line": {"Pending orders", func(s string) string {
			return linePaths.ReplaceAllLiteralString(s, `<path class="path" d=""`)
		}, "no graph line"},
	} {
		panels, err := dashboard.ConsolePanels(breakPanel(t, dom, c.panel, c.change))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, p := range panels {
			problems := strings.Join(p.Problems, "; ")
			switch {
			case p.Title == c.panel && !strings.Contains(problems, c.want):
				t.Errorf("%s: panel %q problems %q, want one with %q", name, p.Title, problems, c.want)
			case p.Title != c.panel && problems != "":
				t.Errorf("%s: panel %q, not changed, has problems %q", name, p.Title, problems)
			}
		}
	}
}

// TestComparePanels: a panel missing on either side, or twice on the console, is named.
func TestComparePanels(t *testing.T) {
	t.Parallel()
	console := []dashboard.Panel{{Title: "A"}, {Title: "B"}, {Title: "B"}, {Title: "X"}}
	got := strings.Join(dashboard.ComparePanels([]string{"A", "B", "C"}, console), "\n")
	for _, want := range []string{`"B" is on the console more than once`, `"X" is on the console, not in the Grafana`, `"C" is in the Grafana dashboard, not on the console`} {
		if !strings.Contains(got, want) {
			t.Errorf("differences %q, want one with %q", got, want)
		}
	}
	if strings.Contains(got, `"A"`) {
		t.Errorf("differences %q name A, which is on both", got)
	}
}

// TestAPageWithoutPanelsFails: a page that is not the console (an error page, a 404) has no
// panels, and that is an error rather than nothing to check.
func TestAPageWithoutPanelsFails(t *testing.T) {
	t.Parallel()
	if panels, err := dashboard.ConsolePanels(`<html><body><h1>404 page not found</h1></body></html>`); err == nil {
		t.Errorf("panels %+v, want an error", panels)
	}
}
