package deploycheck_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"../../docker-compose.yml"}, cli.WithWorkingDirectory("../.."), cli.WithOsEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func TestCompose(t *testing.T) {
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
