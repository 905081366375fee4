package deploycheck_test

import (
	"encoding/json"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// checkConsistent fails on every reference between the rendered objects that names nothing:
// a Service or PodDisruptionBudget that selects no workload's pods (or a test pod), a
// NetworkPolicy whose pods or peers are no workload's, an Ingress or HTTPRoute backend or
// test pod address that is no Service, a ServiceMonitor that selects no Service or names a
// port it does not have, an OTLP endpoint that is no Service of the release where it points
// into it, an autoscaler's target, a pod's ConfigMap, Secret or ServiceAccount. Every Secret a pod reads must be the chart's own, and every account a pod
// names: call it without existingSecret or serviceAccount values.
func checkConsistent(t *testing.T, objs objects) {
	t.Helper()
	pods := map[string]map[string]string{} // workload -> its pods' labels
	specs := map[string]corev1.PodSpec{}
	for _, d := range objs.deployments {
		pods["Deployment "+d.Name] = d.Spec.Template.Labels
		specs["Deployment "+d.Name] = d.Spec.Template.Spec
	}
	for _, s := range objs.statefulsets {
		pods["StatefulSet "+s.Name] = s.Spec.Template.Labels
		specs["StatefulSet "+s.Name] = s.Spec.Template.Spec
	}
	selects := func(sel *metav1.LabelSelector) []string {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() {
			t.Fatalf("selector %v: %v", sel, err)
		}
		var out []string
		for w, l := range pods {
			if s.Matches(labels.Set(l)) {
				out = append(out, w)
			}
		}
		return out
	}
	services := map[string]bool{}
	for _, s := range objs.services {
		services[s.Name] = true
		if got := selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}); len(got) != 1 {
			t.Errorf("Service %s selects the pods of %v, want one workload's", s.Name, got)
		}
		for _, p := range objs.testPods {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(p.Labels)) {
				t.Errorf("Service %s selects the test pod %s", s.Name, p.Name)
			}
		}
	}
	for _, b := range objs.budgets {
		if got := selects(b.Spec.Selector); len(got) != 1 {
			t.Errorf("PodDisruptionBudget %s selects the pods of %v, want one workload's", b.Name, got)
		}
	}
	for _, a := range objs.autoscalers {
		if _, ok := pods[a.Spec.ScaleTargetRef.Kind+" "+a.Spec.ScaleTargetRef.Name]; !ok {
			t.Errorf("HorizontalPodAutoscaler %s scales %s %s, which the chart does not render", a.Name, a.Spec.ScaleTargetRef.Kind, a.Spec.ScaleTargetRef.Name)
		}
	}
	for _, p := range objs.policies {
		if got := selects(&p.Spec.PodSelector); len(got) != 1 {
			t.Errorf("NetworkPolicy %s protects the pods of %v, want one workload's", p.Name, got)
		}
		for _, rule := range p.Spec.Ingress {
			for _, peer := range rule.From {
				if peer.PodSelector == nil {
					continue
				}
				// Each name a peer admits is a workload's or a helm test pod's: none admits pods
				// that do not exist.
				for _, e := range peer.PodSelector.MatchExpressions {
					for _, v := range e.Values {
						one := &metav1.LabelSelector{MatchLabels: map[string]string{e.Key: v}}
						if len(selects(one)) == 0 && !slices.ContainsFunc(objs.testPods, func(p corev1.Pod) bool { return p.Labels[e.Key] == v }) {
							t.Errorf("NetworkPolicy %s admits %s=%s, which no workload's pods have", p.Name, e.Key, v)
						}
					}
				}
			}
		}
	}
	var backends []string
	for _, ing := range objs.ingresses {
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				backends = append(backends, p.Backend.Service.Name)
			}
		}
	}
	for _, r := range objs.httpRoutes {
		js, _ := json.Marshal(r)
		var route struct {
			Spec struct {
				Rules []struct{ BackendRefs []struct{ Name string } }
			}
		}
		if err := json.Unmarshal(js, &route); err != nil {
			t.Fatal(err)
		}
		for _, rule := range route.Spec.Rules {
			for _, b := range rule.BackendRefs {
				backends = append(backends, b.Name)
			}
		}
	}
	for _, p := range objs.testPods {
		for _, e := range p.Spec.Containers[0].Env {
			if e.Name == "HTTP_ADDR" {
				host, _, _ := strings.Cut(e.Value, ":")
				backends = append(backends, host)
			}
		}
		specs["Pod "+p.Name] = p.Spec
	}
	for _, b := range backends {
		if !services[b] {
			t.Errorf("a route or test pod goes to the Service %s, which the chart does not render", b)
		}
	}
	for _, m := range objs.monitors {
		sm := decodeMonitor(t, m)
		var selected []corev1.Service
		for _, s := range objs.services {
			if labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(s.Labels)) {
				selected = append(selected, s)
			}
		}
		if len(selected) != 1 {
			t.Errorf("ServiceMonitor %s selects %d Services, want one", sm.Metadata.Name, len(selected))
			continue
		}
		for _, e := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(selected[0].Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port }) {
				t.Errorf("ServiceMonitor %s scrapes the port %q, which the Service %s does not have", sm.Metadata.Name, e.Port, selected[0].Name)
			}
		}
	}
	for _, c := range objs.configmaps {
		raw, ok := c.Data["OTEL_EXPORTER_OTLP_ENDPOINT"]
		if !ok {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("ConfigMap %s: OTEL_EXPORTER_OTLP_ENDPOINT %q: %v", c.Name, raw, err)
			continue
		}
		// A host without dots is a Service of the release's namespace.
		if host := u.Hostname(); !strings.Contains(host, ".") && !services[host] {
			t.Errorf("ConfigMap %s exports traces to %s, which is no Service the chart renders", c.Name, raw)
		}
	}
	configmaps, secrets, accounts := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, c := range objs.configmaps {
		configmaps[c.Name] = true
	}
	for _, a := range objs.accounts {
		accounts[a.Name] = true
	}
	for _, s := range objs.secrets {
		secrets[s.Name] = true
	}
	for w, spec := range specs {
		if a := spec.ServiceAccountName; a != "" && !accounts[a] {
			t.Errorf("%s runs as the ServiceAccount %s, which the chart does not render", w, a)
		}
		var cms, ss []string
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			for _, e := range c.EnvFrom {
				if e.ConfigMapRef != nil {
					cms = append(cms, e.ConfigMapRef.Name)
				}
				if e.SecretRef != nil {
					ss = append(ss, e.SecretRef.Name)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ss = append(ss, e.ValueFrom.SecretKeyRef.Name)
				}
				if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
					cms = append(cms, e.ValueFrom.ConfigMapKeyRef.Name)
				}
			}
		}
		for _, v := range spec.Volumes {
			if v.ConfigMap != nil {
				cms = append(cms, v.ConfigMap.Name)
			}
			if v.Secret != nil {
				ss = append(ss, v.Secret.SecretName)
			}
			if v.Projected != nil {
				for _, src := range v.Projected.Sources {
					if src.ConfigMap != nil {
						cms = append(cms, src.ConfigMap.Name)
					}
					if src.Secret != nil {
						ss = append(ss, src.Secret.Name)
					}
				}
			}
		}
		for _, c := range cms {
			if !configmaps[c] {
				t.Errorf("%s reads the ConfigMap %s, which the chart does not render", w, c)
			}
		}
		for _, s := range ss {
			if !secrets[s] {
				t.Errorf("%s reads the Secret %s, which the chart does not render", w, s)
			}
		}
	}
}

