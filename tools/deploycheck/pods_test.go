package deploycheck_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// theServices are the four services' parts, each rendered by order-system-lib's template.
var theServices = []string{"user", "billing", "order", "notification"}

// pods is every pod spec of a rendering by "Kind name": the Deployments', the StatefulSets'
// and the helm test pods.
func pods(objs objects) map[string]corev1.PodSpec {
	out := map[string]corev1.PodSpec{}
	for _, d := range objs.deployments {
		out["Deployment "+d.Name] = d.Spec.Template.Spec
	}
	for _, s := range objs.statefulsets {
		out["StatefulSet "+s.Name] = s.Spec.Template.Spec
	}
	for _, p := range objs.testPods {
		out["Pod "+p.Name] = p.Spec
	}
	return out
}

// deployment returns the Deployment name of a rendering, failing the test without it.
func deployment(t *testing.T, objs objects, name string) corev1.PodTemplateSpec {
	t.Helper()
	for _, d := range objs.deployments {
		if d.Name == name {
			return d.Spec.Template
		}
	}
	t.Fatalf("no Deployment %s", name)
	return corev1.PodTemplateSpec{}
}

// valuesFile writes a values file for flags such as --values=file: lists of objects are
// clearer there than in --set.
func valuesFile(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return "--values=" + path
}

// The services never call the Kubernetes API: each runs as its own ServiceAccount, and no
// pod of the release gets an API token unless the values ask for one.
func TestServiceAccounts(t *testing.T) {
	objs := render(t, "global.auth.enabled=true", "global.auth.devProvider=true", "global.tracing.jaeger=true")
	accounts := map[string]corev1.ServiceAccount{}
	for _, a := range objs.accounts {
		accounts[a.Name] = a
	}
	if len(accounts) != len(theServices) {
		t.Errorf("%d ServiceAccounts, want one per service", len(accounts))
	}
	for _, svc := range theServices {
		name := "order-system-" + svc
		a, ok := accounts[name]
		if !ok {
			t.Errorf("no ServiceAccount %s", name)
		} else if a.AutomountServiceAccountToken == nil || *a.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount %s does not switch off its token's automount", name)
		}
		if got := deployment(t, objs, name).Spec.ServiceAccountName; got != name {
			t.Errorf("%s runs as %q, want its own ServiceAccount", name, got)
		}
	}
	for name, spec := range pods(objs) {
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s mounts an API token, which nothing in it uses", name)
		}
	}
	checkConsistent(t, objs)

	// Accounts of one's own, the namespace's default, an annotated one, a token on request.
	objs = render(t, "user.serviceAccount.create=false", "billing.serviceAccount.create=false", "billing.serviceAccount.name=ledger",
		`order.serviceAccount.annotations.eks\.amazonaws\.com/role-arn=arn:aws:iam::1:role/order`,
		"notification.automountServiceAccountToken=true")
	var names []string
	for _, a := range objs.accounts {
		names = append(names, a.Name)
		if a.Name == "order-system-order" && a.Annotations["eks.amazonaws.com/role-arn"] != "arn:aws:iam::1:role/order" {
			t.Errorf("order's ServiceAccount has annotations %v", a.Annotations)
		}
	}
	slices.Sort(names)
	if want := []string{"order-system-notification", "order-system-order"}; !slices.Equal(names, want) {
		t.Errorf("ServiceAccounts %v, want %v", names, want)
	}
	for svc, want := range map[string]string{"user": "default", "billing": "ledger", "order": "order-system-order", "notification": "order-system-notification"} {
		spec := deployment(t, objs, "order-system-"+svc).Spec
		if spec.ServiceAccountName != want {
			t.Errorf("%s runs as %q, want %q", svc, spec.ServiceAccountName, want)
		}
		if token := spec.AutomountServiceAccountToken; token == nil || *token != (svc == "notification") {
			t.Errorf("%s: automountServiceAccountToken %v, want it only where asked for", svc, token)
		}
	}
}

