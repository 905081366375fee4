package deploycheck_test

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// monitor is what the checks read of a ServiceMonitor (monitoring.coreos.com/v1).
type monitor struct {
	APIVersion string
	Metadata   struct {
		Name   string
		Labels map[string]string
	}
	Spec struct {
		Selector  struct{ MatchLabels map[string]string }
		Endpoints []struct {
			Port, Path, Interval string
			Relabelings          []struct{ Action, TargetLabel, Replacement string }
		}
	}
}

// decodeMonitor reads a rendered ServiceMonitor; t may be nil where no test is at hand (a
// ServiceMonitor that does not decode then has no name).
func decodeMonitor(t *testing.T, o map[string]any) monitor {
	var m monitor
	js, err := json.Marshal(o)
	if err == nil {
		err = json.Unmarshal(js, &m)
	}
	if err != nil && t != nil {
		t.Fatalf("ServiceMonitor %v: %v", o, err)
	}
	return m
}

// scrape is a pod template's prometheus.io annotations: scrape, port, path.
func scrape(tpl corev1.PodTemplateSpec) [3]string {
	a := tpl.Annotations
	return [3]string{a["prometheus.io/scrape"], a["prometheus.io/port"], a["prometheus.io/path"]}
}

// hasPort says whether a container of the pod listens on port.
func hasPort(spec corev1.PodSpec, port int32) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.ContainerPort == port {
				return true
			}
		}
	}
	return false
}