// checkBillingURL fails unless every BILLING_URL is http://<a rendered Service>:8080 whose
// pods are billing's.
func checkBillingURL(t *testing.T, objs objects) {
	t.Helper()
	n := 0
	for _, c := range objs.configmaps {
		raw, ok := c.Data["BILLING_URL"]
		if !ok {
			continue
		}
		n++
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "http" || u.Port() != "8080" {
			t.Errorf("ConfigMap %s: BILLING_URL %q", c.Name, raw)
			continue
		}
		var found bool
		for _, s := range objs.services {
			if s.Name != u.Hostname() {
				continue
			}
			for _, d := range objs.deployments {
				if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
					found = strings.HasPrefix(d.Spec.Template.Spec.Containers[0].Image, "order-system-billing:")
				}
			}
		}
		if !found {
			t.Errorf("ConfigMap %s: BILLING_URL %s is no Service of billing's pods", c.Name, raw)
		}
	}
	if n != 2 {
		t.Errorf("%d ConfigMaps with BILLING_URL, want user's and order's", n)
	}
}

// allNames is the names of the rendered objects, as "Kind name".
func allNames(objs objects) []string {
	var out []string
	add := func(kind string, ms ...metav1.ObjectMeta) {
		for _, m := range ms {
			out = append(out, kind+" "+m.Name)
		}
	}
	for _, o := range objs.deployments {
		add("Deployment", o.ObjectMeta)
	}
	for _, o := range objs.statefulsets {
		add("StatefulSet", o.ObjectMeta)
	}
	for _, o := range objs.services {
		add("Service", o.ObjectMeta)
	}
	for _, o := range objs.configmaps {
		add("ConfigMap", o.ObjectMeta)
	}
	for _, o := range objs.secrets {
		add("Secret", o.ObjectMeta)
	}
	for _, o := range objs.accounts {
		add("ServiceAccount", o.ObjectMeta)
	}
	for _, o := range objs.testPods {
		add("Pod", o.ObjectMeta)
	}
	for _, o := range objs.budgets {
		add("PodDisruptionBudget", o.ObjectMeta)
	}
	for _, o := range objs.autoscalers {
		add("HorizontalPodAutoscaler", o.ObjectMeta)
	}
	for _, o := range objs.policies {
		add("NetworkPolicy", o.ObjectMeta)
	}
	for _, m := range objs.monitors {
		out = append(out, "ServiceMonitor "+decodeMonitor(nil, m).Metadata.Name)
	}
	return out
}