// A service's image is <registry>/<repository>:<tag> or @<digest>, each part falling back to
// the global values; the default is order-system-<service>:<appVersion>, as make images and
// the cluster test build them.
func TestImageReferences(t *testing.T) {
	_, appVersion := chartVersions(t, filepath.Join(chart, "Chart.yaml"))
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	// images is every service's image, <prefix>order-system-<svc>:<tag>, but for the
	// exceptions given as svc, image pairs.
	images := func(prefix, tag string, except ...string) map[string]string {
		out := map[string]string{}
		for _, svc := range theServices {
			out[svc] = prefix + "order-system-" + svc + ":" + tag
		}
		for i := 0; i+1 < len(except); i += 2 {
			out[except[i]] = except[i+1]
		}
		return out
	}
	for _, tt := range []struct {
		set  []string
		want map[string]string
	}{
		{nil, images("", appVersion)},
		{[]string{"global.image.registry=registry.example.com/"}, images("registry.example.com/", appVersion)},
		{[]string{"global.image.registry=registry.example.com"}, images("registry.example.com/", appVersion)},
		{[]string{"global.image.registry=registry.example.com", "order.image.registry=mirror.example.com:5000",
			"order.image.repository=shop/order", "order.image.tag=1.2.3"},
			images("registry.example.com/", appVersion, "order", "mirror.example.com:5000/shop/order:1.2.3")},
		// A digest pins the image: the tag is left out.
		{[]string{"global.image.tag=next", "billing.image.tag=1.2.3", "billing.image.digest=" + digest},
			images("", "next", "billing", "order-system-billing@"+digest)},
	} {
		objs := render(t, tt.set...)
		for _, svc := range theServices {
			var containers []corev1.Container
			spec := deployment(t, objs, "order-system-"+svc).Spec
			containers = append(append(containers, spec.InitContainers...), spec.Containers...)
			for _, p := range objs.testPods {
				if p.Name == "order-system-"+svc+"-test" {
					containers = append(containers, p.Spec.Containers...)
				}
			}
			if len(containers) != 3 {
				t.Fatalf("%s: %d containers, want migrate, the service and its test", svc, len(containers))
			}
			for _, c := range containers {
				if c.Image != tt.want[svc] {
					t.Errorf("%v: %s/%s runs %q, want %q", tt.set, svc, c.Name, c.Image, tt.want[svc])
				}
			}
		}
	}

	// One service's pull policy, the others keep the global one.
	objs := render(t, "order.image.pullPolicy=Always")
	for _, svc := range theServices {
		want := corev1.PullIfNotPresent
		if svc == "order" {
			want = corev1.PullAlways
		}
		spec := deployment(t, objs, "order-system-"+svc).Spec
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			if c.ImagePullPolicy != want {
				t.Errorf("%s/%s: imagePullPolicy %s, want %s", svc, c.Name, c.ImagePullPolicy, want)
			}
		}
	}
}

// global.imagePullSecrets reach every pod of the release, a service's own only its pods, each
// Secret once whether named or given as {name: ...}; by default no pod has any.
func TestImagePullSecrets(t *testing.T) {
	secretsOf := func(spec corev1.PodSpec) []string {
		var out []string
		for _, r := range spec.ImagePullSecrets {
			out = append(out, r.Name)
		}
		return out
	}
	for name, spec := range pods(render(t, "global.auth.enabled=true", "global.auth.devProvider=true", "global.tracing.jaeger=true")) {
		if len(spec.ImagePullSecrets) != 0 {
			t.Errorf("%s has pull secrets %v by default", name, secretsOf(spec))
		}
	}
	objs := render(t, "global.auth.enabled=true", "global.auth.devProvider=true", "global.tracing.jaeger=true",
		valuesFile(t, "global: {imagePullSecrets: [shared]}\norder: {imagePullSecrets: [{name: own}, shared]}\n"))
	all := pods(objs)
	for _, want := range []string{"Deployment order-system-index", "Deployment order-system-devidp", "Deployment order-system-jaeger",
		"StatefulSet order-system-postgresql", "StatefulSet order-system-rabbitmq"} {
		if _, ok := all[want]; !ok {
			t.Errorf("no %s", want)
		}
	}
	for name, spec := range all {
		want := []string{"shared"}
		if name == "Deployment order-system-order" || name == "Pod order-system-order-test" {
			want = []string{"shared", "own"}
		}
		if got := secretsOf(spec); !slices.Equal(got, want) {
			t.Errorf("%s pulls with %v, want %v", name, got, want)
		}
	}
}

