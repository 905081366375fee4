package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// render writes an nginx configuration (the http-level servers) serving the table on listen.
//
// nginx matches locations by string prefix, the Ingress API by path element, so each route
// becomes locations that only match whole elements:
//   - Exact /p:          location = /p
//   - Prefix /p (or /p/): location = /p and location ^~ /p/ (never /pq)
//   - Prefix /:          location /
//
// nginx then picks an exact location first and otherwise the longest prefix, which is the
// API's "longest match wins, Exact before Prefix". Hosts: a rule host is a server_name; a
// wildcard becomes a regex matching one label; rules without a host (or no matching host)
// fall to the default server. A location nobody claims answers like the default backend.
func render(t table, listen string) string {
	var b strings.Builder
	for _, host := range t.sortedHosts() {
		fmt.Fprintf(&b, "server {\n    listen %s", listen)
		switch {
		case host == "":
			b.WriteString(" default_server;\n    server_name _;\n")
		case strings.HasPrefix(host, "*."):
			fmt.Fprintf(&b, ";\n    server_name ~^[^.]+%s$;\n", regexp.QuoteMeta(host[1:]))
		default:
			fmt.Fprintf(&b, ";\n    server_name %s;\n", host)
		}
		writeLocations(&b, t.hosts[host], t.defaultBackend)
		b.WriteString("}\n")
	}
	if _, ok := t.hosts[""]; !ok {
		fmt.Fprintf(&b, "server {\n    listen %s default_server;\n    server_name _;\n", listen)
		writeLocations(&b, nil, t.defaultBackend)
		b.WriteString("}\n")
	}
	return b.String()
}

func writeLocations(b *strings.Builder, routes []route, defaultBackend string) {
	exact := map[string]string{}  // location = p
	prefix := map[string]string{} // location ^~ p/ (or / itself)
	var order []string
	claim := func(m map[string]string, key, backend string, over bool) {
		if _, ok := m[key]; ok && !over {
			return
		}
		if _, ok := exact[key]; !ok {
			if _, ok := prefix[key]; !ok {
				order = append(order, key)
			}
		}
		m[key] = backend
	}
	// Exact routes first: they win over a Prefix route of the same path.
	for _, r := range routes {
		if r.pathType == networkingv1.PathTypeExact {
			claim(exact, r.path, r.backend, false)
		}
	}
	for _, r := range routes {
		if r.pathType == networkingv1.PathTypeExact {
			continue
		}
		p := "/" + strings.Join(elements(r.path), "/")
		if p == "/" {
			claim(prefix, "/", r.backend, false)
			continue
		}
		claim(exact, p, r.backend, false)
		claim(prefix, p+"/", r.backend, false)
	}
	if _, ok := prefix["/"]; !ok {
		claim(prefix, "/", defaultBackend, false)
	}
	// For a location "/p/" nginx answers "/p" with a redirect to "/p/" unless a location
	// "= /p" exists: give "/p" the route the API gives it.
	for _, key := range slices.Clone(order) {
		if key == "/" || !strings.HasSuffix(key, "/") {
			continue
		}
		bare := strings.TrimSuffix(key, "/")
		backend := defaultBackend
		if r, ok := match(routes, bare); ok {
			backend = r.backend
		}
		claim(exact, bare, backend, false)
	}
	for _, key := range order {
		if backend, ok := exact[key]; ok {
			fmt.Fprintf(b, "    location = %s {\n%s    }\n", key, proxy(backend))
		}
		if backend, ok := prefix[key]; ok {
			modifier := "^~ "
			if key == "/" {
				modifier = ""
			}
			fmt.Fprintf(b, "    location %s%s {\n%s    }\n", modifier, key, proxy(backend))
		}
	}
}

// proxy is a location's body: pass the request to backend unchanged, or answer 404. No
// keepalive to the backends: each request opens a connection, so a pod that left the
// Service's endpoints gets no new requests over an old connection.
func proxy(backend string) string {
	if backend == "" {
		return "        default_type application/json;\n        return 404 '{\"code\":\"not_found\",\"message\":\"no route\"}\\n';\n"
	}
	return fmt.Sprintf("        proxy_pass http://%s;\n", backend)
}