// The services' subcharts take helm create's nameOverride and fullnameOverride, and every
// reference between the objects follows the new names.
func TestNameOverrides(t *testing.T) {
	everything := []string{"global.auth.enabled=true", "global.auth.devProvider=true", "httpRoute.enabled=true", gatewayAPI,
		"global.podDisruptionBudget.enabled=true", "global.autoscaling.enabled=true",
		"global.metrics.serviceMonitor.enabled=true", serviceMonitorAPI, "global.tracing.jaeger=true"}
	defaults := render(t, everything...)
	checkConsistent(t, defaults)
	checkBillingURL(t, defaults)

	// order renamed as a whole, billing's name replaced: both need user's and order's billingURL.
	renamed := append(slices.Clone(everything), "order.fullnameOverride=shop-orders", "billing.nameOverride=ledger")
	args := []string{"template", "order-system", chart, "--kube-version", kubeVersion}
	for _, s := range renamed {
		if strings.HasPrefix(s, "-") { // a flag
			args = append(args, s)
			continue
		}
		args = append(args, "--set", s)
	}
	if out := helmFails(t, args...); !strings.Contains(out, "set user.billingURL to http://order-system-ledger:8080") {
		t.Errorf("billing renamed without billingURL: %s", out)
	}
	objs := render(t, append(renamed, "user.billingURL=http://order-system-ledger:8080", "order.billingURL=http://order-system-ledger:8080")...)
	checkConsistent(t, objs)
	checkBillingURL(t, objs)
	names := allNames(objs)
	for _, want := range []string{
		"Deployment shop-orders", "Service shop-orders", "ConfigMap shop-orders", "Secret shop-orders", "Pod shop-orders-test",
		"ServiceAccount shop-orders",
		"PodDisruptionBudget shop-orders", "HorizontalPodAutoscaler shop-orders", "ServiceMonitor shop-orders",
		"Deployment order-system-ledger", "Service order-system-ledger", "NetworkPolicy order-system-ledger", "ServiceMonitor order-system-ledger",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s among %v", want, names)
		}
	}
	for _, n := range names {
		if strings.Contains(n, "order-system-order") || strings.Contains(n, "order-system-billing") {
			t.Errorf("%s still has its default name", n)
		}
	}
	for _, d := range objs.deployments {
		switch d.Name {
		case "order-system-ledger":
			if got := d.Spec.Template.Labels["app.kubernetes.io/name"]; got != "ledger" {
				t.Errorf("billing's pods are named %q, want ledger", got)
			}
		case "shop-orders":
			// The service stays the order service: its image, and its client at the provider.
			if img := d.Spec.Template.Spec.Containers[0].Image; !strings.HasPrefix(img, "order-system-order:") {
				t.Errorf("shop-orders runs %s", img)
			}
		}
	}
	for _, c := range objs.configmaps {
		if c.Name == "shop-orders" && c.Data["AUTH_CLIENT_ID"] != "order-service" {
			t.Errorf("shop-orders: AUTH_CLIENT_ID %q, want order-service", c.Data["AUTH_CLIENT_ID"])
		}
	}
	for _, s := range objs.secrets {
		if s.Name == "shop-orders" && !strings.HasPrefix(s.StringData["DATABASE_URL"], "postgres://order_service:") {
			t.Errorf("shop-orders: DATABASE_URL %q, want order's role", s.StringData["DATABASE_URL"])
		}
	}

	// A subchart on its own, calling a billing elsewhere.
	alone := renderChart(t, filepath.Join(chart, "charts", "order"),
		append(givenPasswords, "fullnameOverride=shop-orders", "billingURL=http://billing.payments:8080")...)
	checkConsistent(t, alone)
	for _, n := range allNames(alone) {
		if _, name, _ := strings.Cut(n, " "); name != "shop-orders" && name != "shop-orders-test" {
			t.Errorf("on its own with fullnameOverride: %s", n)
		}
	}
	for _, c := range alone.configmaps {
		if c.Data["BILLING_URL"] != "http://billing.payments:8080" {
			t.Errorf("%s: BILLING_URL %q, want the billingURL given", c.Name, c.Data["BILLING_URL"])
		}
	}
}