// Scheduling, pod metadata and extra environment of one service go into its pods only, and
// podLabels never into a selector; none of them is set by default.
func TestPodSettings(t *testing.T) {
	for name, spec := range pods(render(t)) {
		if name == "StatefulSet order-system-rabbitmq" {
			spec.Affinity = nil // its nodes' preferred anti-affinity: TestBrokerCluster
		}
		if spec.NodeSelector != nil || spec.Tolerations != nil || spec.Affinity != nil || spec.PriorityClassName != "" {
			t.Errorf("%s has scheduling settings by default: %v %v %v %q", name, spec.NodeSelector, spec.Tolerations, spec.Affinity, spec.PriorityClassName)
		}
	}
	objs := render(t, valuesFile(t, `
order:
  nodeSelector: {disktype: ssd}
  tolerations: [{key: dedicated, operator: Equal, value: orders, effect: NoSchedule}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]
  priorityClassName: high
  podAnnotations: {prometheus.io/scrape: "true"}
  podLabels: {team: payments, tier: 1}
  extraEnv:
    - name: OTEL_EXPORTER_OTLP_HEADERS
      valueFrom: {secretKeyRef: {name: otel, key: headers}}
    - {name: GOMEMLIMIT, value: 100MiB}
`))
	for _, d := range objs.deployments {
		tpl := d.Spec.Template
		spec := tpl.Spec
		if d.Name != "order-system-order" {
			if spec.NodeSelector != nil || spec.Tolerations != nil || spec.Affinity != nil || spec.PriorityClassName != "" || tpl.Labels["team"] != "" {
				t.Errorf("%s got order's settings", d.Name)
			}
			continue
		}
		if spec.NodeSelector["disktype"] != "ssd" || len(spec.Tolerations) != 1 || spec.Tolerations[0].Effect != corev1.TaintEffectNoSchedule ||
			spec.Affinity == nil || spec.Affinity.NodeAffinity == nil || spec.PriorityClassName != "high" {
			t.Errorf("order's scheduling: %v %v %v %q", spec.NodeSelector, spec.Tolerations, spec.Affinity, spec.PriorityClassName)
		}
		if tpl.Labels["team"] != "payments" || tpl.Labels["tier"] != "1" || tpl.Annotations["prometheus.io/scrape"] != "true" || tpl.Annotations["checksum/config"] == "" {
			t.Errorf("order's pod labels %v, annotations %v", tpl.Labels, tpl.Annotations)
		}
		// Selectors stay the name and the instance (labels_test checks every selector).
		if _, ok := d.Spec.Selector.MatchLabels["team"]; ok {
			t.Errorf("podLabels in the selector %v", d.Spec.Selector.MatchLabels)
		}
		env := spec.Containers[0].Env
		if n := len(env); n < 2 || env[n-2].Name != "OTEL_EXPORTER_OTLP_HEADERS" || env[n-2].ValueFrom == nil || env[n-2].ValueFrom.SecretKeyRef == nil ||
			env[n-2].ValueFrom.SecretKeyRef.Name != "otel" || env[n-1].Name != "GOMEMLIMIT" || env[n-1].Value != "100MiB" {
			t.Errorf("order's environment ends %v, want extraEnv's entries", env)
		}
		// The migrations have no use for them.
		for _, e := range spec.InitContainers[0].Env {
			if e.Name == "GOMEMLIMIT" {
				t.Error("extraEnv in the migrate container")
			}
		}
	}
	for _, s := range objs.services {
		if _, ok := s.Spec.Selector["team"]; ok {
			t.Errorf("Service %s selects by podLabels", s.Name)
		}
	}
	// The test pod lands where the service may run.
	for _, p := range objs.testPods {
		if p.Name == "order-system-order-test" && (p.Spec.NodeSelector["disktype"] != "ssd" || len(p.Spec.Tolerations) != 1) {
			t.Errorf("order's test pod: nodeSelector %v, tolerations %v", p.Spec.NodeSelector, p.Spec.Tolerations)
		}
	}

	// What the chart sets itself is refused, not silently replaced.
	for set, want := range map[string]string{
		`order.podLabels.app\.kubernetes\.io/name=x`:            "order.podLabels: app.kubernetes.io/name is set by the chart",
		"order.podAnnotations.checksum/config=x":                "order.podAnnotations: checksum/config is set by the chart",
		"order.extraEnv[0].name=DATABASE_URL":                   "order.extraEnv: DATABASE_URL is set by the chart",
		"billing.extraEnv[0].name=X,billing.extraEnv[1].name=X": "billing.extraEnv: X is set by the chart (or twice in extraEnv)",
	} {
		if out := helmFails(t, "template", "order-system", chart, "--kube-version", kubeVersion, "--set", set); !strings.Contains(out, want) {
			t.Errorf("--set %s: %s", set, out)
		}
	}
}

