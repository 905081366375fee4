package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/tools/localrun"
)

// TestChaos is the randomized fault checker behind `make chaos`, in the spirit of Jepsen's
// bank test: clients drive the real binaries through an nginx gateway while a nemesis kills,
// freezes and restarts the services, the broker and the database. Then the faults stop, the
// system is given time to settle, and an oracle built from what the clients were told and
// what the databases hold checks the promises (chaos_check_test.go).
//
// CHAOS_SEED fixes every choice of the clients and of the nemesis (the interleaving remains
// the machine's), CHAOS_DURATION the length of the faulty phase, CHAOS_CLIENTS the number of
// clients, CHAOS_HISTORY the file that receives the history as JSON lines.
func TestChaos(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED: %v", err)
		}
	}
	duration := envDuration(t, "CHAOS_DURATION", time.Minute)
	clients := 12
	if v := os.Getenv("CHAOS_CLIENTS"); v != "" {
		var err error
		if clients, err = strconv.Atoi(v); err != nil || clients < 1 {
			t.Fatalf("CHAOS_CLIENTS: %q is not a positive number", v)
		}
	}
	path := os.Getenv("CHAOS_HISTORY")
	if path == "" {
		path = filepath.Join(os.TempDir(), fmt.Sprintf("chaos-history-%d.jsonl", seed))
	}
	t.Logf("chaos seed=%d duration=%v clients=%d history=%s", seed, duration, clients, path)

	// Short timeouts and a quick, impatient reconciler make the dangerous paths common:
	// billing timeouts, orders given up as failed, idempotency leases taken over while their
	// first request still runs.
	s, servers := newFailoverSystem(t, map[string]string{
		"LOG_LEVEL":       "info",
		"BILLING_TIMEOUT": "1s", "IDEMPOTENCY_LEASE": "1500ms",
		"RECONCILE_INTERVAL": "200ms", "RECONCILE_BACKOFF": "200ms", "RECONCILE_MAX_BACKOFF": "1s", "RECONCILE_MAX_ATTEMPTS": "1",
	})
	// Order keys live chaosOrderKeyTTL, so that the nemesis can keep every order replica (and
	// so every reconciler) down for longer than a key lives while a keyed order is pending;
	// the clients' retries then place a second order under the expired key. Deposit and
	// registration keys keep the default 24 h: a deposit retried after its key expired would
	// rightly apply twice.
	s.svcEnv = map[string]map[string]string{"order": {"IDEMPOTENCY_TTL": chaosOrderKeyTTL.String()}}
	s.startAll()
	// The second order replica gets its address now, so that the gateway knows it; the
	// nemesis starts and stops it.
	s.start("order2")
	s.signal("order2", syscall.SIGTERM)
	gw := startGateway(t, s)
	h := newChaosHistory(t, path)

	setup := &chaosClient{s: s, gw: gw, h: h, rng: rand.New(rand.NewPCG(seed, 0))}
	for range 16 {
		setup.seedUser()
	}

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range clients {
		c := &chaosClient{id: i + 1, s: s, gw: gw, h: h, rng: rand.New(rand.NewPCG(seed, uint64(i+1)))}
		wg.Go(func() { c.run(ctx) })
	}
	go reportProgress(ctx, h, duration)
	n := &nemesis{t: t, s: s, h: h, servers: servers, rng: rand.New(rand.NewPCG(seed, 1<<32)), duration: duration}
	n.run(ctx)
	wg.Wait()

	fmt.Println(h.progress(duration, duration) + "; the faults are over, the system settles and the oracle checks")
	settle(t, s, h, setup)
	check(t, s, h)
	fmt.Println(h.summary(seed, duration, path))
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, a := range h.anomalies {
		if i == 50 {
			t.Errorf("... and %d more anomalies (see the history)", len(h.anomalies)-50)
			break
		}
		t.Errorf("anomaly %s: %s", a.kind, a.detail)
	}
}

