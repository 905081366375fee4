package deploycheck_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
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
// image beyond its own; the services export to an OTLP endpoint only when one is given.
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
	if idp.Build == nil || idp.Build.Args["MODULE"] == nil || *idp.Build.Args["MODULE"] != "tools/devidp" {
		t.Error("devidp: want a build of tools/devidp from deploy/Dockerfile")
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