func statefulSet(t *testing.T, objs objects, name string) appsv1.StatefulSet {
	t.Helper()
	for _, s := range objs.statefulsets {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no StatefulSet %s", name)
	return appsv1.StatefulSet{}
}

// By default the services' pods and the bundled broker's carry the conventional scrape
// annotations, each naming a port the pod listens on; the broker's plugin is on in every node
// and scraped per queue. One service's podAnnotations override them for it; switched off,
// no pod has them.
func TestScrapeAnnotations(t *testing.T) {
	objs := render(t)
	for _, svc := range theServices {
		tpl := deployment(t, objs, "order-system-"+svc)
		if got, want := scrape(tpl), [3]string{"true", "8080", "/metrics"}; got != want {
			t.Errorf("%s: scrape annotations %q, want %q", svc, got, want)
		}
		if !hasPort(tpl.Spec, 8080) {
			t.Errorf("%s: no container listens on 8080, which its annotations name", svc)
		}
	}
	mq := statefulSet(t, objs, "order-system-rabbitmq").Spec.Template
	if got, want := scrape(mq), [3]string{"true", "15692", "/metrics/per-object"}; got != want {
		t.Errorf("rabbitmq: scrape annotations %q, want %q", got, want)
	}
	if !hasPort(mq.Spec, 15692) {
		t.Error("rabbitmq: no container port 15692, which its annotations name")
	}
	// The plugin is enabled by the chart's own list, whatever the image's: the variable names
	// a file of the mounted ConfigMap.
	var pluginsFile string
	for _, e := range mq.Spec.Containers[0].Env {
		if e.Name == "RABBITMQ_ENABLED_PLUGINS_FILE" {
			pluginsFile = e.Value
		}
	}
	dir, key := filepath.Split(pluginsFile)
	var mounted bool
	for _, m := range mq.Spec.Containers[0].VolumeMounts {
		mounted = mounted || (m.Name == "config" && m.MountPath+"/" == dir)
	}
	plugins := configMap(t, objs, "order-system-rabbitmq").Data[key]
	if !mounted || !strings.Contains(plugins, "rabbitmq_prometheus") || !strings.Contains(plugins, "rabbitmq_management") ||
		!strings.HasSuffix(strings.TrimSpace(plugins), "].") {
		t.Errorf("RABBITMQ_ENABLED_PLUGINS_FILE %q (mounted: %v) holds %q, want the management and prometheus plugins", pluginsFile, mounted, plugins)
	}
	// No exporter by default: the database's pod has nothing to scrape.
	if got := scrape(statefulSet(t, objs, "order-system-postgresql").Spec.Template); got != [3]string{} {
		t.Errorf("postgresql without its exporter: scrape annotations %q", got)
	}

	objs = render(t, `order.podAnnotations.prometheus\.io/path=/other`, `billing.podAnnotations.prometheus\.io/scrape=false`)
	for svc, want := range map[string][3]string{"order": {"true", "8080", "/other"}, "billing": {"false", "8080", "/metrics"}, "user": {"true", "8080", "/metrics"}} {
		if got := scrape(deployment(t, objs, "order-system-"+svc)); got != want {
			t.Errorf("%s with podAnnotations: %q, want %q", svc, got, want)
		}
	}

	off := render(t, "global.metrics.scrapeAnnotations=false", "postgresql.metrics.enabled=true")
	templates := map[string]corev1.PodTemplateSpec{}
	for _, d := range off.deployments {
		templates["Deployment "+d.Name] = d.Spec.Template
	}
	for _, s := range off.statefulsets {
		templates["StatefulSet "+s.Name] = s.Spec.Template
	}
	if len(templates) != 7 {
		t.Errorf("%d workloads, want the four services, the index and the two stores", len(templates))
	}
	for name, tpl := range templates {
		for k := range tpl.Annotations {
			if strings.HasPrefix(k, "prometheus.io/") {
				t.Errorf("%s has %s with scrapeAnnotations off", name, k)
			}
		}
	}
}

// The ServiceMonitors are off by default; asked for where the API server has no Prometheus
// Operator, the chart refuses; on, there is one per service, selecting that service's Service
// alone, scraping its http port at /metrics every interval, under the job the rules and
// dashboards expect (the service's own name, whatever its objects are called), with the
// labels asked for and never over the chart's own.
func TestServiceMonitors(t *testing.T) {
	if n := len(render(t, serviceMonitorAPI).monitors); n != 0 {
		t.Errorf("%d ServiceMonitors by default, want none", n)
	}
	out := helmFails(t, "template", "order-system", chart, "--kube-version", kubeVersion, "--set", "global.metrics.serviceMonitor.enabled=true")
	if !strings.Contains(out, "global.metrics.serviceMonitor.enabled: the cluster has no Prometheus Operator") {
		t.Errorf("serviceMonitor on without the CRDs: %s", out)
	}

	objs := render(t, serviceMonitorAPI, "global.metrics.serviceMonitor.enabled=true", "global.metrics.serviceMonitor.interval=15s",
		"global.metrics.serviceMonitor.labels.release=prometheus", "order.fullnameOverride=shop-orders")
	checkConsistent(t, objs)
	names := map[string]string{"user": "order-system-user", "billing": "order-system-billing", "order": "shop-orders", "notification": "order-system-notification"}
	byName := map[string]monitor{}
	for _, o := range objs.monitors {
		m := decodeMonitor(t, o)
		byName[m.Metadata.Name] = m
	}
	if len(byName) != len(names) {
		t.Errorf("%d ServiceMonitors %v, want one per service", len(byName), slices.Sorted(maps.Keys(byName)))
	}
	for svc, name := range names {
		m, ok := byName[name]
		if !ok {
			t.Errorf("no ServiceMonitor %s", name)
			continue
		}
		if m.APIVersion != "monitoring.coreos.com/v1" || m.Metadata.Labels["release"] != "prometheus" || m.Metadata.Labels["app.kubernetes.io/part-of"] != "order-system" {
			t.Errorf("%s: %s, labels %v", name, m.APIVersion, m.Metadata.Labels)
		}
		// It selects the Service of the service's Deployment, and nothing else.
		s := service(t, objs, name)
		if !labels.SelectorFromSet(m.Spec.Selector.MatchLabels).Matches(labels.Set(s.Labels)) ||
			!labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(deployment(t, objs, name).Labels)) {
			t.Errorf("%s selects %v: not the Service %s of the service's pods", name, m.Spec.Selector.MatchLabels, s.Name)
		}
		if len(m.Spec.Endpoints) != 1 {
			t.Fatalf("%s: %d endpoints, want 1", name, len(m.Spec.Endpoints))
		}
		e := m.Spec.Endpoints[0]
		var job []string
		for _, r := range e.Relabelings {
			if r.TargetLabel == "job" {
				job = append(job, r.Action+" "+r.Replacement)
			}
		}
		if e.Port != "http" || e.Path != "/metrics" || e.Interval != "15s" || !slices.Equal(job, []string{"replace " + svc}) {
			t.Errorf("%s scrapes port %q path %q every %q, job %v; want http, /metrics, 15s and the job %s", name, e.Port, e.Path, e.Interval, job, svc)
		}
	}

	out = helmFails(t, "template", "order-system", chart, "--kube-version", kubeVersion, serviceMonitorAPI,
		"--set", `global.metrics.serviceMonitor.enabled=true,global.metrics.serviceMonitor.labels.app\.kubernetes\.io/name=x`)
	if !strings.Contains(out, "global.metrics.serviceMonitor.labels: app.kubernetes.io/name is set by the chart") {
		t.Errorf("a label of the chart's own in serviceMonitor.labels: %s", out)
	}

	// A service's subchart on its own renders its own.
	alone := renderChart(t, filepath.Join(chart, "charts", "billing"), append(givenPasswords, serviceMonitorAPI, "global.metrics.serviceMonitor.enabled=true")...)
	if len(alone.monitors) != 1 || decodeMonitor(t, alone.monitors[0]).Metadata.Name != "order-system-billing" {
		t.Errorf("billing on its own: %d ServiceMonitors, want order-system-billing", len(alone.monitors))
	}
	checkConsistent(t, alone)
}

