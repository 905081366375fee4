package deploycheck_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The connection budget of the bundled PostgreSQL, computed from the rendered objects: every
// service may roll out at once (a new image tag changes all four Deployments), so its worst
// case is (pods + the rollout's surge) × the pod's pools, and their sum must fit in
// max_connections less the slots that are not the services'.
const (
	superuserReserved = 3 // PostgreSQL's superuser_reserved_connections, kept for psql by an operator
	defaultMaxConns   = 100
	// The pools a service opens when its ConfigMap leaves them out (pkg/env's defaults), and
	// the charts of the services that run an outbox relay with a pool of its own.
	defaultPool, defaultRelayPool = 10, 2
)

var relayCharts = []string{"user-", "order-"}

// budget is the worst case of one rendering: the services' connections and what is left for them.
type budget struct {
	worst, room int
	lines       []string // each service's share, for the failure message
}

func connectionBudget(t *testing.T, objs objects) budget {
	t.Helper()
	maxConns := defaultMaxConns
	var exporters int
	for _, s := range objs.statefulsets {
		if !strings.HasSuffix(s.Name, "-postgresql") {
			continue
		}
		for _, c := range s.Spec.Template.Spec.Containers {
			if c.Name == "metrics" {
				exporters++ // postgres_exporter holds one connection
			}
			for _, arg := range c.Args {
				if v, ok := strings.CutPrefix(arg, "max_connections="); ok {
					n, err := strconv.Atoi(v)
					if err != nil {
						t.Fatalf("%s: max_connections %q", s.Name, v)
					}
					maxConns = n
				}
			}
		}
	}
	maxPods := map[string]int{} // what an autoscaler may scale a Deployment to
	for _, a := range objs.autoscalers {
		maxPods[a.Spec.ScaleTargetRef.Name] = int(a.Spec.MaxReplicas)
	}
	config := map[string]map[string]string{}
	for _, c := range objs.configmaps {
		config[c.Name] = c.Data
	}
	b := budget{room: maxConns - superuserReserved - exporters}
	for _, d := range objs.deployments {
		env := podEnv(d, config)
		if env == nil {
			continue // not a service of the database
		}
		perPod := atoi(t, env["DB_MAX_OPEN_CONNS"], defaultPool)
		for _, prefix := range relayCharts {
			if strings.HasPrefix(d.Labels["helm.sh/chart"], prefix) {
				perPod += atoi(t, env["DB_RELAY_MAX_OPEN_CONNS"], defaultRelayPool)
			}
		}
		pods, ok := maxPods[d.Name]
		if !ok {
			pods = 1
			if d.Spec.Replicas != nil {
				pods = int(*d.Spec.Replicas)
			}
		}
		extra := surge(d, pods)
		worst := (pods + extra) * perPod
		b.worst += worst
		b.lines = append(b.lines, fmt.Sprintf("%s: (%d pods + %d during a rollout) × %d = %d", d.Name, pods, extra, perPod, worst))
	}
	return b
}

// podEnv is the environment the service container of d gets from its ConfigMaps and its own
// entries, or nil when it has no database pool.
func podEnv(d appsv1.Deployment, config map[string]map[string]string) map[string]string {
	for _, c := range d.Spec.Template.Spec.Containers {
		env := map[string]string{}
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef != nil {
				for k, v := range config[from.ConfigMapRef.Name] {
					env[k] = v
				}
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				env[e.Name] = e.Value
			}
		}
		if _, ok := env["DB_MAX_OPEN_CONNS"]; ok {
			return env
		}
	}
	return nil
}

// surge is how many pods a rolling update of d adds above pods (Kubernetes rounds a
// percentage up; its default is 25 %).
func surge(d appsv1.Deployment, pods int) int {
	s := intstr.FromString("25%")
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		s = *ru.MaxSurge
	}
	if s.Type == intstr.Int {
		return s.IntValue()
	}
	pct, _ := strconv.Atoi(strings.TrimSuffix(s.StrVal, "%"))
	return int(math.Ceil(float64(pods) * float64(pct) / 100))
}

func atoi(t *testing.T, s string, def int) int {
	t.Helper()
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("pool size %q", s)
	}
	return n
}

func TestConnectionBudgetFitsTheBundledDatabase(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  []string
	}{
		{"defaults", nil},
		{"the autoscaler's defaults", []string{"global.autoscaling.enabled=true"}},
		{"with the exporter", []string{"postgresql.metrics.enabled=true", "global.autoscaling.enabled=true"}},
		{"the one-node cluster's values", []string{"--values=../../deploy/kube/config/values.yaml"}},
		{"more replicas, with room made for them", []string{"order.replicas=4", "user.replicas=4", "postgresql.maxConnections=300"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := connectionBudget(t, render(t, tt.set...))
			t.Logf("worst case %d of %d connections: %s", b.worst, b.room, strings.Join(b.lines, "; "))
			if b.worst > b.room {
				t.Errorf("the services may open %d connections during a rollout, PostgreSQL takes %d of theirs: %s",
					b.worst, b.room, strings.Join(b.lines, "; "))
			}
		})
	}
}

// The computation sees a budget that is exceeded, where the chart's comments say it would be.
func TestConnectionBudgetExceededIsSeen(t *testing.T) {
	for _, tt := range []struct {
		name       string
		set        []string
		worst, max int
	}{
		// 44 connections per set of pods: 4 + 1 sets during a rollout.
		{"autoscaling to 4 on 200", []string{"global.autoscaling.enabled=true", "global.autoscaling.maxReplicas=4"}, 220, 197},
		// 2 + 1 sets on the server's own default.
		{"2 replicas on 100", []string{"user.replicas=2", "billing.replicas=2", "order.replicas=2", "notification.replicas=2", "postgresql.maxConnections=100"}, 132, 97},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := connectionBudget(t, render(t, tt.set...))
			if b.worst != tt.worst || b.room != tt.max {
				t.Errorf("worst case %d of %d, want %d of %d: %s", b.worst, b.room, tt.worst, tt.max, strings.Join(b.lines, "; "))
			}
		})
	}
}
