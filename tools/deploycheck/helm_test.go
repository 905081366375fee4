package deploycheck_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const chart = "../../deploy/helm/order-system"

// kubeVersion is the oldest Kubernetes the charts declare (kubeVersion in every Chart.yaml).
// helm template checks it against the version it is told, and a helm built from source
// without a version stamp would assume 1.20.
const kubeVersion = "1.30.0"

// gatewayAPI tells helm template that the API server serves the Gateway API's HTTPRoute, as
// a cluster with its CRDs does: the chart renders its HTTPRoute only then.
const gatewayAPI = "--api-versions=gateway.networking.k8s.io/v1/HTTPRoute"

// serviceMonitorAPI tells helm template that the API server serves the Prometheus Operator's
// ServiceMonitor: the chart renders its ServiceMonitors only then.
const serviceMonitorAPI = "--api-versions=monitoring.coreos.com/v1/ServiceMonitor"

func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("helm"); err != nil {
		t.Skip("helm is not installed (deploy/kube/install-helm.sh installs it)")
	}
	var stderr bytes.Buffer
	cmd := exec.Command("helm", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// objects is a rendered chart, every object decoded into its API type.
type objects struct {
	deployments  []appsv1.Deployment
	statefulsets []appsv1.StatefulSet
	services     []corev1.Service
	configmaps   []corev1.ConfigMap
	secrets      []corev1.Secret
	accounts     []corev1.ServiceAccount
	ingresses    []networkingv1.Ingress
	policies     []networkingv1.NetworkPolicy
	testPods     []corev1.Pod // helm test hooks
	budgets      []policyv1.PodDisruptionBudget
	autoscalers  []autoscalingv2.HorizontalPodAutoscaler
	httpRoutes   []map[string]any // no Go types here: the real API server checks them against the CRDs
	monitors     []map[string]any // ServiceMonitors, as the HTTPRoutes
}

// strict decodes one manifest into v, failing on any field the API type does not have.
func strict(doc []byte, v any) error {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func render(t *testing.T, set ...string) objects {
	t.Helper()
	return renderChart(t, chart, set...)
}

// manifests renders a chart (a directory or a packaged .tgz) as the release order-system and
// splits it into its documents. set holds --set values, or flags such as --values=file.
func manifests(t *testing.T, chart string, set ...string) []string {
	t.Helper()
	args := []string{"template", "order-system", chart, "--namespace", "default", "--kube-version", kubeVersion}
	for _, s := range set {
		if strings.HasPrefix(s, "-") { // a flag such as --values=file
			args = append(args, s)
			continue
		}
		args = append(args, "--set", s)
	}
	return strings.Split(string(helm(t, args...)), "\n---")
}

func renderChart(t *testing.T, chart string, set ...string) objects {
	t.Helper()
	var objs objects
	for _, doc := range manifests(t, chart, set...) {
		var head struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("parse manifest: %v\n%s", err, doc)
		}
		var err error
		switch head.Kind {
		case "":
			continue
		case "Deployment":
			var o appsv1.Deployment
			err = strict([]byte(doc), &o)
			objs.deployments = append(objs.deployments, o)
		case "StatefulSet":
			var o appsv1.StatefulSet
			err = strict([]byte(doc), &o)
			objs.statefulsets = append(objs.statefulsets, o)
		case "Service":
			var o corev1.Service
			err = strict([]byte(doc), &o)
			objs.services = append(objs.services, o)
		case "ConfigMap":
			var o corev1.ConfigMap
			err = strict([]byte(doc), &o)
			objs.configmaps = append(objs.configmaps, o)
		case "Secret":
			var o corev1.Secret
			err = strict([]byte(doc), &o)
			objs.secrets = append(objs.secrets, o)
		case "ServiceAccount":
			var o corev1.ServiceAccount
			err = strict([]byte(doc), &o)
			objs.accounts = append(objs.accounts, o)
		case "Ingress":
			var o networkingv1.Ingress
			err = strict([]byte(doc), &o)
			objs.ingresses = append(objs.ingresses, o)
		case "NetworkPolicy":
			var o networkingv1.NetworkPolicy
			err = strict([]byte(doc), &o)
			objs.policies = append(objs.policies, o)
		case "Pod":
			var o corev1.Pod
			err = strict([]byte(doc), &o)
			objs.testPods = append(objs.testPods, o)
		case "PodDisruptionBudget":
			var o policyv1.PodDisruptionBudget
			err = strict([]byte(doc), &o)
			objs.budgets = append(objs.budgets, o)
		case "HorizontalPodAutoscaler":
			var o autoscalingv2.HorizontalPodAutoscaler
			err = strict([]byte(doc), &o)
			objs.autoscalers = append(objs.autoscalers, o)
		case "HTTPRoute":
			var o map[string]any
			err = yaml.Unmarshal([]byte(doc), &o)
			objs.httpRoutes = append(objs.httpRoutes, o)
		case "ServiceMonitor":
			var o map[string]any
			err = yaml.Unmarshal([]byte(doc), &o)
			objs.monitors = append(objs.monitors, o)
		default:
			t.Errorf("unexpected kind %s", head.Kind)
		}
		if err != nil {
			t.Errorf("%s does not decode strictly: %v\n%s", head.Kind, err, doc)
		}
	}
	return objs
}

func TestHelmLintPassesWithAndWithoutBundledStores(t *testing.T) {
	helm(t, "lint", chart)
	helm(t, "lint", chart, "--set", "postgresql.enabled=false,rabbitmq.enabled=false")
}

func TestDefaultInstall(t *testing.T) {
	objs := render(t)
	var names []string
	for _, d := range objs.deployments {
		names = append(names, d.Name)
		checkDeployment(t, d)
	}
	slices.Sort(names)
	want := []string{"order-system-billing", "order-system-index", "order-system-notification", "order-system-order", "order-system-user"}
	if !slices.Equal(names, want) {
		t.Errorf("deployments %v, want %v", names, want)
	}
	if len(objs.statefulsets) != 2 {
		t.Errorf("%d statefulsets, want postgresql and rabbitmq", len(objs.statefulsets))
	}
	checkIngress(t, objs.ingresses)
	allow, deny := defaultFlows()
	checkNetworkPolicy(t, objs, allow, deny)

	// Each service gets its own role and schema, and the bundled hosts.
	for _, s := range objs.secrets {
		url := s.StringData["DATABASE_URL"]
		if url == "" {
			continue
		}
		svc := strings.TrimPrefix(s.Name, "order-system-")
		if !strings.Contains(url, svc+"_service:") || !strings.Contains(url, "@order-system-postgresql:5432/order_system") {
			t.Errorf("%s: DATABASE_URL %q", s.Name, url)
		}
	}
	// The bundled database runs the same setup as make run.
	local, _ := os.ReadFile("../../deploy/postgres/setup.sql")
	inChart, _ := os.ReadFile(filepath.Join(chart, "charts/postgresql/files/setup.sql"))
	if len(local) == 0 || !bytes.Equal(local, inChart) {
		t.Error("charts/postgresql/files/setup.sql differs from deploy/postgres/setup.sql")
	}
	// The index serves the same OpenAPI document as the other gateways.
	doc, _ := os.ReadFile("../../api/openapi.yaml")
	var served string
	for _, cm := range objs.configmaps {
		if cm.Name == "order-system-index" {
			served = cm.Data["openapi.yaml"]
		}
	}
	// (The manifest splitter takes the last newline of the last value.)
	if len(doc) == 0 || strings.TrimSpace(served) != strings.TrimSpace(string(doc)) {
		t.Error("the index's openapi.yaml differs from api/openapi.yaml: cp api/openapi.yaml deploy/helm/order-system/files/")
	}
}

// givenPasswords sets every password the chart takes, as an operator with servers of their
// own would.
var givenPasswords = []string{
	"global.database.users.user.password=pw-user", "global.database.users.billing.password=pw-billing",
	"global.database.users.order.password=pw-order", "global.database.users.notification.password=pw-notification",
	"global.amqp.password=pw-amqp",
}

// helmFails runs helm and returns its error output, failing the test if helm succeeds.
func helmFails(t *testing.T, args ...string) string {
	t.Helper()
	helm(t, "version") // skips without helm
	out, err := exec.Command("helm", args...).CombinedOutput()
	if err == nil {
		t.Fatalf("helm %v succeeded, want a refusal", args)
	}
	return string(out)
}

func TestExternalDatabases(t *testing.T) {
	external := []string{"postgresql.enabled=false", "rabbitmq.enabled=false", "global.database.host=db.example.com", "global.amqp.host=mq.example.com"}
	// A password cannot be generated for a server the chart does not run.
	args := []string{"template", "order-system", chart, "--kube-version", kubeVersion}
	for _, s := range external {
		args = append(args, "--set", s)
	}
	if out := helmFails(t, args...); !strings.Contains(out, "a password is required with an external server") {
		t.Errorf("external servers without passwords: %s", out)
	}
	objs := render(t, append(external, givenPasswords...)...)
	if len(objs.statefulsets) != 0 {
		t.Errorf("%d statefulsets with the bundled databases switched off", len(objs.statefulsets))
	}
	n := 0
	for _, s := range objs.secrets {
		if url := s.StringData["DATABASE_URL"]; url != "" {
			n++
			if !strings.Contains(url, "@db.example.com:5432/") || !strings.Contains(s.StringData["AMQP_URL"], "@mq.example.com:5672/") {
				t.Errorf("%s: %q %q do not point at the external servers", s.Name, url, s.StringData["AMQP_URL"])
			}
		}
	}
	if n != 4 {
		t.Errorf("%d service secrets, want 4", n)
	}
	for _, d := range objs.deployments {
		checkDeployment(t, d)
	}
}

func checkDeployment(t *testing.T, d appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: pod must run as non-root", d.Name)
	}
	containers := append(slices.Clone(pod.InitContainers), pod.Containers...)
	for _, c := range containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s/%s: want a read-only root, no privilege escalation, all capabilities dropped", d.Name, c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: want resource requests and limits", d.Name, c.Name)
		}
	}
	main := pod.Containers[0]
	if main.LivenessProbe == nil || main.ReadinessProbe == nil {
		t.Fatalf("%s: want liveness and readiness probes", d.Name)
	}
	if d.Name == "order-system-index" {
		return
	}
	if main.LivenessProbe.HTTPGet.Path != "/livez" || main.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("%s: probes on %s and %s, want /livez and /readyz", d.Name, main.LivenessProbe.HTTPGet.Path, main.ReadinessProbe.HTTPGet.Path)
	}
	if len(pod.InitContainers) != 1 || !slices.Equal(pod.InitContainers[0].Args, []string{"migrate"}) {
		t.Errorf("%s: want one init container running migrate", d.Name)
	}
	// A stopping pod first sleeps until the proxies dropped it, then shuts down within
	// SHUTDOWN_TIMEOUT (20 s): the grace period outlasts both.
	if main.Lifecycle == nil || main.Lifecycle.PreStop == nil || main.Lifecycle.PreStop.Sleep == nil || main.Lifecycle.PreStop.Sleep.Seconds < 1 {
		t.Fatalf("%s: want a preStop sleep", d.Name)
	}
	preStop := time.Duration(main.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= preStop+20*time.Second {
		t.Errorf("%s: terminationGracePeriodSeconds %v, want more than preStop %v + the 20 s SHUTDOWN_TIMEOUT", d.Name, pod.TerminationGracePeriodSeconds, preStop)
	}
	// /readyz may take up to 2 s before it answers.
	for _, p := range []*corev1.Probe{main.LivenessProbe, main.ReadinessProbe} {
		if p.TimeoutSeconds <= 2 {
			t.Errorf("%s: probe of %s times out after %d s, want more than the 2 s /readyz may take", d.Name, p.HTTPGet.Path, p.TimeoutSeconds)
		}
	}
	// A rollout never drops below the wanted replicas.
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("%s: want maxUnavailable 0", d.Name)
	}
}