// More than one pod of a service is spread over the nodes by default, softly and by the pods'
// selector labels; one pod gets no constraint, and one's own constraints replace the default.
func TestTopologySpread(t *testing.T) {
	spreads := func(objs objects) map[string]string {
		out := map[string]string{}
		for _, svc := range theServices {
			var got []string
			for _, c := range deployment(t, objs, "order-system-"+svc).Spec.TopologySpreadConstraints {
				var sel map[string]string
				if c.LabelSelector != nil {
					sel = c.LabelSelector.MatchLabels
				}
				got = append(got, fmt.Sprintf("%d %s %s %v", c.MaxSkew, c.TopologyKey, c.WhenUnsatisfiable, sel))
			}
			out[svc] = strings.Join(got, "; ")
		}
		return out
	}
	// soft is the default constraint of svc: its Deployment's selector, over the nodes.
	soft := func(svc string) string {
		return fmt.Sprintf("1 kubernetes.io/hostname ScheduleAnyway %v", map[string]string{
			"app.kubernetes.io/name": svc, "app.kubernetes.io/instance": "order-system"})
	}
	none := map[string]string{"user": "", "billing": "", "order": "", "notification": ""}
	with := func(svc, spread string) map[string]string {
		m := maps.Clone(none)
		m[svc] = spread
		return m
	}
	all := map[string]string{}
	for _, svc := range theServices {
		all[svc] = soft(svc)
	}
	for _, tt := range []struct {
		set  []string
		want map[string]string
	}{
		{nil, none},
		{[]string{"order.replicas=2"}, with("order", soft("order"))},
		// With the autoscaler, as many pods as maxReplicas may run.
		{[]string{"global.autoscaling.enabled=true"}, all},
		{[]string{"global.autoscaling.enabled=true", "global.autoscaling.minReplicas=1", "global.autoscaling.maxReplicas=1"}, none},
		{[]string{"order.replicas=3", valuesFile(t, `order: {topologySpreadConstraints: [{maxSkew: 2, topologyKey: topology.kubernetes.io/zone,
  whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app.kubernetes.io/name: order}}}]}`)},
			with("order", "2 topology.kubernetes.io/zone DoNotSchedule map[app.kubernetes.io/name:order]")},
	} {
		if got := spreads(render(t, tt.set...)); !maps.Equal(got, tt.want) {
			t.Errorf("%v: spread %v, want %v", tt.set, got, tt.want)
		}
	}
}

