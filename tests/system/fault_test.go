package system_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/pkg/dbtest"
)

// The fault tests stop and restart PostgreSQL and RabbitMQ, their own (own_servers_test.go):
// they run through `make fault` (go test -run TestFault), one at a time.

// history records what the clients were told, like a Jepsen history.
type history struct {
	mu       sync.Mutex
	finished map[string]string // order id → "completed" or "failed", as answered
	pending  map[string]bool   // 503 with a pending order: the reconciler finishes it
	statuses map[int]int
	created  []answered // the requests answered 201, in the order of their answers
}

// answered is when a request was sent and when its answer came.
type answered struct{ sent, answered time.Time }

func newHistory() *history {
	return &history{finished: map[string]string{}, pending: map[string]bool{}, statuses: map[int]int{}}
}

// firstCreatedAfter returns the time from at to the answer of the first request sent after
// at and answered 201, and whether there is one.
func (h *history) firstCreatedAfter(at time.Time) (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.created {
		if c.sent.After(at) {
			return c.answered.Sub(at), true
		}
	}
	return 0, false
}

// drive places orders from clients goroutines until ctx ends.
func (s *system) drive(ctx context.Context, h *history, users []string, clients int, orderService func() string) *sync.WaitGroup {
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				s.placeOrder(h, orderService(), users[(c+i)%len(users)])
			}
		})
	}
	return &wg
}

// driveSteady places one order every interval, from one client, until ctx ends: a load low
// enough to keep up for the minutes an alert takes to fire.
func (s *system) driveSteady(ctx context.Context, h *history, users []string, every time.Duration) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			s.placeOrder(h, s.url("order"), users[i%len(users)])
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return &wg
}

// placeOrder places an order of 1 for user at orderService and records the answer in h.
func (s *system) placeOrder(h *history, orderService, user string) {
	sent := time.Now()
	r := s.call("POST", orderService+"/orders", orderBody(user, "1"))
	var o orderJSON
	json.Unmarshal(r.Body, &o) // no answer, or one without an order, leaves o empty
	h.mu.Lock()
	h.statuses[r.Status]++
	switch {
	case r.Status == 201:
		h.finished[o.ID] = o.Status
		h.created = append(h.created, answered{sent, time.Now()})
	case r.Status == 400 && o.Code == "insufficient_funds":
		h.finished[o.Order.ID] = "failed"
	case r.Status == 503 && o.Order.ID != "":
		h.pending[o.Order.ID] = true
	}
	h.mu.Unlock()
	if r.Status == 0 || r.Status >= 500 {
		time.Sleep(50 * time.Millisecond) // the service is down: do not spin
	}
}

