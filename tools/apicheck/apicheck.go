// Package apicheck checks real HTTP traffic against the OpenAPI documents in api/: every
// response must be one the document describes for its request (status, headers and body), a
// request the document calls invalid must be refused with a 4xx, and a path or method the
// document does not have must be a 404 or 405 with the API's error body. It also counts which
// operations the traffic exercised, so that a test can say which ones it never reached.
package apicheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Checker holds the documents and what it has seen. It is safe for concurrent use.
type Checker struct {
	docs []document

	mu         sync.Mutex
	checked    int
	statuses   map[string]map[int]int // operation → status → count
	violations []string
}

type document struct {
	name   string
	spec   *openapi3.T
	router routers.Router
	errors *openapi3.Schema // the error body of the document, for paths it does not have
}

// Load reads and validates the OpenAPI documents; a request is matched against them in order.
func Load(ctx context.Context, paths ...string) (*Checker, error) {
	c := &Checker{statuses: map[string]map[int]int{}}
	for _, path := range paths {
		loader := openapi3.NewLoader()
		spec, err := loader.LoadFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		if err := spec.Validate(ctx); err != nil {
			return nil, fmt.Errorf("%s is not a valid OpenAPI document: %w", path, err)
		}
		if !spec.IsOpenAPI31OrLater() {
			return nil, fmt.Errorf("%s: openapi %s, want 3.1", path, spec.OpenAPI)
		}
		// Match paths on any host: the same document describes the gateway, a service's own
		// port and a test's proxy.
		spec.Servers = nil
		router, err := gorillamux.NewRouter(spec)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", path, err)
		}
		errRef := spec.Components.Schemas["Error"]
		if errRef == nil || errRef.Value == nil {
			return nil, fmt.Errorf("%s has no components.schemas.Error", path)
		}
		for _, op := range operations(spec) {
			c.statuses[path+" "+op] = map[int]int{}
		}
		c.docs = append(c.docs, document{name: path, spec: spec, router: router, errors: errRef.Value})
	}
	return c, nil
}

// operations lists "METHOD /path (operationId)" for every operation of spec.
func operations(spec *openapi3.T) []string {
	var ops []string
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			ops = append(ops, opName(method, path, op))
		}
	}
	sort.Strings(ops)
	return ops
}

func opName(method, path string, op *openapi3.Operation) string {
	return fmt.Sprintf("%s %s (%s)", method, path, op.OperationID)
}

// Exchange is one request and the response it got, bodies read in full.
type Exchange struct {
	Request      *http.Request
	RequestBody  []byte
	Status       int
	Header       http.Header
	ResponseBody []byte
}

// Check checks one exchange, records the problems it finds and returns them.
func (c *Checker) Check(ctx context.Context, x Exchange) []string {
	problems := c.check(ctx, x)
	what := x.Request.Method + " " + x.Request.URL.RequestURI()
	for i, p := range problems {
		problems[i] = fmt.Sprintf("%s → %d: %s", what, x.Status, p)
	}
	c.mu.Lock()
	c.checked++
	c.violations = append(c.violations, problems...)
	c.mu.Unlock()
	return problems
}

func (c *Checker) check(ctx context.Context, x Exchange) []string {
	req := x.Request.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	var doc *document
	var route *routers.Route
	var params map[string]string
	var routeErr error
	for i := range c.docs {
		r, p, err := c.docs[i].router.FindRoute(req)
		if err == nil {
			doc, route, params = &c.docs[i], r, p
			break
		}
		if routeErr == nil || errors.Is(err, routers.ErrMethodNotAllowed) {
			routeErr = err
		}
	}
	if doc == nil {
		return c.checkUnrouted(ctx, x, routeErr)
	}

	key := doc.name + " " + opName(route.Method, route.Path, route.Operation)
	c.mu.Lock()
	c.statuses[key][x.Status]++
	c.mu.Unlock()

	var problems []string
	opts := &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && (x.Status < 400 || x.Status >= 500) {
		problems = append(problems, fmt.Sprintf("the document calls the request invalid (%s), yet it was not refused with a 4xx", oneLine(err)))
	}
	if x.Status == http.StatusInternalServerError {
		problems = append(problems, "500 internal: documented as an unexpected failure, which a test never expects")
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: x.Status, Header: x.Header,
		Body: io.NopCloser(bytes.NewReader(x.ResponseBody)), Options: opts,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		problems = append(problems, "the response does not match the document: "+oneLine(err)+"; body: "+abbrev(x.ResponseBody))
	}
	// A replay marker only makes sense as the answer to a keyed request.
	if x.Header.Get("X-Idempotency-Cached") != "" && x.Request.Header.Get("Idempotency-Key") == "" {
		problems = append(problems, "X-Idempotency-Cached on the answer to a request without an Idempotency-Key")
	}
	return problems
}

// checkUnrouted checks the answer to a path or method no document has: a 404 or 405 with the
// error body and a request id.
func (c *Checker) checkUnrouted(ctx context.Context, x Exchange, routeErr error) []string {
	want, code := http.StatusNotFound, "not_found"
	if errors.Is(routeErr, routers.ErrMethodNotAllowed) {
		want, code = http.StatusMethodNotAllowed, "method_not_allowed"
	}
	var problems []string
	if x.Status != want {
		problems = append(problems, fmt.Sprintf("no document has this request (%v), want %d", routeErr, want))
	}
	if x.Header.Get("X-Request-ID") == "" {
		problems = append(problems, "no X-Request-ID header")
	}
	var body any
	if err := json.Unmarshal(x.ResponseBody, &body); err != nil {
		return append(problems, "the body is not JSON: "+abbrev(x.ResponseBody))
	}
	if err := c.docs[0].errors.VisitJSON(body, openapi3.EnableJSONSchema2020()); err != nil {
		problems = append(problems, "the body is not the error body: "+oneLine(err))
	} else if m, _ := body.(map[string]any); m["code"] != code {
		problems = append(problems, fmt.Sprintf("code %v, want %s", m["code"], code))
	}
	return problems
}

// Report is what the traffic so far showed.
type Report struct {
	Checked    int
	Violations []string
	// Uncovered lists the operations no request reached.
	Uncovered []string
	// Statuses lists, per operation, the statuses seen and those documented but not seen.
	Statuses []string
}

// Report returns what has been seen so far.
func (c *Checker) Report() Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Report{Checked: c.checked, Violations: slices.Clone(c.violations)}
	for _, d := range c.docs {
		for path, item := range d.spec.Paths.Map() {
			for method, op := range item.Operations() {
				key := d.name + " " + opName(method, path, op)
				seen := c.statuses[key]
				if len(seen) == 0 {
					r.Uncovered = append(r.Uncovered, key)
				}
				var got, missing []string
				for status := range op.Responses.Map() {
					var n int
					fmt.Sscan(status, &n)
					if seen[n] > 0 {
						got = append(got, fmt.Sprintf("%d×%d", n, seen[n]))
					} else {
						missing = append(missing, status)
					}
				}
				sort.Strings(got)
				sort.Strings(missing)
				r.Statuses = append(r.Statuses, fmt.Sprintf("%s: seen %s; not seen %s", key, strings.Join(got, " "), strings.Join(missing, " ")))
			}
		}
	}
	sort.Strings(r.Uncovered)
	sort.Strings(r.Statuses)
	return r
}

// oneLine flattens an error for a one-line report, cut short: kin-openapi appends the whole
// schema and value, which the body already shows.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func abbrev(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
