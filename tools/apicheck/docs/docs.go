// Package docs checks the API reference the gateway serves at /docs as a browser renders it:
// every operation of the OpenAPI document must be shown, with its summary, on its page.
//
// The reference is Redoc 3, which renders one part of the document at a time, the part the
// URL's fragment names: an operation is at #/<its first tag>/<its operationId, lower-cased>,
// in an element with that path as its id. So each operation is checked on its own page.
package docs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"golang.org/x/net/html"
)

// Page is where the reference shows one operation.
type Page struct {
	Operation string // "GET /users/{id} (getUser)"
	Fragment  string // the URL's fragment, without '#': "/users/getuser"
	ID        string // the id of the operation's element on the page: "users/getuser"
	Summary   string
}

// Redoc turns a tag and an operationId into its path by lower-casing them when they have only
// these characters; for others the path would have to be predicted from its slug rules.
var plainName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Pages lists the page of every operation of the OpenAPI document at path, sorted by operation.
// An operation without an operationId, a tag or a summary is an error: the reference would
// show it, but the check could not tell where or by what.
func Pages(ctx context.Context, path string) ([]Page, error) {
	spec, err := openapi3.NewLoader().LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := spec.Validate(ctx); err != nil {
		return nil, fmt.Errorf("%s is not a valid OpenAPI document: %w", path, err)
	}
	var pages []Page
	var problems []error
	for p, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			name := fmt.Sprintf("%s %s (%s)", method, p, op.OperationID)
			switch {
			case !plainName.MatchString(op.OperationID):
				problems = append(problems, fmt.Errorf("%s: an operationId of letters, digits, _ and - is needed to find its page", name))
				continue
			case len(op.Tags) == 0 || !plainName.MatchString(op.Tags[0]):
				problems = append(problems, fmt.Errorf("%s: a first tag of letters, digits, _ and - is needed to find its page", name))
				continue
			case strings.TrimSpace(op.Summary) == "":
				problems = append(problems, fmt.Errorf("%s: a summary is needed to recognize it on its page", name))
				continue
			}
			id := strings.ToLower(op.Tags[0] + "/" + op.OperationID)
			pages = append(pages, Page{Operation: name, Fragment: "/" + id, ID: id, Summary: op.Summary})
		}
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	if len(pages) == 0 {
		return nil, fmt.Errorf("%s has no operations", path)
	}
	sort.Slice(pages, func(i, j int) bool { return pages[i].Operation < pages[j].Operation })
	return pages, nil
}

// Check returns why dom, the page's DOM as the browser serialized it, does not show the
// operation, or "" when it does: an element with the page's id must hold the summary as its
// text (or part of it), whitespace aside.
func (p Page) Check(dom string) string {
	root, err := html.Parse(strings.NewReader(dom))
	if err != nil {
		return "the DOM is not HTML: " + err.Error()
	}
	el := byID(root, p.ID)
	if el == nil {
		return fmt.Sprintf("no element with id %q: the operation was not rendered", p.ID)
	}
	var text strings.Builder
	texts(el, &text)
	if !strings.Contains(squash(text.String()), squash(p.Summary)) {
		return fmt.Sprintf("the element with id %q does not show the summary %q", p.ID, p.Summary)
	}
	return ""
}

func byID(n *html.Node, id string) *html.Node {
	if n.Type == html.ElementNode {
		for _, a := range n.Attr {
			if a.Namespace == "" && a.Key == "id" && a.Val == id {
				return n
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if found := byID(c, id); found != nil {
			return found
		}
	}
	return nil
}

// texts writes the text of n and its descendants, scripts and styles left out.
func texts(n *html.Node, w io.StringWriter) {
	switch {
	case n.Type == html.TextNode:
		w.WriteString(n.Data)
	case n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style"):
		return
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		texts(c, w)
	}
}

func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