// reportProgress prints h's progress every half minute until ctx ends.
func reportProgress(ctx context.Context, h *chaosHistory, duration time.Duration) {
	start := time.Now()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fmt.Println(h.progress(time.Since(start), duration))
		}
	}
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// startGateway runs nginx with the repository's routes in front of the system's services,
// with both order replicas behind /orders, and returns its base URL.
func startGateway(t *testing.T, s *system) string {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Fatal("nginx is not installed (apt-get install nginx)")
	}
	routes, err := filepath.Abs("../../deploy/nginx/routes.conf")
	if err != nil {
		t.Fatal(err)
	}
	limits := filepath.Join(filepath.Dir(routes), "limits.conf")
	dir := t.TempDir()
	addr := freeAddr(t)
	host := func(name string) string { return strings.TrimPrefix(s.url(name), "http://") }
	conf := fmt.Sprintf(gatewayConf, limits, host("user"), host("billing"), host("order"), host("order2"), host("notification"), addr, routes)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	nginx, err := localrun.Start(localrun.Spec{Name: "nginx", Program: "nginx", Log: filepath.Join(dir, "nginx.out"),
		Args: []string{"-p", dir + "/", "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nginx.Signal(syscall.SIGQUIT) // graceful: finish the requests in flight
		<-nginx.Done()
	})
	base := "http://" + addr
	dbtest.Eventually(t, 10*time.Second, "the gateway", func() bool {
		if nginx.Exited() {
			t.Fatalf("nginx exited:\n%s", localrun.Tail(filepath.Join(dir, "error.log"), 25))
		}
		return s.call("GET", base+"/", "").Status == 200
	})
	return base
}

// gatewayConf mirrors deploy/nginx/local.conf, on the test's own ports.
const gatewayConf = `worker_processes 1;
pid nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path tmp_body;
    proxy_temp_path tmp_proxy;
    fastcgi_temp_path tmp_fastcgi;
    uwsgi_temp_path tmp_uwsgi;
    scgi_temp_path tmp_scgi;
    include %s;
    upstream user         { server %s; keepalive 16; }
    upstream billing      { server %s; keepalive 16; }
    upstream order        { server %s max_fails=1 fail_timeout=2s; server %s max_fails=1 fail_timeout=2s; keepalive 16; }
    upstream notification { server %s; keepalive 16; }
    map $http_x_request_id $request_id_out {
        ""      $request_id;
        default $http_x_request_id;
    }
    server {
        listen %s;
        include %s;
    }
}
`

// chaosOrderKeyTTL is the order service's IDEMPOTENCY_TTL in a chaos run.
const chaosOrderKeyTTL = 20 * time.Second

// nemesis injects one fault at a time, at random moments, and heals each before the next.
// Some come at least once in a run of a minute or more, at fixed points: the database
// primary killed until the standby is promoted (at a sixth), every reconciler down past a
// key's life (a third), a broker node killed (a half), a database outage with the
// consumers' connections dropped again and again (two thirds), two broker nodes killed at
// once (five sixths).
type nemesis struct {
	t        *testing.T
	s        *system
	h        *chaosHistory
	servers  *ownServers
	rng      *rand.Rand
	duration time.Duration
}

// run injects faults until ctx ends; it runs on the test's goroutine, since starting a
// service may end the test.
func (n *nemesis) run(ctx context.Context) {
	n.t.Cleanup(n.servers.healBroker)
	n.t.Cleanup(func() { n.servers.healPair(n.t) })
	begin := time.Now()
	scheduled := map[time.Duration]func() string{}
	if n.duration >= time.Minute {
		scheduled[n.duration/6] = n.databaseFailover
		scheduled[n.duration/3] = n.ordersDownPastTheKey
		scheduled[n.duration/2] = n.brokerNodeLost
		scheduled[2*n.duration/3] = n.databaseOutageWithDroppedConsumers
		scheduled[5*n.duration/6] = n.brokerMajorityLost
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(n.between(200*time.Millisecond, 2*time.Second)):
		}
		start := time.Now()
		inject := n.inject
		for at, fault := range scheduled {
			if time.Since(begin) >= at {
				inject = fault
				delete(scheduled, at)
				break
			}
		}
		kind := inject()
		n.h.fault(kind, start)
	}
}