// check waits until every finished order has its notification, then counts, like a checker
// over the history: lost (an acknowledged or finished order without a notification),
// duplicated (more than one), unexpected (a notification for an order never placed).
func (s *system) check(name string, h *history, timeout time.Duration) {
	t := s.t
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.statuses[500] > 0 {
		t.Errorf("%d requests answered 500", h.statuses[500])
	}
	// Every order the clients were told about exists with that outcome.
	for id, status := range h.finished {
		if got := s.count(`SELECT count(*) FROM orders.orders WHERE id = $1 AND status = $2`, id, status); got != 1 {
			t.Errorf("order %s was answered %s but is not stored so", id, status)
		}
	}
	var lost, dup, unexpected, finished, notes int
	deadline := time.Now().Add(timeout)
	for {
		finished = s.count(`SELECT count(*) FROM orders.orders WHERE status <> 'pending'`)
		lost = s.count(`SELECT count(*) FROM orders.orders o WHERE o.status <> 'pending'
			AND NOT EXISTS (SELECT FROM notifications.notifications n WHERE n.order_id = o.id)`)
		if lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // late duplicates, if any, land now
	dup = s.count(`SELECT count(*) FROM (SELECT order_id FROM notifications.notifications GROUP BY order_id HAVING count(*) > 1) d`)
	unexpected = s.count(`SELECT count(*) FROM notifications.notifications n
		WHERE NOT EXISTS (SELECT FROM orders.orders o WHERE o.id = n.order_id AND o.status <> 'pending')`)
	notes = s.count(`SELECT count(*) FROM notifications.notifications`)
	completed := s.count(`SELECT count(*) FROM orders.orders WHERE status = 'completed'`)
	pendingLeft := s.count(`SELECT count(*) FROM orders.orders WHERE status = 'pending'`)
	t.Logf("fault %s: orders=%d completed=%d failed=%d pending=%d notifications=%d lost=%d duplicated=%d unexpected=%d statuses=%v",
		name, finished+pendingLeft, completed, finished-completed, pendingLeft, notes, lost, dup, unexpected, h.statuses)
	if lost+dup+unexpected > 0 {
		t.Errorf("fault %s: lost=%d duplicated=%d unexpected=%d, want 0 each", name, lost, dup, unexpected)
	}
	if len(h.finished) == 0 {
		t.Errorf("fault %s: no order went through", name)
	}
}

func faultUsers(s *system, n int) []string {
	users := make([]string, n)
	for i := range users {
		users[i] = s.newUser("1000000")
	}
	return users
}

// load is the orders a few clients place at the order service until it is stopped, and what
// they were told.
type load struct {
	*history
	users  []string
	cancel context.CancelFunc
	wg     *sync.WaitGroup
}

// startLoad starts every service, funds eight users and has four clients place orders of 1
// at the order service until stop (at the latest when the test ends): the fault tests differ
// only in what they do to the system meanwhile.
func (s *system) startLoad() *load {
	s.startAll()
	l := &load{history: newHistory(), users: faultUsers(s, 8)}
	var ctx context.Context
	ctx, l.cancel = context.WithCancel(context.Background())
	l.wg = s.drive(ctx, l.history, l.users, 4, func() string { return s.url("order") })
	s.t.Cleanup(l.stop)
	return l
}

// stop ends the load and waits for the clients' last answers.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// a. RabbitMQ is down for more than 30 s while orders keep flowing.
func TestFaultBrokerOutage(t *testing.T) {
	s, o := newFaultSystem(t, nil)
	l := s.startLoad()
	time.Sleep(2 * time.Second)
	o.stopBroker(t)
	t.Cleanup(o.healBroker)
	time.Sleep(32 * time.Second)
	o.startBroker(t)
	time.Sleep(3 * time.Second)
	l.stop()
	s.check("broker-outage", l.history, 90*time.Second)
}

// a1. The broker is down for longer than the alert OutboxEventsStuck waits (an event older
// than 60 s, for 2 min) while orders come slowly and a user registers: a Prometheus of the
// test's own, evaluating deploy/prometheus/rules.yml as it is, sees the alert go pending and
// fire for the order and the user services, and resolve once the broker is back and the
// outboxes have drained; nothing is lost or duplicated.
func TestFaultOutboxAlertFiresAndResolves(t *testing.T) {
	const name = "OutboxEventsStuck"
	jobs := []string{"order", "user"} // the services with an outbox
	s, o := newFaultSystem(t, nil)
	s.startAll()
	users := faultUsers(s, 4)
	prom := startPrometheus(t, s, o.dir)
	var down []string
	if !poll(30*time.Second, func() bool { down = prom.targetsDown(t); return len(down) == 0 }) {
		t.Fatalf("prometheus does not scrape every service instance: %v", down)
	}
	h := newHistory()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wg := s.driveSteady(ctx, h, users, 500*time.Millisecond)
	time.Sleep(5 * time.Second) // scrapes and evaluations with events flowing
	if active := prom.alerts(t, name); len(active) > 0 {
		t.Fatalf("%s is active before the outage: %v", name, active)
	}

	stopped := time.Now()
	o.stopBroker(t)
	t.Cleanup(o.healBroker)
	stopTook := time.Since(stopped)
	s.newUser("0") // its event waits in the user service's outbox
	// seen is when the poll first saw the alert of a job in a state.
	seen := map[string]map[string]time.Duration{}
	var active map[string]alert
	watch := func() {
		active = prom.alerts(t, name)
		for job, a := range active {
			if seen[job] == nil {
				seen[job] = map[string]time.Duration{}
			}
			if _, ok := seen[job][a.State]; !ok {
				seen[job][a.State] = time.Since(stopped)
			}
		}
	}
	firing := func() bool {
		watch()
		for _, job := range jobs {
			if active[job].State != "firing" {
				return false
			}
		}
		return true
	}
	// 60 s, then 2 min pending, then a minute to spare.
	if !poll(4*time.Minute, firing) {
		t.Fatalf("%s not firing for %v %v after the broker was stopped: %v", name, jobs, time.Since(stopped).Round(time.Second), active)
	}
	for _, job := range jobs {
		t.Logf("fault outbox-alert: %s for %s: pending %v after the broker's stop command (activeAt; seen pending after %v), seen firing after %v",
			name, job, active[job].ActiveAt.Sub(stopped).Round(time.Second), seen[job]["pending"].Round(time.Second), seen[job]["firing"].Round(time.Second))
	}

	restarted := time.Now()
	o.startBroker(t)
	startTook := time.Since(restarted)
	if !poll(2*time.Minute, func() bool { active = prom.alerts(t, name); return len(active) == 0 }) {
		t.Fatalf("%s still active %v after the broker was started again: %v", name, time.Since(restarted).Round(time.Second), active)
	}
	resolved := time.Since(restarted)
	cancel()
	wg.Wait()
	t.Logf("fault outbox-alert: broker stopped in %v, outage %v; started again in %v, %s resolved %v after the start command",
		stopTook.Round(time.Millisecond), restarted.Sub(stopped).Round(time.Second), startTook.Round(time.Millisecond), name, resolved.Round(time.Second))
	s.check("outbox-alert", h, 90*time.Second)
}

// a2. Each broker node in turn is killed with SIGKILL while events flow, and restarted: the
// services move to another node, and the quorum queues keep a majority and every message.
func TestFaultBrokerNodeKilled(t *testing.T) {
	s, o := newFaultSystem(t, nil)
	l := s.startLoad()
	t.Cleanup(o.healBroker)
	o.requireReplicatedQueues(t, vhostOf(t, s.amqp))
	notified := `SELECT count(*) FROM notifications.notifications`
	for node := range brokerNodes {
		time.Sleep(2 * time.Second)
		o.killBrokerNodes(node)
		time.Sleep(2 * time.Second) // the clients of the killed node have moved
		before := s.count(notified)
		time.Sleep(3 * time.Second)
		flowed := s.count(notified) - before
		t.Logf("fault broker-node-killed: %d notifications in 3 s while node %d was down", flowed, node)
		if flowed == 0 {
			t.Errorf("no event went through while broker node %d was down", node)
		}
		o.startBrokerNodes(t, node)
	}
	l.stop()
	s.check("broker-node-killed", l.history, 60*time.Second)
}

// a3. Two of the three broker nodes are killed at once: the one left is in a minority and
// pauses (publishing stalls, the orders are still answered); nothing is lost once the two
// are back.
func TestFaultBrokerMajorityLost(t *testing.T) {
	s, o := newFaultSystem(t, nil)
	l := s.startLoad()
	t.Cleanup(o.healBroker)
	time.Sleep(2 * time.Second)
	o.killBrokerNodes(0, 1)
	time.Sleep(2 * time.Second) // requests under way when the nodes died have finished
	completed := `SELECT count(*) FROM orders.orders WHERE status = 'completed'`
	before := s.count(completed)
	time.Sleep(8 * time.Second)
	during := s.count(completed) - before
	backlog := s.count(`SELECT count(*) FROM orders.outbox`)
	o.startBrokerNodes(t, 0, 1)
	time.Sleep(3 * time.Second)
	l.stop()
	t.Logf("fault broker-majority-lost: %d orders completed in 8 s without a broker majority, %d events waiting in the outbox", during, backlog)
	if during == 0 || backlog == 0 {
		t.Errorf("without a broker majority: %d orders completed, %d events waiting; want orders answered and publishing stalled", during, backlog)
	}
	s.check("broker-majority-lost", l.history, 90*time.Second)
}

// b. The notification service is killed with SIGKILL again and again, between commits and
// acks, while events flow.
func TestFaultNotificationKilled(t *testing.T) {
	s, _ := newFaultSystem(t, nil)
	l := s.startLoad()
	for range 4 {
		time.Sleep(1500 * time.Millisecond)
		s.signal("notification", syscall.SIGKILL)
		s.start("notification")
	}
	l.stop()
	s.check("notification-killed", l.history, 60*time.Second)
}

// c. Two order instances, hence two outbox relays, share the database.
func TestFaultTwoRelays(t *testing.T) {
	s, _ := newFaultSystem(t, nil)
	s.startAll()
	s.start("order2")
	users := faultUsers(s, 8)
	h := newHistory()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	var n int
	var mu sync.Mutex
	next := func() string { // alternate between the instances
		mu.Lock()
		defer mu.Unlock()
		n++
		if n%2 == 0 {
			return s.url("order2")
		}
		return s.url("order")
	}
	s.drive(ctx, h, users, 6, next).Wait()
	s.check("two-relays", h, 60*time.Second)
}

// d. PostgreSQL restarts (fast, then immediate) while orders flow: the services answer 503
// meanwhile, never 500, and recover on their own; no acknowledged order is lost.
func TestFaultDatabaseRestart(t *testing.T) {
	s, o := newFaultSystem(t, map[string]string{"RECONCILE_INTERVAL": "200ms", "RECONCILE_BACKOFF": "200ms", "RECONCILE_MAX_BACKOFF": "1s"})
	l := s.startLoad()
	for _, mode := range []string{"fast", "immediate"} {
		time.Sleep(2 * time.Second)
		o.restartPostgres(t, mode)
	}
	time.Sleep(3 * time.Second)
	l.stop()
	// The services recovered without a restart: a new order goes through.
	if r := s.order("", l.users[0], "1"); r.Status != 201 {
		t.Fatalf("order after the restarts: %d %s", r.Status, r.Body)
	}
	// Orders caught pending by the outage are finished by the reconciler.
	dbtest.Eventually(t, 30*time.Second, "pending orders to finish", func() bool {
		return s.count(`SELECT count(*) FROM orders.orders WHERE status = 'pending'`) == 0
	})
	s.check("database-restart", l.history, 60*time.Second)
	s.verifyLedger()
}

// d2. The database is a pair with automatic failover (pg_auto_failover: a monitor, a
// primary, a synchronous standby), and its primary is killed with SIGKILL while orders,
// registrations and deposits flow: the standby is promoted, the services answer 503 meanwhile
// (never 500) and reconnect on their own, and every success a client was told is in the
// database afterwards. Then the old primary rejoins as the standby, the standby is killed,
// and the monitor is killed: writes go on through each.
func TestFaultDatabaseFailover(t *testing.T) {
	s, o := newFailoverSystem(t, map[string]string{"RECONCILE_INTERVAL": "200ms", "RECONCILE_BACKOFF": "200ms", "RECONCILE_MAX_BACKOFF": "1s"})
	l := s.startLoad()
	saver := s.newUser("0") // deposits only: its balance is the deposits that were applied
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := s.writeUsersAndDeposits(ctx, saver)
	pair := o.pair
	healthy := func() int { return o.healPair(t) } // every server started, the pair whole
	// created waits for an order sent after at to complete, and returns how long after at
	// it did: once the primary is killed, it was written on the new one.
	created := func(at time.Time, what string) time.Duration {
		t.Helper()
		var took time.Duration
		dbtest.Eventually(t, time.Minute, "an order to complete after "+what, func() bool {
			var ok bool
			took, ok = l.firstCreatedAfter(at)
			return ok
		})
		return took
	}

	time.Sleep(2 * time.Second)
	primary := healthy()
	// Each time is taken once the node's processes are all gone (KillNode returns then): a
	// request sent earlier may still have been answered by the node being killed.
	pair.KillNode(primary)
	killed := time.Now()
	dbtest.Eventually(t, time.Minute, "the standby to be promoted", func() bool {
		state, err := pair.State(context.Background())
		return err == nil && state.Primary() == 1-primary
	})
	promoted := time.Since(killed)
	failover := created(killed, "the primary was killed")
	if now := healthy(); now == primary { // the old primary is started again, to rejoin
		t.Errorf("node%d, killed as the primary, is the primary again; want it the standby", now)
	}
	primary = 1 - primary

	pair.KillNode(1 - primary)
	killed = time.Now()
	standbyGap := created(killed, "the standby was killed")
	time.Sleep(3 * time.Second)
	healthy()

	pair.KillMonitor()
	killed = time.Now()
	monitorGap := created(killed, "the monitor was killed")
	time.Sleep(2 * time.Second)
	healthy()
	l.stop()
	cancel()
	w.wait()

	l.mu.Lock()
	unavailable := l.statuses[503]
	l.mu.Unlock()
	t.Logf("fault database-failover: primary killed: standby promoted after %v, first order completed on it %v after the kill; "+
		"first order completed %v after the standby was killed, %v after the monitor was killed; orders answered 503: %d",
		promoted.Round(time.Millisecond), failover.Round(time.Millisecond), standbyGap.Round(time.Millisecond),
		monitorGap.Round(time.Millisecond), unavailable)
	s.check("database-failover", l.history, 60*time.Second)
	w.check(t, s, saver)
	s.verifyLedger()
}

// writes is what a writer of registrations and deposits was told.
type writes struct {
	wg        sync.WaitGroup
	users     []string // answered 201
	deposited int      // deposits of 1 answered 200
	unknown   int      // deposits answered otherwise: applied or not
	statuses  map[int]int
}

// writeUsersAndDeposits registers users and deposits 1 into saver's account, in turn, until
// ctx ends.
func (s *system) writeUsersAndDeposits(ctx context.Context, saver string) *writes {
	w := &writes{statuses: map[int]int{}}
	w.wg.Go(func() {
		for ctx.Err() == nil {
			r := s.call("POST", s.url("user")+"/users", `{"name":"Failover","email":"failover@example.com"}`)
			w.statuses[r.Status]++
			var u struct{ ID string }
			if r.Status == 201 && json.Unmarshal(r.Body, &u) == nil {
				w.users = append(w.users, u.ID)
			}
			r = s.call("POST", s.url("billing")+"/billing/deposit", `{"userId":"`+saver+`","amount":1}`)
			w.statuses[r.Status]++
			if r.Status == 200 {
				w.deposited++
			} else {
				w.unknown++
			}
			if r.Status == 0 || r.Status >= 500 {
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	return w
}

func (w *writes) wait() { w.wg.Wait() }

// check finds every user answered 201 stored, and the saver's balance between the deposits
// answered 200 and those plus the unknown ones.
func (w *writes) check(t *testing.T, s *system, saver string) {
	t.Helper()
	missing := 0
	for _, id := range w.users {
		if s.count(`SELECT count(*) FROM users.users WHERE id = $1`, id) != 1 {
			missing++
		}
	}
	balance := s.count(`SELECT balance / 100 FROM billing.accounts WHERE user_id = $1`, saver)
	t.Logf("fault database-failover: users created=%d missing=%d; deposits answered 200=%d unknown=%d, balance=%d; statuses %v",
		len(w.users), missing, w.deposited, w.unknown, balance, w.statuses)
	if missing > 0 || balance < w.deposited || balance > w.deposited+w.unknown {
		t.Errorf("after the failovers: %d of %d users answered 201 are missing; balance %d for %d deposits answered 200 and %d unknown",
			missing, len(w.users), balance, w.deposited, w.unknown)
	}
	if w.statuses[500] > 0 {
		t.Errorf("%d registrations or deposits answered 500", w.statuses[500])
	}
	if len(w.users) == 0 || w.deposited == 0 {
		t.Errorf("no registration or no deposit went through: %v", w.statuses)
	}
}

// e. A poison message goes to the dead-letter queue and the queue keeps flowing.
func TestFaultPoisonMessage(t *testing.T) {
	s, _ := newFaultSystem(t, nil)
	s.startAll()
	ch := dbtest.Channel(t, s.amqp)
	for _, body := range []string{"not json", `{"specversion":"1.0","id":"x","type":"order.shipped","data":{}}`} {
		if err := ch.PublishWithContext(context.Background(), "order-system.events", "order.completed", true, false,
			amqp.Publishing{MessageId: "poison", Body: []byte(body), DeliveryMode: amqp.Persistent}); err != nil {
			t.Fatal(err)
		}
	}
	user := s.newUser("100")
	r := s.order("", user, "10")
	var o orderJSON
	r.json(t, &o)
	dbtest.Eventually(t, 10*time.Second, "the order after the poison to be notified", func() bool {
		return s.notifications(user)[o.ID] == 1
	})
	dead := 0
	dbtest.Eventually(t, 10*time.Second, "both poison messages in the DLQ", func() bool {
		q, err := ch.QueueDeclarePassive("notification.orders.dlq", true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
		if err == nil {
			dead = q.Messages
		}
		return dead >= 2
	})
	if !strings.Contains(s.tail("notification"), "message dead-lettered") {
		t.Errorf("the notification log does not say why the message was dead-lettered:\n%s", s.tail("notification"))
	}
	notes := s.notifications(user)
	t.Logf("fault poison: dead-lettered=%d notifications=%d of the order after the poison=%d", dead, len(notes), notes[o.ID])
	if dead != 2 || len(notes) != 1 || notes[o.ID] != 1 {
		t.Errorf("fault poison: dead-lettered=%d, notifications %v; want 2 and exactly one, of order %s", dead, notes, o.ID)
	}
}
