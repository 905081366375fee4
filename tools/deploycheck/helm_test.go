package deploycheck_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

const chart = "../../deploy/helm/order-system"

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
	ingresses    []networkingv1.Ingress
	policies     []networkingv1.NetworkPolicy
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
	args := []string{"template", "order-system", chart, "--namespace", "default"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	var objs objects
	for doc := range strings.SplitSeq(string(helm(t, args...)), "\n---") {
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
		case "Ingress":
			var o networkingv1.Ingress
			err = strict([]byte(doc), &o)
			objs.ingresses = append(objs.ingresses, o)
		case "NetworkPolicy":
			var o networkingv1.NetworkPolicy
			err = strict([]byte(doc), &o)
			objs.policies = append(objs.policies, o)
		default:
			t.Errorf("unexpected kind %s", head.Kind)
		}
		if err != nil {
			t.Errorf("%s does not decode strictly: %v\n%s", head.Kind, err, doc)
		}
	}
	return objs
}

func TestLint(t *testing.T) {
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
	checkNetworkPolicy(t, objs.policies)

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
}

func TestExternalDatabases(t *testing.T) {
	objs := render(t, "postgresql.enabled=false", "rabbitmq.enabled=false", "global.database.host=db.example.com", "global.amqp.host=mq.example.com")
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
	// The pod's grace period outlasts the service's own shutdown timeout.
	if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= 20*time.Second {
		t.Errorf("%s: terminationGracePeriodSeconds %v, want more than the 20 s SHUTDOWN_TIMEOUT", d.Name, pod.TerminationGracePeriodSeconds)
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
		"Prefix /notifications": "order-system-notification", "Exact /": "order-system-index",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ingress paths %v, want exactly %v", got, want)
	}
}

func checkNetworkPolicy(t *testing.T, policies []networkingv1.NetworkPolicy) {
	t.Helper()
	if len(policies) != 1 {
		t.Fatalf("%d network policies, want 1 (billing)", len(policies))
	}
	p := policies[0]
	if p.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "billing" || len(p.Spec.Ingress) != 1 {
		t.Fatalf("network policy selects %v", p.Spec.PodSelector)
	}
	var allowed []string
	for _, peer := range p.Spec.Ingress[0].From {
		if peer.PodSelector != nil {
			for _, e := range peer.PodSelector.MatchExpressions {
				if e.Key == "app.kubernetes.io/name" {
					allowed = append(allowed, e.Values...)
				}
			}
		}
	}
	slices.Sort(allowed)
	if !slices.Equal(allowed, []string{"order", "user"}) {
		t.Errorf("pods allowed to billing: %v, want order and user", allowed)
	}
}