// ordersDownPastTheKey leaves keyed orders pending (billing frozen), then keeps every order
// replica, and so every reconciler, down for longer than an order key lives. The clients'
// retries after that place second orders under their expired keys; the first ones are past
// their pay deadline by then and must never be debited after that (a call billing had queued
// and answered in time, once resumed, may have paid them before: the oracle allows it).
func (n *nemesis) ordersDownPastTheKey() string {
	n.s.pause("billing")
	time.Sleep(n.between(time.Second, 3*time.Second))
	for _, name := range []string{"order", "order2"} {
		if n.s.running(name) {
			n.s.signal(name, syscall.SIGKILL)
		}
	}
	n.s.resume("billing")
	time.Sleep(chaosOrderKeyTTL + n.between(time.Second, 5*time.Second))
	n.s.start("order")
	return "orders-down-past-key-ttl"
}

// databaseOutageWithDroppedConsumers kills both database nodes and, while they are down, has
// the broker close every connection of the system's vhost again and again: the deliveries the
// consumers hold unacked (their batch retried in place) return to their queues each time,
// more times than the queues' delivery limit. Every event must still be delivered once the
// database is back, none dead-lettered.
func (n *nemesis) databaseOutageWithDroppedConsumers() string {
	n.servers.pair.KillNode(0)
	n.servers.pair.KillNode(1)
	vhost := vhostOf(n.t, n.s.amqp)
	for range 7 {
		time.Sleep(n.between(500*time.Millisecond, 1500*time.Millisecond))
		n.servers.closeConnections(vhost, "chaos: connections dropped during a database outage")
	}
	n.servers.healPair(n.t)
	return "postgres-down-consumers-dropped"
}

// brokerNodeLost kills a broker node with SIGKILL and starts it again: the services move to
// another node, the queues keep a majority.
func (n *nemesis) brokerNodeLost() string {
	node := n.rng.IntN(brokerNodes)
	n.servers.killBrokerNodes(node)
	time.Sleep(n.between(0, 3*time.Second))
	n.servers.startBrokerNodes(n.t, node)
	return "rabbitmq-node-kill"
}

// brokerMajorityLost kills two of the three broker nodes: the one left pauses, publishing
// stalls until they are back.
func (n *nemesis) brokerMajorityLost() string {
	left := n.rng.IntN(brokerNodes)
	killed := []int{(left + 1) % brokerNodes, (left + 2) % brokerNodes}
	n.servers.killBrokerNodes(killed...)
	time.Sleep(n.between(time.Second, 5*time.Second))
	n.servers.startBrokerNodes(n.t, killed...)
	return "rabbitmq-majority-kill"
}

// databaseNodeLost kills one server of the database pair with SIGKILL and starts it again
// later: the primary (a failover, unless it is back before the monitor gives up on it), the
// standby (commits wait until the monitor stops requiring it) or the monitor.
func (n *nemesis) databaseNodeLost() string {
	pair := n.servers.pair
	switch n.rng.IntN(4) {
	case 0, 1:
		n.killPrimary(n.between(0, 15*time.Second), false)
		return "postgres-primary-kill"
	case 2:
		pair.KillNode(1 - n.servers.healPair(n.t))
		time.Sleep(n.between(0, 5*time.Second))
		n.servers.healPair(n.t)
		return "postgres-standby-kill"
	default:
		n.servers.healPair(n.t)
		pair.KillMonitor()
		time.Sleep(n.between(0, 5*time.Second))
		n.servers.healPair(n.t)
		return "postgres-monitor-kill"
	}
}

// databaseFailover kills the primary and keeps it down until the standby is promoted.
func (n *nemesis) databaseFailover() string {
	n.killPrimary(time.Minute, true)
	return "postgres-primary-kill-failover"
}

