package dashboard

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/net/html"
)

// Panel is a panel of the console page as the browser rendered it.
type Panel struct {
	Title    string
	Values   []string // the current values the server rendered, as shown
	Problems []string // why the panel does not show data; none when it does
}

// ConsolePanels returns the panels of dom, the console page's DOM as the browser serialized
// it once its scripts had run: every element with a data-panel attribute (its title), in
// page order. A panel shows data when
//
//   - the server rendered at least one current value (class panel-value) and none of them is
//     "no data", empty, or NaN, and
//   - its graph was drawn: an svg holding a line (a path of class path) whose points are all
//     numbers, and no error of the console library ("No timeseries returned", "Error loading
//     data") in the panel.
//
// Otherwise Problems says what is missing.
func ConsolePanels(dom string) ([]Panel, error) {
	root, err := html.Parse(strings.NewReader(dom))
	if err != nil {
		return nil, fmt.Errorf("the DOM is not HTML: %w", err)
	}
	var panels []Panel
	for _, el := range all(root, func(n *html.Node) bool { _, ok := attr(n, "data-panel"); return ok }) {
		title, _ := attr(el, "data-panel")
		panels = append(panels, checkPanel(title, el))
	}
	if len(panels) == 0 {
		return nil, fmt.Errorf("no panels (elements with data-panel) on the page")
	}
	return panels, nil
}

func checkPanel(title string, el *html.Node) Panel {
	p := Panel{Title: title}
	for _, v := range all(el, hasClass("panel-value")) {
		value := squash(text(v))
		p.Values = append(p.Values, value)
		switch {
		case value == "" || value == "-":
			p.Problems = append(p.Problems, "an empty value")
		case strings.EqualFold(value, "no data"):
			p.Problems = append(p.Problems, "a value says no data")
		case strings.Contains(value, "NaN"):
			p.Problems = append(p.Problems, fmt.Sprintf("a value is %q", value))
		}
	}
	if len(p.Values) == 0 {
		p.Problems = append(p.Problems, "no values rendered (class panel-value)")
	}
	for _, e := range all(el, hasClass("prom_graph_error")) {
		p.Problems = append(p.Problems, fmt.Sprintf("the graph says %q", squash(text(e))))
	}
	lines := 0
	for _, svg := range all(el, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "svg" }) {
		for _, path := range all(svg, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "path" && hasClass("path")(n) }) {
			d, _ := attr(path, "d")
			if strings.HasPrefix(d, "M") && !strings.Contains(d, "NaN") {
				lines++
			}
		}
	}
	if lines == 0 {
		p.Problems = append(p.Problems, "no graph line drawn")
	}
	return p
}

// ComparePanels says how the console's panels differ from the Grafana dashboard's titles:
// the same panels, by title, each once. Nil when they are the same.
func ComparePanels(grafana []string, console []Panel) []string {
	var differences []string
	seen := map[string]int{}
	for _, p := range console {
		seen[p.Title]++
		if seen[p.Title] == 2 {
			differences = append(differences, fmt.Sprintf("panel %q is on the console more than once", p.Title))
		}
		if !slices.Contains(grafana, p.Title) {
			differences = append(differences, fmt.Sprintf("panel %q is on the console, not in the Grafana dashboard", p.Title))
		}
	}
	for _, t := range grafana {
		if seen[t] == 0 {
			differences = append(differences, fmt.Sprintf("panel %q is in the Grafana dashboard, not on the console", t))
		}
	}
	return differences
}

// all returns the elements under n (n included) that match, in document order.
func all(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var found []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if match(n) {
			found = append(found, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return found
}

func attr(n *html.Node, key string) (string, bool) {
	if n.Type != html.ElementNode {
		return "", false
	}
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func hasClass(class string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		classes, _ := attr(n, "class")
		return slices.Contains(strings.Fields(classes), class)
	}
}

// text is the text of n and its descendants, scripts and styles left out.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		switch {
		case n.Type == html.TextNode:
			b.WriteString(n.Data)
		case n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style"):
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
