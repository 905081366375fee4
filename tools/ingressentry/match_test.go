package main

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// examples are the path matching examples of the Kubernetes Ingress API documentation
// (concepts/services-networking/ingress, "Examples"): the paths of one rule, a request path,
// and the path that serves it ("" for none: the default backend).
var examples = []struct {
	paths []string // "Prefix /foo" or "Exact /foo"
	req   string
	want  string
}{
	{[]string{"Prefix /"}, "/anything/at/all", "Prefix /"},
	{[]string{"Exact /foo"}, "/foo", "Exact /foo"},
	{[]string{"Exact /foo"}, "/bar", ""},
	{[]string{"Exact /foo"}, "/foo/", ""},
	{[]string{"Exact /foo/"}, "/foo", ""},
	{[]string{"Prefix /foo"}, "/foo", "Prefix /foo"},
	{[]string{"Prefix /foo"}, "/foo/", "Prefix /foo"},
	{[]string{"Prefix /foo/"}, "/foo", "Prefix /foo/"},
	{[]string{"Prefix /foo/"}, "/foo/", "Prefix /foo/"},
	{[]string{"Prefix /aaa/bb"}, "/aaa/bbb", ""},
	{[]string{"Prefix /aaa/bbb"}, "/aaa/bbb", "Prefix /aaa/bbb"},
	{[]string{"Prefix /aaa/bbb/"}, "/aaa/bbb", "Prefix /aaa/bbb/"},
	{[]string{"Prefix /aaa/bbb"}, "/aaa/bbb/", "Prefix /aaa/bbb"},
	{[]string{"Prefix /aaa/bbb"}, "/aaa/bbb/ccc", "Prefix /aaa/bbb"},
	{[]string{"Prefix /aaa/bbb"}, "/aaa/bbbxyz", ""},
	{[]string{"Prefix /", "Prefix /aaa"}, "/aaa/ccc", "Prefix /aaa"},
	{[]string{"Prefix /", "Prefix /aaa", "Prefix /aaa/bbb"}, "/aaa/bbb", "Prefix /aaa/bbb"},
	{[]string{"Prefix /", "Prefix /aaa", "Prefix /aaa/bbb"}, "/ccc", "Prefix /"},
	{[]string{"Prefix /aaa"}, "/ccc", ""},
	{[]string{"Prefix /foo", "Exact /foo"}, "/foo", "Exact /foo"},
	{[]string{"Exact /foo", "Prefix /foo"}, "/foo", "Exact /foo"},
}

// hostExamples are the documentation's host matching examples: a rule host, a request host.
var hostExamples = []struct {
	rule, host string
	want       bool
}{
	{"foo.bar.com", "foo.bar.com", true},
	{"foo.bar.com", "bar.bar.com", false},
	{"*.foo.com", "bar.foo.com", true},
	{"*.foo.com", "baz.bar.foo.com", false}, // the wildcard covers one label only
	{"*.foo.com", "foo.com", false},
	{"", "anything.example", true},
}

// ingress builds an Ingress with one rule on host whose paths ("Prefix /foo") each lead to a
// Service of their own, and those Services.
func ingress(host string, paths []string) (networkingv1.Ingress, []corev1.Service) {
	rule := networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}}
	var services []corev1.Service
	for i, p := range paths {
		var kind, path string
		fmt.Sscan(p, &kind, &path)
		pt := networkingv1.PathType(kind)
		name := fmt.Sprintf("svc-%s-%d", host, i)
		rule.HTTP.Paths = append(rule.HTTP.Paths, networkingv1.HTTPIngressPath{Path: path, PathType: &pt, Backend: networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}},
		}})
		services = append(services, corev1.Service{})
		services[i].Namespace, services[i].Name = "default", name
		services[i].Spec.ClusterIP = p // stands for the address: tests read it back as the route
		services[i].Spec.Ports = []corev1.ServicePort{{Port: 80}}
	}
	var ing networkingv1.Ingress
	ing.Namespace, ing.Name = "default", "example"
	ing.Spec.Rules = []networkingv1.IngressRule{rule}
	return ing, services
}

func TestPathExamples(t *testing.T) {
	for _, ex := range examples {
		ing, services := ingress("", ex.paths)
		tab, warnings := newTable([]networkingv1.Ingress{ing}, services, "nginx")
		if len(warnings) > 0 {
			t.Fatal(warnings)
		}
		got := tab.resolve("example.com", ex.req)
		want := ""
		if ex.want != "" {
			want = ex.want + ":80"
		}
		if got != want {
			t.Errorf("paths %v, request %s: served by %q, want %q", ex.paths, ex.req, got, want)
		}
	}
}

func TestHostExamples(t *testing.T) {
	for _, ex := range hostExamples {
		if got := hostMatches(ex.rule, ex.host); got != ex.want {
			t.Errorf("rule host %q, request host %q: match %v, want %v", ex.rule, ex.host, got, ex.want)
		}
	}
}

// A request goes to its host's own rule before a wildcard, and to the rules without a host
// (or the default backend) when no host matches.
func TestHostPrecedence(t *testing.T) {
	var ings []networkingv1.Ingress
	var services []corev1.Service
	for _, h := range []struct{ host, path string }{{"foo.bar.com", "Prefix /exact"}, {"*.bar.com", "Prefix /wild"}, {"", "Prefix /any"}} {
		ing, svcs := ingress(h.host, []string{h.path})
		ings, services = append(ings, ing), append(services, svcs...)
	}
	tab, _ := newTable(ings, services, "nginx")
	for _, tt := range []struct{ host, want string }{
		{"foo.bar.com", "Prefix /exact:80"},
		{"baz.bar.com", "Prefix /wild:80"},
		{"a.baz.bar.com", "Prefix /any:80"},
		{"other.example", "Prefix /any:80"},
	} {
		// Each host's rule set serves only its own paths.
		path := map[string]string{"Prefix /exact:80": "/exact", "Prefix /wild:80": "/wild", "Prefix /any:80": "/any"}[tt.want]
		if got := tab.resolve(tt.host, path); got != tt.want {
			t.Errorf("host %s path %s: %q, want %q", tt.host, path, got, tt.want)
		}
	}
}

func TestIngressClassAndMissingServices(t *testing.T) {
	ing, services := ingress("", []string{"Prefix /"})
	other := "traefik"
	ing.Spec.IngressClassName = &other
	tab, _ := newTable([]networkingv1.Ingress{ing}, services, "nginx")
	if got := tab.resolve("x", "/"); got != "" {
		t.Errorf("an Ingress of another class is served: %q", got)
	}
	ing.Spec.IngressClassName = nil
	tab, warnings := newTable([]networkingv1.Ingress{ing}, nil, "nginx")
	if got := tab.resolve("x", "/"); got != "" || len(warnings) != 1 {
		t.Errorf("a missing Service: served by %q, warnings %v; want a 404 and one warning", got, warnings)
	}
}
