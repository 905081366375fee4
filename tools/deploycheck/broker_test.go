package deploycheck_test

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// nodeHost is the DNS name of the bundled broker's node n, its pod under the headless Service.
func nodeHost(n int) string {
	return fmt.Sprintf("order-system-rabbitmq-%d.order-system-rabbitmq-headless.default.svc.cluster.local", n)
}

// The bundled RabbitMQ is a cluster of three nodes by default: started together, named after
// their pods under a headless Service that publishes them before they are ready, listed in
// each node's peer discovery, pausing in a minority, one at a time evictable, preferably on
// different Kubernetes nodes. The services get every node's address.
func TestBrokerCluster(t *testing.T) {
	objs := render(t)
	s := broker(t, objs)
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 3 || s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("broker: replicas %v, podManagementPolicy %q; want 3, Parallel", s.Spec.Replicas, s.Spec.PodManagementPolicy)
	}
	headless := service(t, objs, s.Spec.ServiceName)
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses ||
		!maps.Equal(headless.Spec.Selector, s.Spec.Selector.MatchLabels) {
		t.Errorf("the StatefulSet's Service %s: clusterIP %q, publishNotReadyAddresses %v, selector %v; want headless, true, the pods'",
			headless.Name, headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses, headless.Spec.Selector)
	}
	var ports []int32
	for _, p := range headless.Spec.Ports {
		ports = append(ports, p.Port)
	}
	if !slices.Equal(ports, []int32{4369, 5672, 25672}) {
		t.Errorf("headless Service ports %v, want epmd, amqp, the distribution", ports)
	}

	c := s.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["RABBITMQ_USE_LONGNAME"] != "true" || env["RABBITMQ_NODENAME"] != "rabbit@$(POD_NAME).order-system-rabbitmq-headless.default.svc.cluster.local" {
		t.Errorf("node name %q (long names %q), want rabbit@<pod>.<headless Service>...", env["RABBITMQ_NODENAME"], env["RABBITMQ_USE_LONGNAME"])
	}
	if _, ok := env["RABBITMQ_DEFAULT_VHOST"]; ok {
		t.Error("RABBITMQ_DEFAULT_VHOST set without global.amqp.vhost")
	}
	conf := clusterConf(t, objs)
	for n := range 3 {
		if want := fmt.Sprintf("cluster_formation.classic_config.nodes.%d = rabbit@%s\n", n+1, nodeHost(n)); !strings.Contains(conf, want) {
			t.Errorf("cluster.conf lacks %q:\n%s", want, conf)
		}
	}
	for _, want := range []string{"cluster_formation.peer_discovery_backend = classic_config\n", "cluster_partition_handling = pause_minority\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("cluster.conf lacks %q", want)
		}
	}

	var budget bool
	for _, b := range objs.budgets {
		if b.Name == "order-system-rabbitmq" {
			budget = b.Spec.MaxUnavailable != nil && b.Spec.MaxUnavailable.IntValue() == 1 && b.Spec.MinAvailable == nil &&
				maps.Equal(b.Spec.Selector.MatchLabels, s.Spec.Selector.MatchLabels)
		}
	}
	if !budget {
		t.Error("no PodDisruptionBudget of the broker's pods with maxUnavailable 1")
	}
	anti := s.Spec.Template.Spec.Affinity
	if anti == nil || anti.PodAntiAffinity == nil || len(anti.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 ||
		len(anti.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		anti.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("broker affinity %+v, want one preferred anti-affinity per Kubernetes node, nothing required", anti)
	}
	// A user's own affinity replaces it.
	own := broker(t, render(t, valuesFile(t, "rabbitmq:\n  affinity:\n    nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: In, values: [mq]}]}]}}\n")))
	if a := own.Spec.Template.Spec.Affinity; a == nil || a.PodAntiAffinity != nil || a.NodeAffinity == nil {
		t.Errorf("rabbitmq.affinity given: %+v", a)
	}

	for _, svc := range []string{"user", "billing", "order", "notification"} {
		if got, want := amqpHosts(t, objs, svc), []string{nodeHost(0) + ":5672", nodeHost(1) + ":5672", nodeHost(2) + ":5672"}; !slices.Equal(got, want) {
			t.Errorf("%s's AMQP_URL names %v, want %v", svc, got, want)
		}
	}
}

