// Package dashboard checks order-system's dashboards against a running Prometheus: the
// queries of the Grafana dashboard (deploy/grafana/order-system.json) must each return data,
// and every panel of the Prometheus console (deploy/prometheus/consoles/order-system.html),
// as a browser renders it, must show values and a drawn graph.
package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Query is one query of a panel of a Grafana dashboard.
type Query struct {
	Panel string // the panel's title
	RefID string // "A", "B", ... within the panel
	Expr  string // PromQL, with Grafana's variables
}

func (q Query) String() string { return fmt.Sprintf("%q %s", q.Panel, q.RefID) }

type grafanaDashboard struct {
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	Title      string             `json:"title"`
	Type       string             `json:"type"`
	Datasource *grafanaDatasource `json:"datasource"`
	Targets    []struct {
		RefID      string             `json:"refId"`
		Expr       string             `json:"expr"`
		Hide       bool               `json:"hide"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Grafana's reference to a variable: $name, ${name} or ${name:format}, [[name]].
var variableRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]`)

// Queries returns the titles of the panels of the Grafana dashboard in raw (rows' panels
// included, rows themselves not) and the queries they show, hidden ones left out, in their
// order. Every panel must query Prometheus through a datasource variable of the dashboard
// (so that it works with whichever Prometheus a user picks on import) and have a title, and
// every query an expression: anything else is an error naming the panel.
func Queries(raw []byte) (titles []string, queries []Query, err error) {
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, nil, fmt.Errorf("not a Grafana dashboard: %w", err)
	}
	sources := map[string]bool{} // the names of the Prometheus datasource variables
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			sources[v.Name] = true
		}
	}
	var problems []error
	var walk func([]grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if strings.TrimSpace(p.Title) == "" {
				problems = append(problems, fmt.Errorf("a %s panel without a title", p.Type))
				continue
			}
			titles = append(titles, p.Title)
			if why := datasourceProblem(p.Datasource, sources); why != "" {
				problems = append(problems, fmt.Errorf("panel %q: %s", p.Title, why))
			}
			shown := 0
			for _, t := range p.Targets {
				if t.Hide {
					continue
				}
				shown++
				q := Query{Panel: p.Title, RefID: t.RefID, Expr: t.Expr}
				if strings.TrimSpace(t.Expr) == "" {
					problems = append(problems, fmt.Errorf("query %s: no expression", q))
					continue
				}
				if t.Datasource != nil {
					if why := datasourceProblem(t.Datasource, sources); why != "" {
						problems = append(problems, fmt.Errorf("query %s: %s", q, why))
						continue
					}
				}
				queries = append(queries, q)
			}
			if shown == 0 {
				problems = append(problems, fmt.Errorf("panel %q: no queries", p.Title))
			}
		}
	}
	walk(d.Panels)
	if err := errors.Join(problems...); err != nil {
		return nil, nil, err
	}
	if len(titles) == 0 {
		return nil, nil, errors.New("the dashboard has no panels")
	}
	return titles, queries, nil
}

// datasourceProblem says why ds is not a Prometheus datasource variable of the dashboard,
// or "" when it is.
func datasourceProblem(ds *grafanaDatasource, variables map[string]bool) string {
	if ds == nil {
		return "no datasource: Grafana would use its default one, whatever it is"
	}
	if ds.Type != "prometheus" {
		return fmt.Sprintf("datasource of type %q, want prometheus", ds.Type)
	}
	m := variableRef.FindStringSubmatch(ds.UID)
	if m == nil || m[0] != ds.UID || !variables[m[1]+m[2]+m[3]] {
		return fmt.Sprintf("datasource %q is not a Prometheus datasource variable of the dashboard", ds.UID)
	}
	return ""
}

// Variables are the values of Grafana's built-in variables for a query run outside Grafana.
type Variables struct {
	RateInterval time.Duration // $__rate_interval: at least four scrape intervals
	Interval     time.Duration // $__interval: the step of a graph
	Range        time.Duration // $__range: the dashboard's time range
}

// Substitute returns expr with Grafana's built-in variables replaced by their values:
// $__rate_interval, $__interval and $__interval_ms, $__range, $__range_s and $__range_ms,
// in any of Grafana's forms. Any other variable is an error: the checker would not know what
// to query (the datasource variable names where a query goes, not part of one).
func (v Variables) Substitute(expr string) (string, error) {
	values := map[string]string{
		"__rate_interval": promDuration(v.RateInterval),
		"__interval":      promDuration(v.Interval),
		"__interval_ms":   strconv.FormatInt(v.Interval.Milliseconds(), 10),
		"__range":         promDuration(v.Range),
		"__range_s":       strconv.FormatInt(int64(v.Range/time.Second), 10),
		"__range_ms":      strconv.FormatInt(v.Range.Milliseconds(), 10),
	}
	var unknown []string
	out := variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		if value, ok := values[name]; ok {
			return value
		}
		unknown = append(unknown, ref)
		return ref
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown variables %s in %q", strings.Join(unknown, ", "), expr)
	}
	return out, nil
}

// promDuration writes d as a PromQL duration, in the largest unit that divides it: 1m, 90s,
// 1500ms.
func promDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
}