func checkIngress(t *testing.T, ingresses []networkingv1.Ingress) {
	t.Helper()
	if len(ingresses) != 1 {
		t.Fatalf("%d ingresses, want 1", len(ingresses))
	}
	ing := ingresses[0]
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" || len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "arch.homework" {
		t.Fatalf("ingress class/host: %+v", ing.Spec)
	}
	for k := range ing.Annotations {
		if strings.Contains(k, "rewrite-target") {
			t.Errorf("ingress has %s: paths must pass through unchanged", k)
		}
	}
	got := map[string]string{}
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		got[fmt.Sprintf("%s %s", *p.PathType, p.Path)] = p.Backend.Service.Name
	}
	want := map[string]string{
		"Prefix /users": "order-system-user", "Prefix /billing": "order-system-billing", "Prefix /orders": "order-system-order",
		"Prefix /notifications": "order-system-notification", "Prefix /": "order-system-index",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ingress paths %v, want exactly %v", got, want)
	}
}

// chartMeta is what the checks read of a Chart.yaml.
type chartMeta struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	AppVersion  string `json:"appVersion"`
	KubeVersion string `json:"kubeVersion"`
	// Type is application or library.
	Type         string `json:"type"`
	Dependencies []struct {
		Name       string `json:"name"`
		Version    string `json:"version"`
		Repository string `json:"repository"`
	} `json:"dependencies"`
}

