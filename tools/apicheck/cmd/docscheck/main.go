// Command docscheck opens the API reference the gateway serves at /docs in headless Chromium
// and checks that every operation of the OpenAPI document is rendered there (see package
// docs), one page per operation; it exits 1 naming each operation that is not. The gateway
// must also send the page with a Content-Security-Policy that keeps the browser on it, as the
// reference is served without any CDN. With -screenshot it also saves an image of /docs.
//
//	docscheck -url http://127.0.0.1:8000/docs -screenshot .run/docs.png api/openapi.yaml
//
// The browser resolves no host name but the URL's, so it reaches nothing else (and none of
// its own services), and it starts from a new profile each time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/order-system/order-system/tools/apicheck/docs"
)

func main() {
	page := flag.String("url", "http://127.0.0.1:8000/docs", "the API reference")
	browser := flag.String("browser", "chromium", "Chromium's command")
	screenshot := flag.String("screenshot", "", "save a screenshot of the reference here (PNG)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: docscheck [-url URL] [-browser chromium] [-screenshot file.png] openapi.yaml")
		os.Exit(2)
	}
	if err := run(*page, *browser, *screenshot, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "docscheck:", err)
		os.Exit(1)
	}
}

func run(page, browser, screenshot, doc string) error {
	ctx := context.Background()
	u, err := url.Parse(page)
	if err != nil || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("-url %q: want an absolute URL without a fragment", page)
	}
	pages, err := docs.Pages(ctx, doc)
	if err != nil {
		return err
	}
	if err := checkPolicy(ctx, page); err != nil {
		return err
	}
	b := chromium{command: browser, host: u.Hostname()}
	var missing []string
	for _, p := range pages {
		dom, err := b.dumpDOM(ctx, page+"#"+p.Fragment)
		if err != nil {
			return err
		}
		if why := p.Check(dom); why != "" {
			missing = append(missing, fmt.Sprintf("%s at %s#%s: %s", p.Operation, page, p.Fragment, why))
		}
	}
	fmt.Printf("docscheck: %d of %d operations of %s rendered at %s\n", len(pages)-len(missing), len(pages), doc, page)
	for _, m := range missing {
		fmt.Println("NOT RENDERED " + m)
	}
	if screenshot != "" {
		if err := b.screenshot(ctx, page, screenshot); err != nil {
			return err
		}
		fmt.Println("docscheck: screenshot in " + screenshot)
	}
	if len(missing) > 0 {
		return fmt.Errorf("operations not rendered: %d", len(missing))
	}
	return nil
}

// checkPolicy requires the page to come with a policy that lets the browser load nothing from
// other origins by default: what keeps a reader's browser off any CDN.
func checkPolicy(ctx context.Context, page string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, page, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return fmt.Errorf("%s: %s, %q; want 200 and an HTML page", page, resp.Status, resp.Header.Get("Content-Type"))
	}
	policy := resp.Header.Get("Content-Security-Policy")
	for _, directive := range strings.Split(policy, ";") {
		if strings.Join(strings.Fields(directive), " ") == "default-src 'self'" {
			return nil
		}
	}
	return fmt.Errorf("%s: Content-Security-Policy %q, want one with default-src 'self'", page, policy)
}

type chromium struct {
	command string
	host    string // the only host name the browser resolves
}

// run runs the browser headless on a new profile with the given arguments, and returns what
// it printed; its chatter on stderr (D-Bus, GPU) is shown only when it fails.
func (c chromium) run(ctx context.Context, args ...string) (string, error) {
	profile, err := os.MkdirTemp("", "docscheck-profile-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile,
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE " + c.host,
		// Page time, not wall time: it does not run while a request is pending, so a loaded
		// machine gets as far as an idle one.
		"--virtual-time-budget=10000",
	}, args...)
	cmd := exec.CommandContext(ctx, c.command, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("no answer in 90 s")
		}
		return "", fmt.Errorf("%s %s: %w\n%s", c.command, args[len(args)-1], err, tail(stderr.String(), 20))
	}
	return stdout.String(), nil
}

func (c chromium) dumpDOM(ctx context.Context, page string) (string, error) {
	dom, err := c.run(ctx, "--dump-dom", page)
	if err == nil && strings.TrimSpace(dom) == "" {
		err = fmt.Errorf("%s: the browser printed no DOM", page)
	}
	return dom, err
}

func (c chromium) screenshot(ctx context.Context, page, file string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return err
	}
	os.Remove(abs) // so that the check below sees this run's image
	if _, err := c.run(ctx, "--window-size=1280,900", "--screenshot="+abs, page); err != nil {
		return err
	}
	if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
		return fmt.Errorf("%s: no screenshot written", page)
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
