package deploycheck_test

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// A peer is a pod as a NetworkPolicy sees it: its namespace and its labels.
type peer struct {
	namespace string
	labels    map[string]string
}

func (p peer) String() string {
	if name, ok := p.labels["app.kubernetes.io/name"]; ok {
		return fmt.Sprintf("%s/%s", p.namespace, name)
	}
	return p.namespace + "/*"
}

// admits says whether the policies (all in namespace) let from connect to to on TCP port,
// as Kubernetes defines it: a pod no Ingress policy selects takes everything; a selected pod
// takes what one of the rules of the policies that select it allows (a peer with only a pod
// selector means pods of the policy's namespace; a rule without ports, any port).
func admits(t *testing.T, policies []networkingv1.NetworkPolicy, namespace string, from, to peer, port int) bool {
	t.Helper()
	matches := func(sel *metav1.LabelSelector, set map[string]string) bool {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatalf("selector %v: %v", sel, err)
		}
		return s.Matches(labels.Set(set))
	}
	isolated := false
	for _, p := range policies {
		if to.namespace != namespace || !matches(&p.Spec.PodSelector, to.labels) ||
			!slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			continue // it does not restrict what comes in to this pod
		}
		isolated = true
		for _, rule := range p.Spec.Ingress {
			portOK := len(rule.Ports) == 0
			for _, rp := range rule.Ports {
				tcp := rp.Protocol == nil || *rp.Protocol == corev1.ProtocolTCP
				if tcp && (rp.Port == nil || rp.Port.IntValue() == port || rp.EndPort != nil && rp.Port.IntValue() <= port && port <= int(*rp.EndPort)) {
					portOK = true
				}
			}
			peerOK := len(rule.From) == 0
			for _, f := range rule.From {
				nsOK := f.NamespaceSelector == nil && from.namespace == namespace ||
					f.NamespaceSelector != nil && matches(f.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": from.namespace})
				podOK := f.PodSelector == nil || matches(f.PodSelector, from.labels)
				if f.IPBlock == nil && nsOK && podOK {
					peerOK = true
				}
			}
			if portOK && peerOK {
				return true
			}
		}
	}
	return !isolated
}

// releasePods are the pods the chart runs in namespace default, by app.kubernetes.io/name:
// its workloads' and its helm test pods.
func releasePods(objs objects) map[string]peer {
	out := map[string]peer{}
	add := func(l map[string]string) {
		out[l["app.kubernetes.io/name"]] = peer{"default", l}
	}
	for _, d := range objs.deployments {
		add(d.Spec.Template.Labels)
	}
	for _, s := range objs.statefulsets {
		add(s.Spec.Template.Labels)
	}
	for _, p := range objs.testPods {
		add(p.Labels)
	}
	return out
}

// flow is a connection a policy check expects to be let through or refused.
type flow struct {
	from, to string // a pod of the release by name, or "ns:<namespace>" for any pod there
	port     int
}

// checkNetworkPolicy checks that every pod of the release is protected by a policy and that
// the policies let through exactly the connections the system makes: allow, and none of deny.
func checkNetworkPolicy(t *testing.T, objs objects, allow, deny []flow) {
	t.Helper()
	pods := releasePods(objs)
	for name, p := range pods {
		if p.labels["app.kubernetes.io/component"] == "test" {
			continue // a helm test pod serves nothing
		}
		selected := false
		for _, pol := range objs.policies {
			s, _ := metav1.LabelSelectorAsSelector(&pol.Spec.PodSelector)
			selected = selected || s.Matches(labels.Set(p.labels))
		}
		if !selected {
			t.Errorf("no network policy protects the pods of %s", name)
		}
	}
	resolve := func(name string) peer {
		if len(name) > 3 && name[:3] == "ns:" {
			return peer{name[3:], map[string]string{"app.kubernetes.io/name": "anything"}}
		}
		p, ok := pods[name]
		if !ok {
			t.Fatalf("the chart renders no pod %s", name)
		}
		return p
	}
	for _, f := range allow {
		if from, to := resolve(f.from), resolve(f.to); !admits(t, objs.policies, "default", from, to, f.port) {
			t.Errorf("%v cannot reach %v on %d", from, to, f.port)
		}
	}
	for _, f := range deny {
		if from, to := resolve(f.from), resolve(f.to); admits(t, objs.policies, "default", from, to, f.port) {
			t.Errorf("%v can reach %v on %d", from, to, f.port)
		}
	}
}

var services = []string{"user", "billing", "order", "notification"}

// The connections of the default install: the entry to the public paths and the index, each
// service's helm test to it, user and order to billing, the services to the bundled stores,
// the broker's nodes to each other.
func defaultFlows() (allow, deny []flow) {
	for _, svc := range services {
		allow = append(allow,
			flow{"ns:ingress-nginx", svc, 8080}, flow{svc + "-test", svc, 8080},
			flow{svc, "postgresql", 5432}, flow{svc, "rabbitmq", 5672})
		deny = append(deny,
			flow{"ns:default", svc, 8080},    // another application beside the release
			flow{"ns:monitoring", svc, 8080}, // a Prometheus nobody named
			flow{svc, "rabbitmq", 15672},     // the management API
			flow{svc + "-test", "postgresql", 5432})
	}
	allow = append(allow,
		flow{"ns:ingress-nginx", "index", 8080}, flow{"user", "billing", 8080}, flow{"order", "billing", 8080},
		flow{"rabbitmq", "rabbitmq", 4369}, flow{"rabbitmq", "rabbitmq", 25672})
	deny = append(deny,
		flow{"notification", "billing", 8080}, flow{"billing-test", "user", 8080}, flow{"user", "order", 8080},
		flow{"ns:ingress-nginx", "postgresql", 5432}, flow{"ns:ingress-nginx", "rabbitmq", 5672},
		flow{"ns:default", "postgresql", 5432}, flow{"ns:default", "rabbitmq", 5672}, flow{"ns:default", "index", 8080},
		flow{"user", "rabbitmq", 25672}, flow{"ns:monitoring", "rabbitmq", 15692})
	return allow, deny
}

func TestNetworkPolicies(t *testing.T) {
	allow, deny := defaultFlows()
	checkNetworkPolicy(t, render(t), allow, deny)

	// Sign-in's provider and Jaeger, when the release runs them: the services reach both, the
	// entry the provider's sign-in, nobody Jaeger's UI (kubectl port-forward does).
	objs := render(t, "global.auth.enabled=true", "global.auth.devProvider=true", "global.tracing.jaeger=true")
	for _, svc := range services {
		allow = append(allow, flow{svc, "devidp", 8070}, flow{svc, "jaeger", 4318}, flow{svc, "jaeger", 4317})
		deny = append(deny, flow{svc, "jaeger", 16686})
	}
	allow = append(allow, flow{"ns:ingress-nginx", "devidp", 8070})
	deny = append(deny, flow{"ns:ingress-nginx", "jaeger", 16686}, flow{"ns:default", "devidp", 8070}, flow{"ns:default", "jaeger", 4318})
	checkNetworkPolicy(t, objs, allow, deny)

	// Another release in the same namespace is not one of this release's callers.
	other := render(t)
	stranger := peer{"default", map[string]string{"app.kubernetes.io/name": "order", "app.kubernetes.io/instance": "other"}}
	if admits(t, other.policies, "default", stranger, releasePods(other)["billing"], 8080) {
		t.Error("another release's order pods can reach this release's billing")
	}

	// Off, nothing is rendered.
	if n := len(render(t, "networkPolicy.enabled=false").policies); n != 0 {
		t.Errorf("networkPolicy.enabled=false: %d policies", n)
	}
}