// checksum/config rolls a service's pods when its configuration changes; the settings that are
// part of the pod template itself stay out of it, so that adding them to the chart left the
// hash of every existing configuration as it was.
func TestConfigChecksum(t *testing.T) {
	sums := func(objs objects) map[string]string {
		out := map[string]string{}
		for _, svc := range theServices {
			out[svc] = deployment(t, objs, "order-system-"+svc).Annotations["checksum/config"]
		}
		return out
	}
	base := sums(render(t))
	podOnly := sums(render(t, "global.imagePullSecrets[0]=shared", "order.imagePullSecrets[0]=own", "order.image.tag=2",
		"order.serviceAccount.create=false", "order.automountServiceAccountToken=true", "order.nodeSelector.disktype=ssd",
		"order.priorityClassName=high", "order.podLabels.team=payments", "order.podAnnotations.note=x", "order.extraEnv[0].name=X"))
	if !maps.Equal(base, podOnly) {
		t.Errorf("pod template settings changed checksum/config: %v, was %v", podOnly, base)
	}
	// The metrics settings change the pod template (its annotations) or no pod at all.
	if metrics := sums(render(t, "global.metrics.scrapeAnnotations=false", "global.metrics.serviceMonitor.enabled=true", serviceMonitorAPI)); !maps.Equal(base, metrics) {
		t.Errorf("global.metrics changed checksum/config: %v, was %v", metrics, base)
	}
	// The release's Jaeger changes every service's OTLP endpoint, in its ConfigMap.
	traced := sums(render(t, "global.tracing.jaeger=true"))
	for _, svc := range theServices {
		if traced[svc] == base[svc] {
			t.Errorf("global.tracing.jaeger left %s's checksum/config as it was", svc)
		}
	}
	changed := sums(render(t, "order.env.LOG_LEVEL=debug"))
	for _, svc := range theServices {
		if (changed[svc] != base[svc]) != (svc == "order") {
			t.Errorf("order.env changed: %s's checksum %s, was %s", svc, changed[svc], base[svc])
		}
	}
}