func readChart(t *testing.T, path string) chartMeta {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c chartMeta
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// chartVersions reads version and appVersion of a Chart.yaml.
func chartVersions(t *testing.T, path string) (version, appVersion string) {
	t.Helper()
	c := readChart(t, path)
	return c.Version, c.AppVersion
}

func TestImagesTaggedWithAppVersion(t *testing.T) {
	_, appVersion := chartVersions(t, filepath.Join(chart, "Chart.yaml"))
	for _, svc := range []string{"user", "billing", "order", "notification"} {
		if _, sub := chartVersions(t, filepath.Join(chart, "charts", svc, "Chart.yaml")); sub != appVersion {
			t.Errorf("charts/%s appVersion %q, want the umbrella's %q", svc, sub, appVersion)
		}
	}
	for _, tt := range []struct {
		set []string
		tag string
	}{
		{nil, appVersion},
		{[]string{"global.image.tag=next"}, "next"},
	} {
		objs := render(t, tt.set...)
		for _, d := range objs.deployments {
			if d.Name == "order-system-index" {
				continue
			}
			pod := d.Spec.Template.Spec
			for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
				if !strings.HasSuffix(c.Image, ":"+tt.tag) {
					t.Errorf("%v: %s/%s runs %s, want tag %s", tt.set, d.Name, c.Name, c.Image, tt.tag)
				}
			}
		}
	}
}

