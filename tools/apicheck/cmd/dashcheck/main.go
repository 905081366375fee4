// Command dashcheck checks order-system's dashboards against a running Prometheus (see
// package dashboard): it runs every query of the Grafana dashboard through Prometheus's
// query API, Grafana's built-in variables replaced (-rate-interval, -interval, -range), and
// opens the Prometheus console in headless Chromium, where every panel must show values and
// a drawn graph, and the panels must be the Grafana dashboard's. It exits 1 naming each query
// that returned no data or an error and each panel without data. With -screenshot it also
// saves an image of the console, with -dom the console's DOM as the browser rendered it (the
// fixture of package dashboard's tests, testdata/console.html, is one).
//
//	dashcheck -prometheus http://127.0.0.1:9090 -screenshot .run/dashboard.png deploy/grafana/order-system.json
//
// First it waits (up to -fresh) until Prometheus has scraped every target and evaluated every
// rule group after dashcheck started, so that what was just done to the system is in; every
// target must then be up. Each -expect is one more query that must return data, e.g. of a
// target the dashboards do not show:
//
//	dashcheck -prometheus http://127.0.0.1:39090 -expect 'pg_up == 1' deploy/grafana/order-system.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/order-system/order-system/tools/apicheck/browser"
	"github.com/order-system/order-system/tools/apicheck/dashboard"
)

type config struct {
	prometheus string
	console    string
	graphRange time.Duration
	fresh      time.Duration
	vars       dashboard.Variables
	browser    string
	screenshot string
	dom        string
	grafana    string
	expect     []string
}

func main() {
	var c config
	flag.StringVar(&c.prometheus, "prometheus", "http://127.0.0.1:9090", "the Prometheus")
	flag.StringVar(&c.console, "console", "/consoles/order-system.html", "the console's path on the Prometheus")
	flag.DurationVar(&c.graphRange, "graph-range", 15*time.Minute, "the time range of the console's graphs")
	flag.DurationVar(&c.fresh, "fresh", time.Minute, "wait up to this long for a scrape of every target and an evaluation of every rule group (0: do not wait)")
	flag.DurationVar(&c.vars.RateInterval, "rate-interval", time.Minute, "the value of $__rate_interval (at least four scrape intervals)")
	flag.DurationVar(&c.vars.Interval, "interval", 15*time.Second, "the value of $__interval")
	flag.DurationVar(&c.vars.Range, "range", time.Hour, "the value of $__range")
	flag.StringVar(&c.browser, "browser", "chromium", "Chromium's command")
	flag.StringVar(&c.screenshot, "screenshot", "", "save a screenshot of the console here (PNG)")
	flag.StringVar(&c.dom, "dom", "", "save the console's rendered DOM here (HTML)")
	flag.Func("expect", "a query that must return data too (repeatable)", func(expr string) error {
		c.expect = append(c.expect, expr)
		return nil
	})
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: dashcheck [-prometheus URL] [-screenshot file.png] [flags] grafana-dashboard.json")
		os.Exit(2)
	}
	c.grafana = flag.Arg(0)
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "dashcheck:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	u, err := url.Parse(c.prometheus)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-prometheus %q: want an absolute URL", c.prometheus)
	}
	c.prometheus = strings.TrimRight(c.prometheus, "/")
	raw, err := os.ReadFile(c.grafana)
	if err != nil {
		return err
	}
	titles, queries, err := dashboard.Queries(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", c.grafana, err)
	}
	if c.fresh > 0 {
		if err := waitForRound(ctx, c.prometheus, c.fresh); err != nil {
			return err
		}
	}
	if err := targetsUp(ctx, c.prometheus); err != nil {
		return err
	}

	unmet := 0
	for _, expr := range c.expect {
		n, err := instantQuery(ctx, c.prometheus, expr)
		if err == nil && n == 0 {
			err = fmt.Errorf("no data")
		}
		if err != nil {
			unmet++
			fmt.Printf("FAILED expected query %s: %v\n", expr, err)
			continue
		}
		fmt.Printf("dashcheck: expected query %s: %d series\n", expr, n)
	}

	failed := 0
	for _, q := range queries {
		expr, err := c.vars.Substitute(q.Expr)
		if err == nil {
			var n int
			n, err = instantQuery(ctx, c.prometheus, expr)
			if err == nil && n == 0 {
				err = fmt.Errorf("no data")
			}
			if err == nil {
				fmt.Printf("dashcheck: query %s: %d series\n", q, n)
				continue
			}
		}
		failed++
		fmt.Printf("FAILED query %s: %v\n\t%s\n", q, err, expr)
	}
	fmt.Printf("dashcheck: %d of %d queries of %s returned data\n", len(queries)-failed, len(queries), c.grafana)

	page := c.prometheus + c.console
	if err := checkServed(ctx, page); err != nil {
		return err
	}
	// The console's time controls read their range from the fragment; "endTime": 0 is now.
	view := page + "#pctc" + url.QueryEscape(fmt.Sprintf(`{"duration":%d,"endTime":0}`, int(c.graphRange.Seconds())))
	b := browser.Chromium{Command: c.browser, Host: u.Hostname()}
	dom, err := b.DumpDOM(ctx, view)
	if err != nil {
		return err
	}
	if c.dom != "" {
		if err := os.WriteFile(c.dom, []byte(dom), 0o644); err != nil {
			return err
		}
		fmt.Println("dashcheck: the console's DOM in " + c.dom)
	}
	panels, err := dashboard.ConsolePanels(dom)
	if err != nil {
		return fmt.Errorf("%s: %w", page, err)
	}
	empty := 0
	for _, p := range panels {
		if len(p.Problems) > 0 {
			empty++
			fmt.Printf("NO DATA panel %q: %s\n", p.Title, strings.Join(p.Problems, "; "))
			continue
		}
		fmt.Printf("dashcheck: panel %q: %s\n", p.Title, strings.Join(p.Values, ", "))
	}
	fmt.Printf("dashcheck: %d of %d panels of %s show data\n", len(panels)-empty, len(panels), page)
	differences := dashboard.ComparePanels(titles, panels)
	for _, d := range differences {
		fmt.Println("DIFFERENT " + d)
	}
	if c.screenshot != "" {
		if err := b.Screenshot(ctx, view, c.screenshot, 1280, 3100); err != nil {
			return err
		}
		fmt.Println("dashcheck: screenshot in " + c.screenshot)
	}
	if unmet > 0 || failed > 0 || empty > 0 || len(differences) > 0 {
		return fmt.Errorf("%d expected queries and %d of the dashboards' queries without data, %d panels without data, %d differences between the dashboards",
			unmet, failed, empty, len(differences))
	}
	return nil
}

