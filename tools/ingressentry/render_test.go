package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// nginxServing renders tab into a real nginx on a free port and returns its address.
func nginxServing(t *testing.T, tab table) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		t.Fatal("nginx is needed: the rendering is checked by running it (apt-get install nginx)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log stderr error;
events {}
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    proxy_set_header Host $host;
%[2]s}
`, dir, render(tab, addr))
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nginx did not listen on %s; configuration:\n%s", addr, conf)
	return ""
}

// get asks nginx for host+path and returns which backend answered ("" for the 404).
func get(t *testing.T, entry, host, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+entry+path, nil)
	req.Host = host
	// A redirect is an answer of its own here, not something to follow.
	client := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return ""
	case http.StatusOK:
	default:
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	return strings.TrimSpace(string(body))
}

// backends starts one HTTP server per route name, each answering with its name, and
// returns the Services that point at them under the route names of ingress().
func backends(t *testing.T, services []corev1.Service) []corev1.Service {
	t.Helper()
	out := make([]corev1.Service, len(services))
	for i, s := range services {
		name := s.Spec.ClusterIP // ingress() put the route there
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, name) }))
		t.Cleanup(srv.Close)
		host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		var p int32
		fmt.Sscan(port, &p)
		out[i] = s
		out[i].Spec.ClusterIP = host
		out[i].Spec.Ports = []corev1.ServicePort{{Port: p}}
	}
	return out
}

// The rendered nginx routes every documentation example as the API says, one nginx per
// example (an nginx server serves one rule set).
func TestNginxFollowsThePathExamples(t *testing.T) {
	for _, ex := range examples {
		ing, services := ingress("", ex.paths)
		services = backends(t, services)
		// Services now listen on their own ports: point each path at its port.
		for i := range ing.Spec.Rules[0].HTTP.Paths {
			ing.Spec.Rules[0].HTTP.Paths[i].Backend.Service.Port.Number = services[i].Spec.Ports[0].Port
		}
		tab, _ := newTable([]networkingv1.Ingress{ing}, services, "nginx")
		entry := nginxServing(t, tab)
		if got := get(t, entry, "example.com", ex.req); got != ex.want {
			t.Errorf("paths %v, request %s: nginx served %q, want %q\n%s", ex.paths, ex.req, got, ex.want, render(tab, entry))
		}
	}
}

func TestNginxFollowsTheHostRules(t *testing.T) {
	var ings []networkingv1.Ingress
	var services []corev1.Service
	for _, h := range []struct{ host, path string }{{"foo.bar.com", "Prefix /exact"}, {"*.bar.com", "Prefix /wild"}, {"", "Prefix /any"}} {
		ing, svcs := ingress(h.host, []string{h.path})
		svcs = backends(t, svcs)
		ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Number = svcs[0].Spec.Ports[0].Port
		ings, services = append(ings, ing), append(services, svcs...)
	}
	tab, _ := newTable(ings, services, "nginx")
	entry := nginxServing(t, tab)
	for _, tt := range []struct{ host, path, want string }{
		{"foo.bar.com", "/exact/x", "Prefix /exact"},
		{"foo.bar.com", "/any", ""}, // its host's rules have no /any
		{"baz.bar.com", "/wild", "Prefix /wild"},
		{"a.baz.bar.com", "/any", "Prefix /any"}, // one label only: the rules without a host
		{"bar.com", "/wild", ""},
		{"other.example", "/any", "Prefix /any"},
	} {
		if got := get(t, entry, tt.host, tt.path); got != tt.want {
			t.Errorf("host %s path %s: nginx served %q, want %q", tt.host, tt.path, got, tt.want)
		}
		if got := tab.resolve(tt.host, tt.path); (got == "") != (tt.want == "") {
			t.Errorf("host %s path %s: the table resolves to %q, nginx to %q", tt.host, tt.path, got, tt.want)
		}
	}
}