func TestCredentialsAnyPassword(t *testing.T) {
	const password = `p@ss w+rd/%:?#'"\x`
	// A values file, as --set would read the backslash as an escape.
	values := filepath.Join(t.TempDir(), "values.yaml")
	js, _ := json.Marshal(password)
	doc := fmt.Sprintf("global:\n  database: {users: {order: {role: order_service, password: %s}}}\n  amqp: {password: %s, vhost: /}\n", js, js)
	if err := os.WriteFile(values, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	objs := render(t, "--values="+values)
	var found bool
	for _, s := range objs.secrets {
		if s.Name != "order-system-order" {
			continue
		}
		found = true
		for _, key := range []string{"DATABASE_URL", "AMQP_URL"} {
			first, _, _ := strings.Cut(s.StringData[key], ",")
			u, err := url.Parse(first)
			if err != nil {
				t.Fatalf("%s does not parse: %v", key, err)
			}
			if got, _ := u.User.Password(); got != password {
				t.Errorf("%s carries password %q, want %q", key, got, password)
			}
		}
		// The AMQP client takes the path after its leading slash as the vhost; AMQP_URL names
		// each node of the bundled cluster.
		nodes := strings.Split(s.StringData["AMQP_URL"], ",")
		if len(nodes) != 3 {
			t.Errorf("AMQP_URL names %d nodes, want 3", len(nodes))
		}
		for _, node := range nodes {
			u, err := url.Parse(node)
			if err != nil {
				t.Fatalf("AMQP_URL node %q does not parse: %v", node, err)
			}
			if got, _ := u.User.Password(); got != password || strings.TrimPrefix(u.Path, "/") != "/" {
				t.Errorf("AMQP_URL node with password %q, path %q, want %q and vhost /", got, u.Path, password)
			}
		}
	}
	if !found {
		t.Fatal("no secret order-system-order")
	}
	// The bundled PostgreSQL gets the same password, quoted for SQL, from a Secret: no
	// ConfigMap holds a password.
	var sql string
	for _, s := range objs.secrets {
		sql += s.StringData["20-passwords.sql"]
	}
	for _, c := range objs.configmaps {
		for k, v := range c.Data {
			if strings.Contains(v, "p@ss w+rd") {
				t.Errorf("ConfigMap %s holds the password in %s", c.Name, k)
			}
		}
	}
	if want := `ALTER ROLE "order_service" PASSWORD 'p@ss w+rd/%:?#''"\x';`; !strings.Contains(sql, want) {
		t.Errorf("20-passwords.sql lacks %s:\n%s", want, sql)
	}
}

func TestExistingSecret(t *testing.T) {
	objs := render(t, "order.existingSecret=order-credentials", "order.existingSecretKeys.databaseURL=db-url",
		"postgresql.existingSecret=pg-root", "postgresql.existingSecretKeys.password=root-password",
		"rabbitmq.existingSecret=mq-admin", "rabbitmq.existingSecretKeys.user=name")
	for _, s := range objs.secrets {
		if s.Name == "order-system-order" || s.Name == "order-system-postgresql" || s.Name == "order-system-rabbitmq" {
			t.Errorf("the chart still creates %s", s.Name)
		}
	}
	// refs is where a container's variables come from: variable -> secret/key.
	refs := func(c corev1.Container) map[string]string {
		out := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				out[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				out["*"] = e.SecretRef.Name
			}
		}
		return out
	}
	want := map[string]map[string]string{
		"order-system-order":      {"DATABASE_URL": "order-credentials/db-url", "AMQP_URL": "order-credentials/AMQP_URL"},
		"order-system-user":       {"DATABASE_URL": "order-system-user/DATABASE_URL", "AMQP_URL": "order-system-user/AMQP_URL"},
		"order-system-postgresql": {"POSTGRES_PASSWORD": "pg-root/root-password"},
		"order-system-rabbitmq":   {"RABBITMQ_DEFAULT_USER": "mq-admin/name", "RABBITMQ_DEFAULT_PASS": "mq-admin/RABBITMQ_DEFAULT_PASS"},
	}
	pods := map[string]corev1.PodSpec{}
	for _, d := range objs.deployments {
		pods[d.Name] = d.Spec.Template.Spec
	}
	for _, s := range objs.statefulsets {
		pods[s.Name] = s.Spec.Template.Spec
	}
	for name, w := range want {
		pod, ok := pods[name]
		if !ok {
			t.Fatalf("no workload %s", name)
		}
		for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
			if got := refs(c); !maps.Equal(got, w) {
				t.Errorf("%s/%s reads secrets %v, want %v", name, c.Name, got, w)
			}
		}
	}
}

