// Command docscheck opens the API reference the gateway serves at /docs in headless Chromium
// and checks that every operation of the OpenAPI document is rendered there (see package
// docs), one page per operation; it exits 1 naming each operation that is not. The gateway
// must also send the page with a Content-Security-Policy that keeps the browser on it, as the
// reference is served without any CDN. With -screenshot it also saves an image of /docs.
//
//	docscheck -url http://127.0.0.1:8000/docs -screenshot .run/docs.png api/openapi.yaml
//
// The browser reaches no host but the URL's (package browser).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/order-system/order-system/tools/apicheck/browser"
	"github.com/order-system/order-system/tools/apicheck/docs"
)

func main() {
	page := flag.String("url", "http://127.0.0.1:8000/docs", "the API reference")
	command := flag.String("browser", "chromium", "Chromium's command")
	screenshot := flag.String("screenshot", "", "save a screenshot of the reference here (PNG)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: docscheck [-url URL] [-browser chromium] [-screenshot file.png] openapi.yaml")
		os.Exit(2)
	}
	if err := run(*page, *command, *screenshot, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "docscheck:", err)
		os.Exit(1)
	}
}

func run(page, command, screenshot, doc string) error {
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
	b := browser.Chromium{Command: command, Host: u.Hostname()}
	var missing []string
	for _, p := range pages {
		dom, err := b.DumpDOM(ctx, page+"#"+p.Fragment)
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
		if err := b.Screenshot(ctx, page, screenshot, 1280, 900); err != nil {
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
