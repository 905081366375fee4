package deploycheck_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// loadCompose loads docker-compose.yml with the given profiles active.
func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"../../docker-compose.yml"}, cli.WithWorkingDirectory("../.."), cli.WithOsEnv, cli.WithProfiles(profiles))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func TestComposeServicesHaveHealthchecksAndWaitForHealthyDependencies(t *testing.T) {
	p := loadCompose(t)
	var names []string
	for name := range p.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"billing", "gateway", "notification", "order", "postgres", "rabbitmq", "user"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	for name, s := range p.Services {
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s has no healthcheck", name)
		}
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s depends on %s with condition %q, want service_healthy", name, dep, d.Condition)
			}
		}
	}
	for _, svc := range []string{"user", "billing", "order", "notification"} {
		s := p.Services[svc]
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" || s.Build.Args["SERVICE"] == nil || *s.Build.Args["SERVICE"] != svc {
			t.Errorf("%s: want a build from deploy/Dockerfile with SERVICE=%s", svc, svc)
		}
		if s.Image != "order-system-"+svc+":latest" {
			t.Errorf("%s: image %q", svc, s.Image)
		}
		if !slices.Equal(s.HealthCheck.Test, types.HealthCheckTest{"CMD", "/app", "healthcheck"}) {
			t.Errorf("%s: healthcheck %v, want the binary's own healthcheck", svc, s.HealthCheck.Test)
		}
		if s.Environment["DATABASE_URL"] == nil || s.Environment["AMQP_URL"] == nil {
			t.Errorf("%s: DATABASE_URL and AMQP_URL must be set", svc)
		}
		if _, ok := s.DependsOn["postgres"]; !ok {
			t.Errorf("%s does not wait for postgres", svc)
		}
		// A stop must leave the service its whole shutdown, outbox flush included, before
		// the engine kills it.
		if v := s.Environment["SHUTDOWN_TIMEOUT"]; v == nil {
			t.Errorf("%s: SHUTDOWN_TIMEOUT must be set", svc)
		} else if shutdown, err := time.ParseDuration(*v); err != nil {
			t.Errorf("%s: SHUTDOWN_TIMEOUT %q: %v", svc, *v, err)
		} else if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= shutdown {
			t.Errorf("%s: stop_grace_period %v, want more than SHUTDOWN_TIMEOUT %v", svc, s.StopGracePeriod, shutdown)
		}
	}
	gw := p.Services["gateway"]
	if len(gw.Ports) != 1 || gw.Ports[0].Published != "8000" || gw.Ports[0].Target != 8000 {
		t.Errorf("gateway ports %+v, want 8000:8000", gw.Ports)
	}
	// The passwords in the file are well known: nothing is published beyond loopback.
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s on %q, want 127.0.0.1", name, port.Published, port.HostIP)
			}
		}
	}
	if len(gw.DependsOn) != 4 {
		t.Errorf("gateway waits for %d services, want the 4", len(gw.DependsOn))
	}
}

// Jaeger is there only with the tracing profile, so that a plain `docker compose up` needs no
// image beyond its own; the services export to an OTLP endpoint only when one is given. Its
// image is the Jaeger that scripts/build-jaeger.sh builds (make compose-test runs that build
// under the image's name).
func TestComposeTracing(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	if _, ok := loadCompose(t).Services["jaeger"]; ok {
		t.Error("jaeger starts without the tracing profile")
	}
	p := loadCompose(t, "tracing")
	j, ok := p.Services["jaeger"]
	if !ok {
		t.Fatal("no jaeger service in the tracing profile")
	}
	if j.HealthCheck == nil || len(j.HealthCheck.Test) == 0 {
		t.Error("jaeger has no healthcheck")
	}
	if want := "jaegertracing/jaeger:" + jaegerBuilt(t); j.Image != want {
		t.Errorf("jaeger's image %q, want %q, the version scripts/build-jaeger.sh builds", j.Image, want)
	}
	ports := map[uint32]string{}
	for _, port := range j.Ports {
		ports[port.Target] = port.HostIP
	}
	if ports[16686] != "127.0.0.1" {
		t.Errorf("jaeger ports %+v, want its UI (16686) published on 127.0.0.1", j.Ports)
	}
	for _, svc := range []string{"user", "billing", "order", "notification"} {
		if v := p.Services[svc].Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]; v == nil || *v != "" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %v, want it empty (no export) unless set", svc, v)
		}
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318")
	p = loadCompose(t, "tracing")
	for _, svc := range []string{"user", "billing", "order", "notification"} {
		if v := p.Services[svc].Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]; v == nil || *v != "http://jaeger:4318" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %v, want the one given", svc, v)
		}
	}
}