func TestPoolSizes(t *testing.T) {
	objs := render(t, "order.pool.maxOpenConns=7", "order.pool.relayMaxOpenConns=1")
	want := map[string][2]string{
		"order-system-user": {"10", "2"}, "order-system-billing": {"10", ""},
		"order-system-order": {"7", "1"}, "order-system-notification": {"10", ""},
	}
	got := map[string][2]string{}
	for _, c := range objs.configmaps {
		if _, ok := want[c.Name]; ok {
			got[c.Name] = [2]string{c.Data["DB_MAX_OPEN_CONNS"], c.Data["DB_RELAY_MAX_OPEN_CONNS"]}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pool sizes %v, want %v", got, want)
	}
}

func TestTestHooks(t *testing.T) {
	objs := render(t)
	var names []string
	for _, p := range objs.testPods {
		if p.Annotations["helm.sh/hook"] != "test" {
			t.Errorf("pod %s is not a test hook", p.Name)
		}
		names = append(names, p.Name)
		if c := p.Spec.Containers[0]; !slices.Equal(c.Args, []string{"healthcheck"}) {
			t.Errorf("test %s runs %v, want healthcheck", p.Name, c.Args)
		}
	}
	slices.Sort(names)
	want := []string{"order-system-billing-test", "order-system-notification-test", "order-system-order-test", "order-system-user-test"}
	if !slices.Equal(names, want) {
		t.Errorf("test pods %v, want %v", names, want)
	}
}

func TestBudgetsAndAutoscalersOffByDefault(t *testing.T) {
	// The broker cluster's budget is always there (TestBrokerCluster): the services' are not.
	objs := render(t)
	if len(objs.budgets) != 1 || objs.budgets[0].Name != "order-system-rabbitmq" || len(objs.autoscalers) != 0 || len(objs.httpRoutes) != 0 {
		t.Errorf("by default %d budgets, %d autoscalers, %d HTTPRoutes; want the broker's budget only", len(objs.budgets), len(objs.autoscalers), len(objs.httpRoutes))
	}
	objs = render(t, "global.podDisruptionBudget.enabled=true", "global.autoscaling.enabled=true")
	if len(objs.budgets) != 5 || len(objs.autoscalers) != 4 {
		t.Errorf("switched on: %d budgets, %d autoscalers; want 5 (4 and the broker's) and 4", len(objs.budgets), len(objs.autoscalers))
	}
	for _, d := range objs.deployments {
		if d.Name != "order-system-index" && d.Spec.Replicas != nil {
			t.Errorf("%s: replicas %d set while an autoscaler owns them", d.Name, *d.Spec.Replicas)
		}
	}
}

// The HTTPRoute is rendered only where the API server serves the Gateway API (helm install
// asks the cluster; helm template is told with --api-versions), and asked for where it does
// not, the chart refuses and says why, rather than leave the routes out.
func TestHTTPRoute(t *testing.T) {
	if n := len(render(t, gatewayAPI).httpRoutes); n != 0 {
		t.Errorf("%d HTTPRoutes with httpRoute.enabled off, want none", n)
	}
	out := helmFails(t, "template", "order-system", chart, "--kube-version", kubeVersion, "--set", "httpRoute.enabled=true")
	if !strings.Contains(out, "httpRoute.enabled: the cluster has no Gateway API") {
		t.Errorf("httpRoute.enabled without the Gateway API: %s", out)
	}
	objs := render(t, "httpRoute.enabled=true", gatewayAPI)
	if len(objs.httpRoutes) != 1 {
		t.Fatalf("%d HTTPRoutes, want 1", len(objs.httpRoutes))
	}
	js, _ := json.Marshal(objs.httpRoutes[0])
	var route struct {
		APIVersion string
		Spec       struct {
			Hostnames []string
			Rules     []struct {
				Matches []struct {
					Path struct{ Type, Value string }
				}
				BackendRefs []struct{ Name string }
			}
		}
	}
	if err := json.Unmarshal(js, &route); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range route.Spec.Rules {
		got[r.Matches[0].Path.Type+" "+r.Matches[0].Path.Value] = r.BackendRefs[0].Name
	}
	want := map[string]string{
		"PathPrefix /users": "order-system-user", "PathPrefix /billing": "order-system-billing", "PathPrefix /orders": "order-system-order",
		"PathPrefix /notifications": "order-system-notification", "PathPrefix /": "order-system-index",
	}
	if route.APIVersion != "gateway.networking.k8s.io/v1" || !slices.Equal(route.Spec.Hostnames, []string{"arch.homework"}) || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("HTTPRoute %s %v %v, want hostname arch.homework and routes %v", route.APIVersion, route.Spec.Hostnames, got, want)
	}
}