// One node still works: one pod, one node in its peer discovery and in AMQP_URL.
func TestBrokerSingleNode(t *testing.T) {
	objs := render(t, "rabbitmq.replicas=1")
	if s := broker(t, objs); s.Spec.Replicas == nil || *s.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1", s.Spec.Replicas)
	}
	if conf := clusterConf(t, objs); strings.Count(conf, "classic_config.nodes.") != 1 || !strings.Contains(conf, "nodes.1 = rabbit@"+nodeHost(0)+"\n") {
		t.Errorf("cluster.conf of one node:\n%s", conf)
	}
	if got := amqpHosts(t, objs, "order"); !slices.Equal(got, []string{nodeHost(0) + ":5672"}) {
		t.Errorf("AMQP_URL names %v, want the one node", got)
	}
	if out := helmFails(t, "template", "order-system", chart, "--kube-version", kubeVersion, "--set", "rabbitmq.replicas=0"); !strings.Contains(out, "replicas") {
		t.Errorf("rabbitmq.replicas=0: %s", out)
	}
}

// The Erlang cookie comes from the broker's Secret and is written afresh at every start with
// mode 0400 by the user the node runs as (a volume applying fsGroup makes it group-readable
// at each mount, which Erlang refuses). With an existingSecret it comes from there.
func TestBrokerCookie(t *testing.T) {
	for _, tt := range []struct {
		name, secret, key string
		set               []string
	}{
		{"generated", "order-system-rabbitmq", "erlang-cookie", nil},
		{"existingSecret", "mq-admin", "cookie", []string{"rabbitmq.existingSecret=mq-admin", "rabbitmq.existingSecretKeys.erlangCookie=cookie"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs := render(t, tt.set...)
			s := broker(t, objs)
			pod := s.Spec.Template.Spec
			c := pod.Containers[0]
			if !slices.Equal(c.Command, []string{"/bin/sh", "/etc/order-system/rabbitmq/start.sh"}) {
				t.Errorf("command %v, want the start script", c.Command)
			}
			var mount string
			for _, m := range c.VolumeMounts {
				if m.Name == "config" && m.SubPath == "" {
					mount = m.MountPath
				}
			}
			var cookie *corev1.SecretProjection
			for _, v := range pod.Volumes {
				if v.Name == "config" && v.Projected != nil {
					for _, src := range v.Projected.Sources {
						if src.Secret != nil {
							cookie = src.Secret
						}
					}
				}
			}
			if mount != "/etc/order-system/rabbitmq" || cookie == nil || cookie.Name != tt.secret || len(cookie.Items) != 1 ||
				cookie.Items[0].Key != tt.key || cookie.Items[0].Path != "erlang-cookie" {
				t.Fatalf("cookie mounted at %q from %+v, want %s/%s at /etc/order-system/rabbitmq/erlang-cookie", mount, cookie, tt.secret, tt.key)
			}
			script := configMap(t, objs, "order-system-rabbitmq").Data["start.sh"]
			for _, want := range []string{`rm -f "$cookie"`, `(umask 0377 && cat /etc/order-system/rabbitmq/erlang-cookie >"$cookie")`, "exec docker-entrypoint.sh rabbitmq-server"} {
				if !strings.Contains(script, want) {
					t.Errorf("start.sh lacks %q", want)
				}
			}
			if s.Spec.Template.Annotations["checksum/config"] == "" {
				t.Error("the broker's pods carry no checksum of their configuration")
			}
		})
	}
}