func get(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	// The API answers errors with a 4xx or 5xx and a JSON body that says why; anything else
	// is not the API.
	if resp.StatusCode != http.StatusOK && !json.Valid(body) {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return body, nil
}

// instantQuery runs expr at the current time and counts the series with a value.
func instantQuery(ctx context.Context, prometheus, expr string) (int, error) {
	body, err := get(ctx, prometheus+"/api/v1/query?"+url.Values{"query": {expr}}.Encode())
	if err != nil {
		return 0, err
	}
	return dashboard.Series(body)
}

// waitForRound waits until every target was scraped and then every rule group evaluated
// after the call, so that the queries see the system as it is now, recording rules included.
func waitForRound(ctx context.Context, prometheus string, limit time.Duration) error {
	start := time.Now()
	deadline := start.Add(limit)
	wait := func(what, path string, oldest func([]byte) (time.Time, error), since time.Time) error {
		for {
			body, err := get(ctx, prometheus+path)
			if err != nil {
				return err
			}
			t, err := oldest(body)
			if err != nil {
				return fmt.Errorf("%s%s: %w", prometheus, path, err)
			}
			if t.After(since) {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("Prometheus did not %s within %s of the check's start (the oldest at %s)", what, limit, t.Format(time.RFC3339))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	if err := wait("scrape every target", "/api/v1/targets?state=active", dashboard.OldestScrape, start); err != nil {
		return err
	}
	scraped := time.Now()
	evaluated := func(body []byte) (time.Time, error) { return dashboard.OldestEvaluation(body, time.Now()) }
	if err := wait("evaluate every rule group", "/api/v1/rules", evaluated, scraped); err != nil {
		return err
	}
	fmt.Printf("dashcheck: every target scraped and every rule group evaluated since the check started (%.1f s)\n", time.Since(start).Seconds())
	return nil
}

// targetsUp requires every active target's last scrape to have succeeded: a panel without
// the series of a target that is down would only say "no data".
func targetsUp(ctx context.Context, prometheus string) error {
	body, err := get(ctx, prometheus+"/api/v1/targets?state=active")
	if err != nil {
		return err
	}
	down, err := dashboard.DownTargets(body)
	if err != nil {
		return fmt.Errorf("%s/api/v1/targets: %w", prometheus, err)
	}
	if len(down) > 0 {
		return fmt.Errorf("targets down: %s", strings.Join(down, "; "))
	}
	fmt.Println("dashcheck: every target is up")
	return nil
}

// checkServed requires the console page to be there: a Prometheus started without the
// consoles answers 404, which is worth saying so rather than "no panels".
func checkServed(ctx context.Context, page string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, page, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s (%.200s): is Prometheus started with --web.console.templates=deploy/prometheus/consoles and Debian's console libraries (METRICS=1 make run)?",
			page, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