// An OTLP endpoint in the values makes every service export its traces there, under its own
// name; without one, no service is told of any.
func TestTracingEndpoint(t *testing.T) {
	services := []string{"user", "billing", "order", "notification"}
	for _, tt := range []struct {
		name     string
		set      []string
		endpoint string
	}{
		{"off by default", nil, ""},
		{"endpoint set", []string{"global.tracing.otlpEndpoint=http://jaeger-collector.observability:4318"}, "http://jaeger-collector.observability:4318"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs := render(t, tt.set...)
			got := map[string][2]string{}
			for _, c := range objs.configmaps {
				if svc := strings.TrimPrefix(c.Name, "order-system-"); slices.Contains(services, svc) {
					got[svc] = [2]string{c.Data["OTEL_EXPORTER_OTLP_ENDPOINT"], c.Data["OTEL_SERVICE_NAME"]}
				}
			}
			want := map[string][2]string{}
			for _, svc := range services {
				want[svc] = [2]string{}
				if tt.endpoint != "" {
					want[svc] = [2]string{tt.endpoint, svc}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME %v, want %v", got, want)
			}
		})
	}
}

// Each subchart renders on its own (its shared templates come from the library chart).
func TestSubchartsAlone(t *testing.T) {
	for _, sub := range []string{"user", "billing", "order", "notification", "postgresql", "rabbitmq"} {
		t.Run(sub, func(t *testing.T) {
			// On its own a subchart generates nothing: it needs the passwords (or a Secret).
			if out := helmFails(t, "template", "order-system", filepath.Join(chart, "charts", sub), "--kube-version", kubeVersion); !strings.Contains(out, "is required when the chart is installed on its own") {
				t.Errorf("no passwords: %s", out)
			}
			objs := renderChart(t, filepath.Join(chart, "charts", sub), append(givenPasswords, "superuserPassword=pw-postgres")...)
			services := 1
			if sub == "rabbitmq" {
				services = 2 // and the headless Service of its nodes' names
			}
			if len(objs.deployments)+len(objs.statefulsets) != 1 || len(objs.services) != services {
				t.Errorf("%d deployments, %d statefulsets, %d services; want one workload and its service", len(objs.deployments), len(objs.statefulsets), len(objs.services))
			}
			for _, d := range objs.deployments {
				checkDeployment(t, d)
			}
		})
	}
}

