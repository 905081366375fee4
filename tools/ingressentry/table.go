package main

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// table is every route of the Ingresses served, by rule host ("" for rules without one),
// and the default backend ("" for none: a 404).
type table struct {
	hosts          map[string][]route
	defaultBackend string
}

// newTable gathers the rules of the Ingresses of class (those without a class too) and
// resolves each backend to its Service's cluster IP and port.
func newTable(ingresses []networkingv1.Ingress, services []corev1.Service, class string) (table, []string) {
	svc := map[string]corev1.Service{}
	for _, s := range services {
		svc[s.Namespace+"/"+s.Name] = s
	}
	var warnings []string
	address := func(ns string, b *networkingv1.IngressBackend) string {
		if b == nil || b.Service == nil {
			warnings = append(warnings, fmt.Sprintf("%s: a backend that is not a Service is not served", ns))
			return ""
		}
		s, ok := svc[ns+"/"+b.Service.Name]
		if !ok || s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone {
			warnings = append(warnings, fmt.Sprintf("%s/%s: no such Service with a cluster IP", ns, b.Service.Name))
			return ""
		}
		for _, p := range s.Spec.Ports {
			if (b.Service.Port.Name != "" && p.Name == b.Service.Port.Name) || (b.Service.Port.Name == "" && p.Port == b.Service.Port.Number) {
				return net.JoinHostPort(s.Spec.ClusterIP, strconv.Itoa(int(p.Port)))
			}
		}
		warnings = append(warnings, fmt.Sprintf("%s/%s: no port %s%d", ns, b.Service.Name, b.Service.Port.Name, b.Service.Port.Number))
		return ""
	}

	t := table{hosts: map[string][]route{}}
	for _, ing := range ingresses {
		if c := ing.Spec.IngressClassName; c != nil && *c != class {
			continue
		}
		if ing.Spec.DefaultBackend != nil {
			t.defaultBackend = address(ing.Namespace, ing.Spec.DefaultBackend)
		}
		for _, rule := range ing.Spec.Rules {
			if _, ok := t.hosts[rule.Host]; !ok {
				t.hosts[rule.Host] = nil
			}
			if rule.HTTP == nil {
				continue
			}
			for _, p := range rule.HTTP.Paths {
				pt := networkingv1.PathTypePrefix
				if p.PathType != nil && *p.PathType == networkingv1.PathTypeExact {
					pt = networkingv1.PathTypeExact
				}
				t.hosts[rule.Host] = append(t.hosts[rule.Host], route{path: p.Path, pathType: pt, backend: address(ing.Namespace, &p.Backend)})
			}
		}
	}
	return t, warnings
}

// routesFor returns the routes of the rule host that serves a request's host: the host
// itself, else the single-label wildcard that matches it, else the rules without a host.
func (t table) routesFor(host string) []route {
	if r, ok := t.hosts[host]; ok && host != "" {
		return r
	}
	for rule, r := range t.hosts {
		if strings.HasPrefix(rule, "*.") && hostMatches(rule, host) {
			return r
		}
	}
	return t.hosts[""]
}

// resolve is where a request goes: a backend address, or "" for the 404 when nothing
// matches and there is no default backend (or the backend does not exist).
func (t table) resolve(host, path string) string {
	if r, ok := match(t.routesFor(host), path); ok {
		return r.backend
	}
	return t.defaultBackend
}

// sortedHosts lists the rule hosts in a stable order, "" last.
func (t table) sortedHosts() []string {
	hosts := make([]string, 0, len(t.hosts))
	for h := range t.hosts {
		hosts = append(hosts, h)
	}
	slices.SortFunc(hosts, func(a, b string) int {
		if (a == "") != (b == "") {
			if a == "" {
				return 1
			}
			return -1
		}
		return cmp.Compare(a, b)
	})
	return hosts
}