// Jaeger is off by default. On, it runs as one pod of jaegertracing/jaeger (the version
// scripts/build-jaeger.sh builds, as in the compose file) with its traces in
// a bounded memory, locked down as the other pods, behind a Service with the OTLP/HTTP port,
// and every service exports its traces there under its own name; an endpoint given in the
// values still wins.
func TestJaeger(t *testing.T) {
	for _, d := range render(t).deployments {
		if strings.Contains(d.Name, "jaeger") {
			t.Errorf("Deployment %s by default", d.Name)
		}
	}
	objs := render(t, "global.tracing.jaeger=true", "jaeger.maxTraces=500")
	checkConsistent(t, objs)
	var jaeger *appsv1.Deployment
	for i, d := range objs.deployments {
		if d.Name == "order-system-jaeger" {
			jaeger = &objs.deployments[i]
		}
	}
	if jaeger == nil {
		t.Fatal("no Deployment order-system-jaeger with global.tracing.jaeger")
	}
	pod := jaeger.Spec.Template.Spec
	c := pod.Containers[0]
	if jaeger.Spec.Replicas == nil || *jaeger.Spec.Replicas != 1 || jaeger.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType ||
		len(pod.Containers) != 1 || c.Image != "jaegertracing/jaeger:"+jaegerBuilt(t) {
		t.Errorf("jaeger: replicas %v, strategy %q, containers %d, image %q; want one pod of jaegertracing/jaeger at the version scripts/build-jaeger.sh builds, recreated",
			jaeger.Spec.Replicas, jaeger.Spec.Strategy.Type, len(pod.Containers), c.Image)
	}
	if !slices.Equal(c.Args, []string{"--set=extensions.jaeger_storage.backends.some_storage.memory.max_traces=500"}) {
		t.Errorf("jaeger's arguments %q, want the memory store bounded at jaeger.maxTraces", c.Args)
	}
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("jaeger: want a non-root pod without an API token")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil ||
		*sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("jaeger: want a read-only root, no privilege escalation, all capabilities dropped")
	}
	if c.Resources.Limits.Memory().IsZero() || c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Error("jaeger: want a memory limit and probes")
	}
	// The OTLP/HTTP port of its Service reaches the container's.
	s := service(t, objs, "order-system-jaeger")
	var otlp string
	for _, p := range s.Spec.Ports {
		if p.Port == 4318 {
			otlp = p.TargetPort.String()
		}
	}
	var listens bool
	for _, p := range c.Ports {
		listens = listens || (p.Name == otlp && p.ContainerPort == 4318)
	}
	if !listens || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(jaeger.Spec.Template.Labels)) {
		t.Errorf("Service order-system-jaeger: port 4318 to %q (the container listens: %v), selector %v", otlp, listens, s.Spec.Selector)
	}

	for _, tt := range []struct {
		set      []string
		endpoint string
	}{
		{[]string{"global.tracing.jaeger=true"}, "http://order-system-jaeger:4318"},
		{[]string{"global.tracing.jaeger=true", "global.tracing.otlpEndpoint=http://collector.observability:4318"}, "http://collector.observability:4318"},
	} {
		objs := render(t, tt.set...)
		for _, svc := range theServices {
			cm := configMap(t, objs, "order-system-"+svc)
			if cm.Data["OTEL_EXPORTER_OTLP_ENDPOINT"] != tt.endpoint || cm.Data["OTEL_SERVICE_NAME"] != svc {
				t.Errorf("%v: %s exports to %q as %q, want %s as %s", tt.set, svc, cm.Data["OTEL_EXPORTER_OTLP_ENDPOINT"], cm.Data["OTEL_SERVICE_NAME"], tt.endpoint, svc)
			}
		}
	}
}