func TestSignIn(t *testing.T) {
	off := render(t)
	for _, cm := range off.configmaps {
		if _, ok := cm.Data["AUTH"]; ok {
			t.Errorf("sign-in off: ConfigMap %s sets AUTH", cm.Name)
		}
	}

	objs := render(t, "global.auth.enabled=true", "global.auth.devProvider=true")
	for _, cm := range objs.configmaps {
		if !slices.Contains([]string{"order-system-user", "order-system-billing", "order-system-order", "order-system-notification"}, cm.Name) {
			continue
		}
		if cm.Data["AUTH"] != "oidc" || cm.Data["AUTH_ISSUER"] != "http://order-system-devidp:8070" {
			t.Errorf("ConfigMap %s: AUTH=%q AUTH_ISSUER=%q, want oidc and the development provider", cm.Name, cm.Data["AUTH"], cm.Data["AUTH_ISSUER"])
		}
		for k := range cm.Data {
			if strings.Contains(k, "SECRET") {
				t.Errorf("ConfigMap %s holds %s: secrets belong in Secrets", cm.Name, k)
			}
		}
	}
	// The user and order services take their client secret from the clients' Secret, which
	// has a key for each of them.
	var clients *corev1.Secret
	for i, s := range objs.secrets {
		if s.Name == "order-system-auth-clients" {
			clients = &objs.secrets[i]
		}
	}
	if clients == nil {
		t.Fatal("no Secret order-system-auth-clients")
	}
	withSecret := map[string]bool{}
	for _, d := range objs.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil && ref.SecretKeyRef.Name == clients.Name {
					if _, ok := clients.Data[ref.SecretKeyRef.Key]; !ok {
						t.Errorf("%s/%s: %s names the key %s, which %s does not have", d.Name, c.Name, e.Name, ref.SecretKeyRef.Key, clients.Name)
					}
					withSecret[d.Name] = true
				}
			}
		}
	}
	for _, name := range []string{"order-system-user", "order-system-order", "order-system-devidp"} {
		if !withSecret[name] {
			t.Errorf("%s does not read the clients' Secret", name)
		}
	}
	if withSecret["order-system-billing"] || withSecret["order-system-notification"] {
		t.Error("billing or notification reads a client secret it has no use for")
	}
	var idpHost bool
	for _, ing := range objs.ingresses {
		for _, r := range ing.Spec.Rules {
			if r.Host != "order-system-devidp" {
				continue
			}
			idpHost = true
			for _, p := range r.HTTP.Paths {
				if p.Path == "/" || strings.HasPrefix(p.Path, "/dev") {
					t.Errorf("the provider's Ingress routes %s: its /dev routes must stay inside the cluster", p.Path)
				}
			}
		}
	}
	if !idpHost {
		t.Error("no Ingress rule for the development provider's host")
	}

	// A Secret of one's own replaces the generated one, and no provider runs unless asked.
	own := render(t, "global.auth.enabled=true", "global.auth.issuer=https://id.example.com", "global.auth.clientsSecret=my-clients")
	for _, s := range own.secrets {
		if s.Name == "order-system-auth-clients" {
			t.Error("clientsSecret set, and the chart still creates order-system-auth-clients")
		}
	}
	for _, d := range own.deployments {
		if d.Name == "order-system-devidp" {
			t.Error("the development provider runs without devProvider")
		}
	}
}

func TestIngressTLS(t *testing.T) {
	for _, ing := range render(t).ingresses {
		if len(ing.Spec.TLS) != 0 {
			t.Errorf("%s has TLS without ingress.tls.secretName", ing.Name)
		}
	}
	var found bool
	for _, ing := range render(t, "ingress.tls.secretName=arch-tls").ingresses {
		if ing.Name != "order-system" {
			continue
		}
		found = true
		if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "arch-tls" || !slices.Equal(ing.Spec.TLS[0].Hosts, []string{"arch.homework"}) {
			t.Errorf("ingress TLS %+v, want arch-tls for arch.homework", ing.Spec.TLS)
		}
	}
	if !found {
		t.Fatal("no ingress order-system")
	}
}