// The bundled PostgreSQL and RabbitMQ get no API token, and a startup probe that holds the
// liveness probe off for minutes while the first boot initialises the data. Both have a
// read-only root with every path their images write mounted writable: PostgreSQL's entrypoint
// writes /tmp, the server its socket directory and the data; RabbitMQ writes its database,
// cookie and plugins' files under /var/lib/rabbitmq and logs to the console, but opens an
// upgrade log under /var/log/rabbitmq whatever that says (3.10 does not boot without it); a
// crash dump goes where ERL_CRASH_DUMP says (into the volume), and the cluster's file is
// mounted into conf.d by itself, beside the image's own files there (a volume over conf.d
// would hide them).
func TestBundledStores(t *testing.T) {
	writes := map[string][]string{
		"postgresql": {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp"},
		"rabbitmq":   {"/var/lib/rabbitmq", "/var/log/rabbitmq", "/tmp"},
	}
	for _, tt := range []struct {
		name string
		objs objects
	}{
		{"umbrella", render(t)},
		{"postgresql alone", renderChart(t, filepath.Join(chart, "charts", "postgresql"), append(givenPasswords, "superuserPassword=pw")...)},
		{"rabbitmq alone", renderChart(t, filepath.Join(chart, "charts", "rabbitmq"), givenPasswords...)},
	} {
		if len(tt.objs.statefulsets) == 0 {
			t.Fatalf("%s: no StatefulSet", tt.name)
		}
		for _, s := range tt.objs.statefulsets {
			part := strings.TrimPrefix(s.Name, "order-system-")
			spec := s.Spec.Template.Spec
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Errorf("%s: %s mounts an API token", tt.name, s.Name)
			}
			c := spec.Containers[0]
			startup, live := c.StartupProbe, c.LivenessProbe
			if startup == nil || live == nil {
				t.Errorf("%s: %s has startup probe %v, liveness probe %v", tt.name, s.Name, startup, live)
				continue
			}
			if budget := startup.FailureThreshold * startup.PeriodSeconds; budget < 300 {
				t.Errorf("%s: %s's startup probe gives the first boot %d s, want at least 5 minutes", tt.name, s.Name, budget)
			}
			if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: %s's root filesystem is writable", tt.name, s.Name)
			}
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m
			}
			for _, path := range writes[part] {
				if m, ok := mounts[path]; !ok || m.ReadOnly {
					t.Errorf("%s: %s has a read-only root and no writable mount at %s, which it writes", tt.name, s.Name, path)
				}
			}
			if part != "rabbitmq" {
				continue
			}
			if m := mounts["/etc/rabbitmq/conf.d/30-cluster.conf"]; m.Name != "config" || m.SubPath != "cluster.conf" {
				t.Errorf("%s: the cluster's file is mounted as %+v, want config's cluster.conf alone in conf.d", tt.name, m)
			}
			for path := range mounts {
				if path == "/etc/rabbitmq" || path == "/etc/rabbitmq/conf.d" {
					t.Errorf("%s: a volume at %s hides the image's own configuration", tt.name, path)
				}
			}
			dump := ""
			for _, e := range c.Env {
				if e.Name == "ERL_CRASH_DUMP" {
					dump = e.Value
				}
			}
			if !strings.HasPrefix(dump, "/var/lib/rabbitmq/") {
				t.Errorf("%s: ERL_CRASH_DUMP %q, want a path in the volume", tt.name, dump)
			}
		}
	}
}

// TestGOMAXPROCSFollowsTheCPULimit: a service whose CPU limit is at most one core runs one
// scheduler thread (Go's own default would be 2 there); a larger limit, no limit, or a value
// the user gives leaves it to the user or to Go.
func TestGOMAXPROCSFollowsTheCPULimit(t *testing.T) {
	gomaxprocs := func(set ...string) map[string]string {
		objs := render(t, set...)
		config := map[string]map[string]string{}
		for _, c := range objs.configmaps {
			config[c.Name] = c.Data
		}
		got := map[string]string{}
		for _, d := range objs.deployments {
			for _, svc := range theServices {
				if d.Name == "order-system-"+svc {
					got[svc] = podEnv(d, config)["GOMAXPROCS"]
				}
			}
		}
		if len(got) != len(theServices) {
			t.Fatalf("found the environment of %v, want the four services", got)
		}
		return got
	}
	for _, svc := range theServices {
		if got := gomaxprocs()[svc]; got != "1" {
			t.Errorf("%s with the default limit (500m): GOMAXPROCS %q, want 1", svc, got)
		}
	}
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"order.resources.limits.cpu=1"}, "1"},
		{[]string{"order.resources.limits.cpu=0.75"}, "1"},
		{[]string{"order.resources.limits.cpu=1000m"}, "1"},
		{[]string{"order.resources.limits.cpu=1500m"}, ""},
		{[]string{"order.resources.limits.cpu=2"}, ""},
		{[]string{"order.resources.limits.cpu=null"}, ""},
		{[]string{"order.env.GOMAXPROCS=4"}, "4"},
	} {
		got := gomaxprocs(c.set...)
		if got["order"] != c.want {
			t.Errorf("%v: order's GOMAXPROCS %q, want %q", c.set, got["order"], c.want)
		}
		if got["billing"] != "1" {
			t.Errorf("%v: billing's GOMAXPROCS %q, want 1 (its own limit)", c.set, got["billing"])
		}
	}
}