// killPrimary kills the pair's primary and starts it again after down, or as soon as the
// monitor reports the standby promoted if untilPromoted; it records the failover's time and
// the 503s answered until the pair is whole again.
func (n *nemesis) killPrimary(down time.Duration, untilPromoted bool) {
	pair := n.servers.pair
	primary := n.servers.healPair(n.t)
	unavailable := n.h.status(503)
	pair.KillNode(primary) // returns once every process of the node is gone
	killed := time.Now()
	for time.Since(killed) < down {
		if state, err := pair.State(context.Background()); err == nil && state.Primary() == 1-primary {
			n.h.failover(time.Since(killed))
			if untilPromoted {
				break
			}
			time.Sleep(time.Until(killed.Add(down)))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.servers.healPair(n.t)
	n.h.duringFailovers(n.h.status(503) - unavailable)
}

func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)))
}

// inject picks a fault, applies it, heals it and returns its kind.
func (n *nemesis) inject() string {
	switch p := n.rng.IntN(16); {
	case p < 5: // SIGKILL a service, keep it down a moment, start it again
		name := []string{"user", "billing", "order", "notification", "order"}[p]
		if name == "order" && n.s.running("order2") && n.rng.IntN(2) == 0 {
			name = "order2"
		}
		if !n.s.running(name) {
			return "none"
		}
		n.s.signal(name, syscall.SIGKILL)
		time.Sleep(n.between(0, 2*time.Second))
		n.s.start(name)
		return "kill-" + name
	case p < 7: // a stalled billing: requests to it time out; now and then long enough for the reconciler to give up
		n.s.pause("billing")
		if n.rng.IntN(4) == 0 {
			time.Sleep(n.between(15*time.Second, 25*time.Second))
		} else {
			time.Sleep(n.between(300*time.Millisecond, 5*time.Second))
		}
		n.s.resume("billing")
		return "pause-billing"
	case p < 8: // billing comes back while the broker is down: users created meanwhile have no account yet
		n.s.signal("billing", syscall.SIGKILL)
		time.Sleep(n.between(500*time.Millisecond, 3*time.Second))
		n.servers.stopBroker(n.t)
		n.s.start("billing")
		time.Sleep(n.between(time.Second, 5*time.Second))
		n.servers.startBroker(n.t)
		return "kill-billing-rabbitmq-stop"
	case p < 9:
		n.servers.stopBroker(n.t)
		time.Sleep(n.between(time.Second, 6*time.Second))
		n.servers.startBroker(n.t)
		return "rabbitmq-stop"
	case p < 11:
		return n.databaseNodeLost()
	case p < 12:
		return n.brokerNodeLost()
	case p < 13:
		return n.brokerMajorityLost()
	default: // the second order replica comes and goes
		if !n.s.running("order2") {
			n.s.start("order2")
			return "order2-start"
		}
		sig := []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}[n.rng.IntN(2)]
		n.s.signal("order2", sig)
		return "order2-stop"
	}
}

// chaosClient is one client: it picks operations at random (from its own seeded source)
// and records every request and what it learned.
type chaosClient struct {
	id  int
	s   *system
	gw  string
	h   *chaosHistory
	rng *rand.Rand
	seq int
}

func (c *chaosClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		c.h.operation()
		switch p := c.rng.IntN(100); {
		case p < 3:
			c.createUser(ctx)
		case p < 18:
			c.deposit(ctx, c.h.randomUser(c.rng))
		case p < 38:
			c.order(ctx, c.h.randomUser(c.rng), false)
		case p < 66:
			c.order(ctx, c.h.randomUser(c.rng), true)
		case p < 72:
			c.concurrentOrder(ctx)
		case p < 82:
			c.replay()
		case p < 91:
			c.readOrder()
		default:
			c.readBalance()
		}
	}
}

// timeout is how long the client waits for an answer: mostly long enough, sometimes so short
// that the answer is lost while the request goes on.
func (c *chaosClient) timeout() time.Duration {
	if c.rng.IntN(10) == 0 {
		return time.Duration(200+c.rng.IntN(1000)) * time.Millisecond
	}
	return 5 * time.Second
}

// send makes one request through the gateway and records it. A request is never cut short
// by the end of the run, only by its own timeout.
func (c *chaosClient) send(op, method, path, key, body string, timeout time.Duration) response {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var header []string
	if key != "" {
		header = []string{"Idempotency-Key", key}
	}
	start := time.Now()
	r := c.s.callContext(ctx, method, c.gw+path, body, header...)
	c.h.request(c.id, op, method, path, key, body, r, time.Since(start))
	return r
}