// No password of the chart is well known: each is generated at random on install, and every
// Secret that holds one agrees with the others.
func TestGeneratedPasswords(t *testing.T) {
	first, second := render(t), render(t)
	creds := func(objs objects) map[string]string {
		for _, s := range objs.secrets {
			if s.Name == "order-system-credentials" {
				out := map[string]string{}
				for k, v := range s.Data {
					out[k] = string(v)
				}
				return out
			}
		}
		t.Fatal("no Secret order-system-credentials")
		return nil
	}
	a, b := creds(first), creds(second)
	keys := []string{"amqp", "db-billing", "db-notification", "db-order", "db-user", "erlang-cookie", "postgres"}
	for _, k := range keys {
		if len(a[k]) < 32 {
			t.Errorf("%s: %q is not a generated password", k, a[k])
		}
		if a[k] == b[k] {
			t.Errorf("%s is the same in two installs: not random", k)
		}
	}
	byName := map[string]corev1.Secret{}
	for _, s := range first.secrets {
		byName[s.Name] = s
	}
	for _, svc := range []string{"user", "billing", "order", "notification"} {
		for key, want := range map[string]string{"DATABASE_URL": a["db-"+svc], "AMQP_URL": a["amqp"]} {
			u, err := url.Parse(byName["order-system-"+svc].StringData[key])
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := u.User.Password(); got != want {
				t.Errorf("%s's %s has password %q, want the generated %q", svc, key, got, want)
			}
		}
		if sql := byName["order-system-postgresql-passwords"].StringData["20-passwords.sql"]; !strings.Contains(sql, "'"+a["db-"+svc]+"'") {
			t.Errorf("PostgreSQL does not set %s's generated password", svc)
		}
	}
	if got := byName["order-system-postgresql"].StringData["POSTGRES_PASSWORD"]; got != a["postgres"] {
		t.Errorf("POSTGRES_PASSWORD %q, want the generated %q", got, a["postgres"])
	}
	if got := byName["order-system-rabbitmq"].StringData["RABBITMQ_DEFAULT_PASS"]; got != a["amqp"] {
		t.Errorf("RABBITMQ_DEFAULT_PASS %q, want the generated %q", got, a["amqp"])
	}
	if got := byName["order-system-rabbitmq"].StringData["erlang-cookie"]; got != a["erlang-cookie"] {
		t.Errorf("the broker's erlang-cookie %q, want the generated %q", got, a["erlang-cookie"])
	}
	if got := byName["order-system-credentials"].Annotations["helm.sh/resource-policy"]; got != "keep" {
		t.Errorf("order-system-credentials resource-policy %q, want keep (a reinstall finds the volumes' passwords)", got)
	}
}

// TLS to servers of one's own: the database's CA is named in DATABASE_URL and mounted where
// it says; the broker is reached over amqps and its CA is trusted besides the system's.
func TestServerTLS(t *testing.T) {
	objs := render(t, append(givenPasswords, "postgresql.enabled=false", "rabbitmq.enabled=false",
		"global.database.sslmode=verify-full", "global.database.caSecret=db-ca",
		"global.amqp.tls=true", "global.amqp.port=5671", "global.amqp.caSecret=mq-ca")...)
	for _, s := range objs.secrets {
		if s.StringData["DATABASE_URL"] == "" {
			continue
		}
		db, _ := url.Parse(s.StringData["DATABASE_URL"])
		if q := db.Query(); q.Get("sslmode") != "verify-full" || q.Get("sslrootcert") != "/etc/order-system/ca/database/ca.crt" {
			t.Errorf("%s: DATABASE_URL query %v, want verify-full and the mounted CA", s.Name, q)
		}
		if mq, _ := url.Parse(s.StringData["AMQP_URL"]); mq.Scheme != "amqps" || mq.Port() != "5671" {
			t.Errorf("%s: AMQP_URL %s://...:%s, want amqps on 5671", s.Name, mq.Scheme, mq.Port())
		}
	}
	for _, d := range objs.deployments {
		if d.Name == "order-system-index" {
			continue
		}
		secrets := map[string]string{}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Secret != nil {
				secrets[v.Name] = v.Secret.SecretName
			}
		}
		if secrets["database-ca"] != "db-ca" || secrets["amqp-ca"] != "mq-ca" {
			t.Errorf("%s mounts CA secrets %v, want db-ca and mq-ca", d.Name, secrets)
		}
		for _, c := range append(slices.Clone(d.Spec.Template.Spec.InitContainers), d.Spec.Template.Spec.Containers...) {
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounts[m.Name] = m.MountPath
			}
			if mounts["database-ca"] != "/etc/order-system/ca/database" || mounts["amqp-ca"] != "/etc/order-system/ca/amqp" {
				t.Errorf("%s/%s mounts %v", d.Name, c.Name, mounts)
			}
		}
	}
	for _, cm := range objs.configmaps {
		if cm.Name != "order-system-index" && cm.Data["SSL_CERT_DIR"] != "/etc/ssl/certs:/etc/order-system/ca/amqp" {
			t.Errorf("%s: SSL_CERT_DIR %q", cm.Name, cm.Data["SSL_CERT_DIR"])
		}
	}
}
