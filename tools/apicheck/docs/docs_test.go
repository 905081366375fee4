package docs_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/order-system/order-system/tools/apicheck/docs"
)

// TestPagesListEveryOperationOfTheDocument: one page per operation of api/openapi.yaml, each
// where Redoc puts it, and the count matches the operationIds the document spells out.
func TestPagesListEveryOperationOfTheDocument(t *testing.T) {
	t.Parallel()
	pages, err := docs.Pages(context.Background(), "../../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Count(string(raw), "\n      operationId: "); len(pages) != want {
		t.Errorf("%d pages, want one per operationId of the document (%d)", len(pages), want)
	}
	var found bool
	for _, p := range pages {
		if p.Operation == "POST /orders (createOrder)" {
			found = true
			if p.Fragment != "/orders/createorder" || p.ID != "orders/createorder" || !strings.HasPrefix(p.Summary, "Place an order") {
				t.Errorf("createOrder's page: %+v", p)
			}
		}
	}
	if !found {
		t.Errorf("no page for POST /orders among %+v", pages)
	}
}

// TestPagesRefuseAnOperationTheyCannotFind: without a tag or a summary the check could not
// tell where the operation is or recognize it, and says so rather than passing.
func TestPagesRefuseAnOperationTheyCannotFind(t *testing.T) {
	t.Parallel()
	for name, op := range map[string]string{
		"no tag":     "operationId: getThing\n      summary: A thing.",
		"no summary": "operationId: getThing\n      tags: [things]",
		"odd id":     "operationId: get.thing\n      tags: [things]\n      summary: A thing.",
	} {
		doc := "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /thing:\n    get:\n      " + op +
			"\n      responses:\n        '200': {description: ok}\n"
		path := filepath.Join(t.TempDir(), "openapi.yaml")
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if pages, err := docs.Pages(context.Background(), path); err == nil || !strings.Contains(err.Error(), "getThing") && !strings.Contains(err.Error(), "get.thing") {
			t.Errorf("%s: pages %+v, error %v; want an error naming the operation", name, pages, err)
		}
	}
}

// TestCheckNeedsTheOperationsElementWithItsSummary: shown means an element with the page's id
// holding the summary; the summary elsewhere on the page, or the element without it, is not.
func TestCheckNeedsTheOperationsElementWithItsSummary(t *testing.T) {
	t.Parallel()
	page := docs.Page{Operation: "GET /billing/balance/{userId} (getBalance)", Fragment: "/billing/getbalance",
		ID: "billing/getbalance", Summary: "A user's balance."}
	shown := map[string]string{
		"as Redoc renders it": `<html><body><redoc><nav><a href="#/billing/getbalance">A user's balance.</a></nav>` +
			`<div><h2 id="billing/getbalance"><span>A user&#39;s</span>
				balance.</h2></div></redoc></body></html>`,
		"in a section": `<section id="billing/getbalance"><p>get</p><h1>A user's balance.</h1></section>`,
	}
	for name, dom := range shown {
		if why := page.Check(dom); why != "" {
			t.Errorf("%s: %s", name, why)
		}
	}
	notShown := map[string]string{
		"an empty page":           `<html><body><redoc></redoc></body></html>`,
		"only in the menu":        `<nav><a href="#/billing/getbalance">A user's balance.</a></nav><h2 id="billing/deposit">Add money.</h2>`,
		"the element, no summary": `<h2 id="billing/getbalance">Loading…</h2><p>A user's balance.</p>`,
		"in a script":             `<div id="billing/getbalance"><script>"A user's balance."</script></div>`,
		"another operation's id":  `<h2 id="billing/getbalances">A user's balance.</h2>`,
	}
	for name, dom := range notShown {
		if why := page.Check(dom); why == "" {
			t.Errorf("%s: reported shown", name)
		}
	}
}