// PostgreSQL's exporter is off by default. On, it runs beside the database in its pod, reads
// the superuser's password from the database's own Secret (or the existingSecret), connects
// over the pod's loopback to the release's database, and the pod carries the annotations of
// its port.
func TestPostgresExporter(t *testing.T) {
	if n := len(statefulSet(t, render(t), "order-system-postgresql").Spec.Template.Spec.Containers); n != 1 {
		t.Errorf("%d containers in the database's pod by default, want 1", n)
	}
	for _, tt := range []struct {
		name string
		set  []string
		pass string // secret/key of the superuser's password
	}{
		{"generated", nil, "order-system-postgresql/POSTGRES_PASSWORD"},
		{"existingSecret", []string{"postgresql.existingSecret=pg-root", "postgresql.existingSecretKeys.password=root"}, "pg-root/root"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs := render(t, append(tt.set, "postgresql.metrics.enabled=true", "global.database.name=shop db")...)
			tpl := statefulSet(t, objs, "order-system-postgresql").Spec.Template
			if len(tpl.Spec.Containers) != 2 || tpl.Spec.Containers[1].Name != "metrics" {
				t.Fatalf("containers %d, want the database and its exporter", len(tpl.Spec.Containers))
			}
			db, c := tpl.Spec.Containers[0], tpl.Spec.Containers[1]
			env := map[string]string{}
			for _, e := range append(slices.Clone(db.Env), c.Env...) {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					env[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
				} else {
					env[e.Name] = e.Value
				}
			}
			if env["DATA_SOURCE_URI"] != "127.0.0.1:5432/shop%20db?sslmode=disable" || env["DATA_SOURCE_USER"] != "postgres" ||
				env["DATA_SOURCE_PASS"] != tt.pass || env["POSTGRES_PASSWORD"] != tt.pass {
				t.Errorf("the exporter's environment %v, want the release's database on the loopback as postgres, the password from %s", env, tt.pass)
			}
			if !strings.Contains(c.Image, "postgres-exporter") || !hasPort(tpl.Spec, 9187) || c.ReadinessProbe == nil || c.LivenessProbe == nil ||
				c.Resources.Limits.Memory().IsZero() {
				t.Errorf("the exporter: image %q, ports %v, probes %v %v, limits %v", c.Image, c.Ports, c.ReadinessProbe, c.LivenessProbe, c.Resources.Limits)
			}
			if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil ||
				!slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Error("the exporter: want a read-only root and all capabilities dropped")
			}
			if got, want := scrape(tpl), [3]string{"true", "9187", "/metrics"}; got != want {
				t.Errorf("the database's pod with its exporter: scrape annotations %q, want %q", got, want)
			}
		})
	}
	// On its own, the subchart's exporter reads its own Secret.
	alone := renderChart(t, filepath.Join(chart, "charts", "postgresql"), append(givenPasswords, "superuserPassword=pw", "metrics.enabled=true")...)
	checkConsistent(t, alone)
	if n := len(statefulSet(t, alone, "order-system-postgresql").Spec.Template.Spec.Containers); n != 2 {
		t.Errorf("postgresql on its own with metrics.enabled: %d containers, want 2", n)
	}
}

// The network policies let a Prometheus in only when its namespace is named, and then only
// on the metrics ports: the services' port, the broker's plugin, the database's exporter
// (when it runs).
func TestNetworkPolicyMetrics(t *testing.T) {
	allow, deny := defaultFlows()
	checkNetworkPolicy(t, render(t, "postgresql.metrics.enabled=true"), allow, append(deny, flow{"ns:monitoring", "postgresql", 9187}))

	// metricsFrom is each policy's rules that admit the namespace monitoring, as their ports.
	metricsFrom := func(objs objects) map[string][]string {
		out := map[string][]string{}
		for _, p := range objs.policies {
			for _, rule := range p.Spec.Ingress {
				for _, peer := range rule.From {
					if peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
						continue
					}
					var ports []string
					for _, port := range rule.Ports {
						ports = append(ports, port.Port.String())
					}
					out[p.Name] = append(out[p.Name], strings.Join(ports, ","))
				}
			}
		}
		return out
	}
	for _, tt := range []struct {
		set  []string
		want map[string][]string
	}{
		{[]string{"networkPolicy.metricsNamespace=monitoring"}, map[string][]string{
			"order-system-user": {"8080"}, "order-system-billing": {"8080"}, "order-system-order": {"8080"},
			"order-system-notification": {"8080"}, "order-system-rabbitmq": {"15692"}}},
		{[]string{"networkPolicy.metricsNamespace=monitoring", "postgresql.metrics.enabled=true"}, map[string][]string{
			"order-system-user": {"8080"}, "order-system-billing": {"8080"}, "order-system-order": {"8080"},
			"order-system-notification": {"8080"}, "order-system-rabbitmq": {"15692"}, "order-system-postgresql": {"9187"}}},
	} {
		objs := render(t, tt.set...)
		if got := metricsFrom(objs); !maps.EqualFunc(got, tt.want, slices.Equal) {
			t.Errorf("%v: the namespace monitoring is admitted on %v, want %v", tt.set, got, tt.want)
		}
		// Each of those ports is one the protected pods (the policy's namesake) listen on.
		specs := map[string]corev1.PodSpec{}
		for _, d := range objs.deployments {
			specs[d.Name] = d.Spec.Template.Spec
		}
		for _, s := range objs.statefulsets {
			specs[s.Name] = s.Spec.Template.Spec
		}
		for name, ports := range tt.want {
			for _, p := range ports {
				n, _ := strconv.Atoi(p)
				if !hasPort(specs[name], int32(n)) {
					t.Errorf("%v: %s admits the namespace monitoring on %s, where its pods do not listen", tt.set, name, p)
				}
			}
		}
	}
}