// jaegerBuilt is the Jaeger v2 version of the module scripts/build-jaeger.sh builds by default:
// Jaeger tags each release twice, v1.N.P and v2.(N-63).P on one commit (v1.75.0 is v2.12.0),
// and its Go module carries the v1 tags only.
func jaegerBuilt(t *testing.T) string {
	t.Helper()
	script, err := os.ReadFile("../../scripts/build-jaeger.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VERSION=\$\{JAEGER_VERSION:-v1\.(\d+)\.(\d+)\}`).FindSubmatch(script)
	if m == nil {
		t.Fatal("scripts/build-jaeger.sh: no VERSION=${JAEGER_VERSION:-v1.N.P}")
	}
	minor, _ := strconv.Atoi(string(m[1]))
	return fmt.Sprintf("2.%d.%s", minor-63, m[2])
}

// The monitoring profile adds Prometheus and the PostgreSQL exporter, and nothing else; a plain
// `docker compose up` has neither. Prometheus loads deploy/docker/prometheus.yml, which scrapes
// the jobs the rules and the dashboards expect at the services' compose names and ports, and
// the rules of deploy/prometheus/rules.yml at the path it names; the dashboard's console is
// where the image serves its consoles from. Only Prometheus is published, on loopback.
func TestComposeMonitoring(t *testing.T) {
	plain := loadCompose(t)
	for _, name := range []string{"prometheus", "postgres-exporter"} {
		if _, ok := plain.Services[name]; ok {
			t.Errorf("%s starts without the monitoring profile", name)
		}
	}
	p := loadCompose(t, "monitoring")
	if got, want := len(p.Services), len(plain.Services)+2; got != want {
		t.Errorf("the monitoring profile has %d services, want %d: the plain ones, prometheus and postgres-exporter", got, want)
	}
	prom, ok := p.Services["prometheus"]
	if !ok {
		t.Fatal("no prometheus service in the monitoring profile")
	}
	exporter, ok := p.Services["postgres-exporter"]
	if !ok {
		t.Fatal("no postgres-exporter service in the monitoring profile")
	}
	for name, s := range map[string]types.ServiceConfig{"prometheus": prom, "postgres-exporter": exporter} {
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s has no healthcheck", name)
		}
	}
	// Prometheus 3 ships no console libraries, which the dashboard is drawn with.
	if !strings.HasPrefix(prom.Image, "prom/prometheus:v2.") {
		t.Errorf("prometheus's image %q, want a Prometheus 2 (prom/prometheus:v2.*)", prom.Image)
	}
	if len(prom.Ports) != 1 || prom.Ports[0].Target != 9090 || prom.Ports[0].HostIP != "127.0.0.1" {
		t.Errorf("prometheus ports %+v, want 9090 on 127.0.0.1", prom.Ports)
	}
	if len(exporter.Ports) != 0 {
		t.Errorf("postgres-exporter publishes %+v: only Prometheus reaches it", exporter.Ports)
	}
	if v := exporter.Environment["DATA_SOURCE_NAME"]; v == nil || !strings.Contains(*v, "@postgres:5432/order_system") {
		t.Errorf("postgres-exporter: DATA_SOURCE_NAME %v, want the compose PostgreSQL's order_system", v)
	}
	if _, ok := exporter.DependsOn["postgres"]; !ok {
		t.Error("postgres-exporter does not wait for postgres")
	}
	for _, dep := range []string{"user", "billing", "order", "notification", "rabbitmq", "postgres-exporter"} {
		if _, ok := prom.DependsOn[dep]; !ok {
			t.Errorf("prometheus does not wait for %s: its first scrapes would find it down", dep)
		}
	}

	mounts := map[string]string{} // target → source, relative to the repository
	root, _ := filepath.Abs("../..")
	for _, v := range prom.Volumes {
		rel, _ := filepath.Rel(root, v.Source)
		mounts[v.Target] = rel
		if !v.ReadOnly {
			t.Errorf("prometheus mounts %s writable", v.Source)
		}
	}
	if mounts["/etc/prometheus/prometheus.yml"] != "deploy/docker/prometheus.yml" {
		t.Errorf("prometheus's configuration comes from %q, want deploy/docker/prometheus.yml", mounts["/etc/prometheus/prometheus.yml"])
	}
	if mounts["/usr/share/prometheus/consoles/order-system.html"] != "deploy/prometheus/consoles/order-system.html" {
		t.Errorf("the dashboard console is not mounted among the image's consoles: %v", mounts)
	}

	raw, err := os.ReadFile("../../deploy/docker/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var config struct {
		Global        map[string]string `json:"global"`
		RuleFiles     []string          `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict(raw, &config); err != nil {
		t.Fatalf("deploy/docker/prometheus.yml: %v", err)
	}
	if len(config.RuleFiles) != 1 || mounts[config.RuleFiles[0]] != "deploy/prometheus/rules.yml" {
		t.Errorf("rule_files %q: want the one path where deploy/prometheus/rules.yml is mounted (mounts %v)", config.RuleFiles, mounts)
	}
	want := map[string]string{ // job → path and target
		"user": "/metrics user:8080", "billing": "/metrics billing:8080", "order": "/metrics order:8080",
		"notification": "/metrics notification:8080", "rabbitmq": "/metrics/per-object rabbitmq:15692",
		"postgres": "/metrics postgres-exporter:9187",
	}
	got := map[string]string{}
	for _, sc := range config.ScrapeConfigs {
		path := sc.MetricsPath
		if path == "" {
			path = "/metrics"
		}
		var targets []string
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
		got[sc.JobName] = path + " " + strings.Join(targets, ",")
	}
	if !maps.Equal(got, want) {
		t.Errorf("scrape jobs %v, want %v", got, want)
	}
	// Each target's service is in the profile, listening where it is scraped.
	for job, target := range got {
		host, port, _ := strings.Cut(strings.Fields(target)[1], ":")
		s, ok := p.Services[host]
		if !ok {
			t.Errorf("job %s scrapes %s, which is no service of the profile", job, host)
			continue
		}
		if host == "rabbitmq" || host == "postgres-exporter" {
			continue // the images' own ports
		}
		if v := s.Environment["HTTP_ADDR"]; v != nil && *v != ":"+port {
			t.Errorf("job %s scrapes port %s, but %s listens on %s", job, port, host, *v)
		}
	}
}

// Sign-in is off unless AUTH says otherwise; the auth profile adds the development provider,
// whose service client secrets, like the services', come only from the environment.
func TestComposeAuth(t *testing.T) {
	t.Setenv("AUTH", "")
	t.Setenv("USER_SERVICE_SECRET", "")
	p := loadCompose(t)
	if _, ok := p.Services["devidp"]; ok {
		t.Error("devidp starts without the auth profile")
	}
	for _, svc := range []string{"user", "billing", "order", "notification"} {
		if v := p.Services[svc].Environment["AUTH"]; v == nil || *v != "off" {
			t.Errorf("%s: AUTH = %v, want off by default", svc, v)
		}
	}
	if v := p.Services["user"].Environment["AUTH_CLIENT_SECRET"]; v != nil && *v != "" {
		t.Errorf("user: AUTH_CLIENT_SECRET defaults to %q: a secret must come from the environment", *v)
	}

	t.Setenv("AUTH", "oidc")
	t.Setenv("USER_SERVICE_SECRET", "user-secret-0123456789")
	t.Setenv("ORDER_SERVICE_SECRET", "order-secret-0123456789")
	p = loadCompose(t, "auth")
	idp, ok := p.Services["devidp"]
	if !ok {
		t.Fatal("no devidp service in the auth profile")
	}
	if idp.Build == nil || idp.Build.Dockerfile != "deploy/Dockerfile" || idp.Build.Args["SERVICE"] == nil || *idp.Build.Args["SERVICE"] != "devidp" {
		t.Error("devidp: want a build from deploy/Dockerfile with SERVICE=devidp")
	}
	if v := idp.Environment["DEVIDP_SERVICE_CLIENTS"]; v == nil || *v != "user-service:user-secret-0123456789,order-service:order-secret-0123456789" {
		t.Errorf("devidp: DEVIDP_SERVICE_CLIENTS = %v", v)
	}
	for _, port := range idp.Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("devidp publishes %s on %q, want 127.0.0.1", port.Published, port.HostIP)
		}
	}
	for svc, secret := range map[string]string{"user": "user-secret-0123456789", "order": "order-secret-0123456789"} {
		env := p.Services[svc].Environment
		if v := env["AUTH_CLIENT_SECRET"]; v == nil || *v != secret {
			t.Errorf("%s: AUTH_CLIENT_SECRET is not USER/ORDER_SERVICE_SECRET", svc)
		}
		if v := env["AUTH"]; v == nil || *v != "oidc" {
			t.Errorf("%s: AUTH = %v, want oidc", svc, v)
		}
	}
}