// A non-empty global.amqp.vhost is created by the bundled broker (with the user's permissions,
// as its first start creates the default user and vhost) and named in AMQP_URL.
func TestBrokerVhost(t *testing.T) {
	objs := render(t, "global.amqp.vhost=orders")
	var vhost string
	for _, e := range broker(t, objs).Spec.Template.Spec.Containers[0].Env {
		if e.Name == "RABBITMQ_DEFAULT_VHOST" {
			vhost = e.Value
		}
	}
	if vhost != "orders" {
		t.Errorf("RABBITMQ_DEFAULT_VHOST %q, want orders", vhost)
	}
	for _, node := range strings.Split(secret(t, objs, "order-system-order").StringData["AMQP_URL"], ",") {
		if u, err := url.Parse(node); err != nil || u.Path != "/orders" {
			t.Errorf("AMQP_URL node %q, want vhost orders", node)
		}
	}
}

// Servers of one's own with several hosts: every broker node in AMQP_URL; every database host
// in DATABASE_URL (in its query, as lib/pq takes several) with target_session_attrs=read-write.
func TestExternalClusters(t *testing.T) {
	objs := render(t, append(givenPasswords, "postgresql.enabled=false", "rabbitmq.enabled=false",
		`global.database.host=pg-1\,pg-2:5433`, `global.amqp.host=mq-1\,mq-2:5671`)...)
	if got := amqpHosts(t, objs, "user"); !slices.Equal(got, []string{"mq-1:5672", "mq-2:5671"}) {
		t.Errorf("AMQP_URL names %v, want mq-1:5672, mq-2:5671", got)
	}
	u, err := url.Parse(secret(t, objs, "order-system-user").StringData["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Host != "" || u.Path != "/order_system" || q.Get("host") != "pg-1,pg-2" || q.Get("port") != "5432,5433" ||
		q.Get("target_session_attrs") != "read-write" || q.Get("search_path") != "users" {
		t.Errorf("DATABASE_URL of two hosts: %s", u.Redacted())
	}
	// One host: as before, unless target_session_attrs is asked for.
	objs = render(t, append(givenPasswords, "postgresql.enabled=false", "global.database.host=pg-1", "global.database.targetSessionAttrs=primary")...)
	if got := secret(t, objs, "order-system-user").StringData["DATABASE_URL"]; !strings.HasPrefix(got, "postgres://user_service:pw-user@pg-1:5432/order_system?") ||
		!strings.Contains(got, "&target_session_attrs=primary") {
		t.Errorf("DATABASE_URL of one host: %s", got)
	}
}

func broker(t *testing.T, objs objects) appsv1.StatefulSet {
	t.Helper()
	for _, s := range objs.statefulsets {
		if s.Name == "order-system-rabbitmq" {
			return s
		}
	}
	t.Fatal("no StatefulSet order-system-rabbitmq")
	return appsv1.StatefulSet{}
}

func service(t *testing.T, objs objects, name string) corev1.Service {
	t.Helper()
	for _, s := range objs.services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %s", name)
	return corev1.Service{}
}

func configMap(t *testing.T, objs objects, name string) corev1.ConfigMap {
	t.Helper()
	for _, c := range objs.configmaps {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no ConfigMap %s", name)
	return corev1.ConfigMap{}
}

func secret(t *testing.T, objs objects, name string) corev1.Secret {
	t.Helper()
	for _, s := range objs.secrets {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Secret %s", name)
	return corev1.Secret{}
}

func clusterConf(t *testing.T, objs objects) string {
	t.Helper()
	return configMap(t, objs, "order-system-rabbitmq").Data["cluster.conf"]
}

// amqpHosts is the host:port of each URL in a service's AMQP_URL, in order.
func amqpHosts(t *testing.T, objs objects, svc string) []string {
	t.Helper()
	var hosts []string
	for _, node := range strings.Split(secret(t, objs, "order-system-"+svc).StringData["AMQP_URL"], ",") {
		u, err := url.Parse(node)
		if err != nil {
			t.Fatalf("%s's AMQP_URL node %q: %v", svc, node, err)
		}
		hosts = append(hosts, u.Host)
	}
	return hosts
}
