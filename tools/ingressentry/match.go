package main

import (
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// route is one path of an Ingress rule, resolved to the address of its backend.
type route struct {
	path     string
	pathType networkingv1.PathType // Exact or Prefix (ImplementationSpecific is read as Prefix)
	backend  string                // host:port, "" when the Service or its port does not exist
}

// hostMatches reports whether a request's host matches a rule's host, as the Ingress API
// defines it: an empty rule host matches every host; "*.example.com" matches exactly one
// label in place of the star ("a.example.com", not "example.com" nor "a.b.example.com");
// any other host matches only itself.
func hostMatches(rule, host string) bool {
	switch {
	case rule == "":
		return true
	case strings.HasPrefix(rule, "*."):
		label, rest, ok := strings.Cut(host, ".")
		return ok && label != "" && rest == rule[2:]
	default:
		return rule == host
	}
}

// elements splits a path into its non-empty elements: "/aaa/bbb/" → [aaa bbb].
func elements(path string) []string {
	var out []string
	for e := range strings.SplitSeq(path, "/") {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

// pathMatches reports whether a request path matches a route: Exact compares the strings;
// Prefix compares element by element, ignoring a trailing slash, so "/aaa/bbb" matches
// "/aaa/bbb", "/aaa/bbb/" and "/aaa/bbb/ccc" but not "/aaa/bbbxyz".
func pathMatches(r route, path string) bool {
	if r.pathType == networkingv1.PathTypeExact {
		return r.path == path
	}
	want, got := elements(r.path), elements(path)
	if len(want) > len(got) {
		return false
	}
	for i := range want {
		if want[i] != got[i] {
			return false
		}
	}
	return true
}

// match picks the route a request takes among the routes of the matching rules: the longest
// matching path wins and, between equally long ones, Exact wins over Prefix. ok is false when
// nothing matches (the default backend's turn).
func match(routes []route, path string) (best route, ok bool) {
	for _, r := range routes {
		if !pathMatches(r, path) {
			continue
		}
		if !ok || len(r.path) > len(best.path) ||
			(len(r.path) == len(best.path) && r.pathType == networkingv1.PathTypeExact && best.pathType != networkingv1.PathTypeExact) {
			best, ok = r, true
		}
	}
	return best, ok
}