func (c *chaosClient) key(kind string) string {
	c.seq++
	return fmt.Sprintf("chaos-%s-%d-%d-%d", kind, c.id, c.seq, c.rng.Uint32())
}

// backoff is the pause before a retry.
func (c *chaosClient) backoff(attempt int) {
	time.Sleep(time.Duration(50+c.rng.IntN(100*min(attempt+1, 8))) * time.Millisecond)
}

// retryable says whether a request may be repeated for a definitive answer: no answer,
// the key is busy, or the service (or the gateway in front of it) is unavailable.
func retryable(status int) bool { return status == 0 || status == 409 || status >= 500 }

// seedUser registers a user with a balance while no fault runs.
func (c *chaosClient) seedUser() {
	c.seq++
	email := fmt.Sprintf("seed%d@example.com", c.seq)
	r := c.send("create-user", "POST", "/users", "", `{"name":"Seed","email":"`+email+`"}`, 10*time.Second)
	var u struct{ ID string }
	if r.Status != 201 || json.Unmarshal(r.Body, &u) != nil {
		c.s.t.Fatalf("create a user: %d %s %v", r.Status, r.Body, r.Err)
	}
	c.h.addUser(u.ID, email)
	body := fmt.Sprintf(`{"userId":"%s","amount":5000}`, u.ID)
	if r := c.send("deposit", "POST", "/billing/deposit", "", body, 10*time.Second); r.Status != 200 {
		c.s.t.Fatalf("deposit: %d %s %v", r.Status, r.Body, r.Err)
	}
	c.h.deposit(u.ID, 500000, 200)
}

// createUser registers a user, keyed or not, also while billing is down (its account then
// opens through the user.created event).
func (c *chaosClient) createUser(ctx context.Context) {
	key := ""
	if c.rng.IntN(2) == 0 {
		key = c.key("user")
	}
	email := fmt.Sprintf("c%d.%d@example.com", c.id, c.seq)
	body := `{"name":"Chaos","email":"` + email + `"}`
	for attempt := 0; ; attempt++ {
		r := c.send("create-user", "POST", "/users", key, body, c.timeout())
		var u struct{ ID string }
		if r.Status == 201 && json.Unmarshal(r.Body, &u) == nil {
			c.h.addUser(u.ID, email)
			if c.rng.IntN(2) == 0 { // a newcomer pays in and orders at once, maybe before the account opened
				c.deposit(ctx, chaosUser{u.ID, email})
				c.order(ctx, chaosUser{u.ID, email}, c.rng.IntN(2) == 0)
			}
			return
		}
		if key == "" || !retryable(r.Status) || attempt == 5 || ctx.Err() != nil {
			return
		}
		c.backoff(attempt)
	}
}

// kopecks prints an amount of kopecks as the API's decimal.
func kopecks(v int64) string { return fmt.Sprintf("%d.%02d", v/100, v%100) }

// deposit tops up a user: unkeyed (a lost answer leaves the deposit uncertain) or keyed
// (retried until definitive; still unknown at the end, it is retried after the faults).
func (c *chaosClient) deposit(ctx context.Context, u chaosUser) {
	amount := int64(10000 + c.rng.IntN(200000))
	body := fmt.Sprintf(`{"userId":"%s","amount":%s}`, u.id, kopecks(amount))
	if c.rng.IntN(2) == 0 {
		r := c.send("deposit", "POST", "/billing/deposit", "", body, c.timeout())
		c.h.deposit(u.id, amount, r.Status)
		return
	}
	d := &keyedDeposit{key: c.key("deposit"), body: body, user: u.id, amount: amount}
	if !c.settleDeposit(ctx, d, 6) {
		c.h.unresolvedDeposit(d)
	}
}

// settleDeposit retries a keyed deposit until it has a definitive answer or attempts run out.
// A 404 with Retry-After (the account of a user registered while billing was down is not
// open yet) is retried too, as the API tells clients to.
func (c *chaosClient) settleDeposit(ctx context.Context, d *keyedDeposit, attempts int) bool {
	for attempt := range attempts {
		r := c.send("deposit", "POST", "/billing/deposit", d.key, d.body, c.timeout())
		if !retryable(r.Status) && !(r.Status == 404 && r.Header.Get("Retry-After") != "") {
			c.h.deposit(d.user, d.amount, r.Status)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.backoff(attempt)
	}
	return false
}

// price is mostly affordable, sometimes beyond any balance.
func (c *chaosClient) price() int64 {
	switch p := c.rng.IntN(20); {
	case p < 15:
		return int64(1 + c.rng.IntN(30000))
	case p < 18:
		return int64(30000 + c.rng.IntN(300000))
	default:
		return int64(100000000 + c.rng.IntN(100000000))
	}
}

func (c *chaosClient) orderBody(u chaosUser) string {
	return fmt.Sprintf(`{"userId":"%s","email":"%s","price":%s}`, u.id, u.email, kopecks(c.price()))
}

// orderRef is the order an answer names and the status it tells.
type orderRef struct{ id, status string }

func orderOf(o orderJSON) orderRef {
	if o.ID != "" {
		return orderRef{o.ID, o.Status}
	}
	return orderRef{o.Order.ID, o.Order.Status}
}

// definitive says whether an answer to a valid order request is final: 201, or a 4xx other
// than 409 (insufficient funds, no account, billing unreachable for good), unless it says
// Retry-After (no account yet: the keyed retry places a new order).
func definitive(r response) bool {
	return r.Status == 201 || (r.Status >= 400 && r.Status < 500 && r.Status != 409 && r.Header.Get("Retry-After") == "")
}

// observeOrder records what an answer to POST /orders says about its order.
func (c *chaosClient) observeOrder(r response, source string) {
	if r.Status == 0 {
		return
	}
	var o orderJSON
	json.Unmarshal(r.Body, &o)
	ref := orderOf(o)
	if definitive(r) && ref.id == "" {
		c.h.anomaly("answer-without-order", fmt.Sprintf("a valid order request was answered %d %s", r.Status, r.Body))
	}
	c.h.observe(ref.id, ref.status, source)
}

// order places an order; keyed, it is retried with the same key until definitive.
func (c *chaosClient) order(ctx context.Context, u chaosUser, keyed bool) {
	body := c.orderBody(u)
	if !keyed {
		r := c.send("order", "POST", "/orders", "", body, c.timeout())
		c.observeOrder(r, "unkeyed answer")
		return
	}
	k := &orderKey{key: c.key("order"), body: body, sent: time.Now()}
	c.h.newKey(k)
	c.settleOrder(ctx, k, 8)
}

func (c *chaosClient) settleOrder(ctx context.Context, k *orderKey, attempts int) bool {
	for attempt := range attempts {
		if c.orderAttempt(k, c.timeout()) {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.backoff(attempt)
	}
	return false
}

// orderAttempt sends a keyed order once and reports whether the answer was definitive.
func (c *chaosClient) orderAttempt(k *orderKey, timeout time.Duration) bool {
	r := c.send("order", "POST", "/orders", k.key, k.body, timeout)
	c.observeOrder(r, "answer to key "+k.key)
	c.h.keyNamed(k, r)
	if !definitive(r) {
		return false
	}
	c.h.answer(k, r)
	return true
}

// concurrentOrder sends the same keyed order two or three times at once: one runs, the
// others get 409 or the replay; then it is settled like any keyed order.
func (c *chaosClient) concurrentOrder(ctx context.Context) {
	u := c.h.randomUser(c.rng)
	k := &orderKey{key: c.key("order"), body: c.orderBody(u), sent: time.Now()}
	c.h.newKey(k)
	n := 2 + c.rng.IntN(2)
	timeouts := make([]time.Duration, n)
	for i := range timeouts {
		timeouts[i] = c.timeout()
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := false
	for _, d := range timeouts {
		wg.Go(func() {
			if c.orderAttempt(k, d) {
				mu.Lock()
				done = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if !done {
		c.settleOrder(ctx, k, 8)
	}
}

// replay repeats a keyed order that has its answer: the same answer must come back, byte
// for byte. Now and then it reuses the key with another body, which must be refused (422).
func (c *chaosClient) replay() {
	// Only keys well within their life: an expired key rightly starts a new order.
	k := c.h.randomResolved(c.rng, time.Now().Add(-chaosOrderKeyTTL/2))
	if k == nil {
		return
	}
	if c.rng.IntN(5) > 0 {
		c.orderAttempt(k, 5*time.Second)
		return
	}
	other := strings.Replace(k.body, `"price":`, `"price":1`, 1)
	r := c.send("key-reuse", "POST", "/orders", k.key, other, 5*time.Second)
	if r.Status != 422 && !retryable(r.Status) {
		c.h.anomaly("key-reuse-accepted", fmt.Sprintf("key %q with another body was answered %d %s", k.key, r.Status, r.Body))
	}
}

func (c *chaosClient) readOrder() {
	id := c.h.randomOrder(c.rng)
	if id == "" {
		return
	}
	r := c.send("read-order", "GET", "/orders/"+id, "", "", 5*time.Second)
	switch {
	case r.Status == 200:
		var o orderJSON
		json.Unmarshal(r.Body, &o)
		c.h.observe(o.ID, o.Status, "read")
	case r.Status == 404:
		c.h.anomaly("order-lost", fmt.Sprintf("order %s was answered to a client and is not found", id))
	}
}

func (c *chaosClient) readBalance() {
	u := c.h.randomUser(c.rng)
	r := c.send("read-balance", "GET", "/billing/balance/"+u.id, "", "", 5*time.Second)
	if r.Status != 200 {
		return
	}
	var b struct{ Balance json.Number }
	if json.Unmarshal(r.Body, &b) == nil && strings.HasPrefix(string(b.Balance), "-") {
		c.h.anomaly("negative-balance", fmt.Sprintf("user %s: balance %s", u.id, b.Balance))
	}
}

// settle ends the faulty phase: every service is up; the keyed requests still without an
// answer are retried until they get one; then the reconciler finishes the pending orders and
// the relays deliver every event.
func settle(t *testing.T, s *system, h *chaosHistory, c *chaosClient) {
	t.Helper()
	for _, name := range []string{"billing", "notification", "user", "order"} {
		if !s.running(name) {
			s.start(name)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, d := range h.unresolvedDeposits() {
		ok := false
		for !ok && time.Now().Before(deadline) {
			ok = c.settleDeposit(context.Background(), d, 1)
		}
		if !ok {
			h.deposit(d.user, d.amount, 0) // its outcome stays unknown
		}
	}
	for _, k := range h.unresolvedKeys() {
		ok := false
		for !ok && time.Now().Before(deadline) {
			if ok = c.orderAttempt(k, 5*time.Second); !ok {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if !ok {
			h.anomaly("key-unresolved", fmt.Sprintf("key %q (%s) has no definitive answer after the faults", k.key, k.body))
		}
	}
	waitUntil(60*time.Second, func() bool {
		return s.count(`SELECT count(*) FROM orders.orders WHERE status = 'pending'`) == 0
	})
	// A user registered while billing was frozen or down gets the account from the
	// user.created event once billing's consumer is back, which takes a reconnect.
	waitUntil(60*time.Second, func() bool {
		return s.count(`SELECT count(*) FROM users.users u WHERE NOT EXISTS (SELECT FROM billing.accounts a WHERE a.user_id = u.id)`) == 0
	})
	waitUntil(60*time.Second, func() bool {
		return s.count(`SELECT count(*) FROM orders.outbox`)+s.count(`SELECT count(*) FROM users.outbox`) == 0 &&
			s.count(`SELECT count(*) FROM orders.orders WHERE status <> 'pending'`) == s.count(`SELECT count(DISTINCT order_id) FROM notifications.notifications`)
	})
	time.Sleep(time.Second) // a late duplicate, if any, lands now
}

// waitUntil polls cond until it holds or the timeout passes; the check that follows says
// what did not happen.
func waitUntil(timeout time.Duration, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
}
