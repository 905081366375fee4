package rabbit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/rabbit"
)

// TestConsumerBatches publishes a burst with poison messages in it to a queue of its own on
// the real broker: every good message reaches the handler and is acked exactly once, the
// poison goes to the dead-letter queue, and deliveries that arrive together are handed over
// as batches.
func TestConsumerBatches(t *testing.T) {
	ch := dbtest.Channel(t, dbtest.AMQPURL())
	q := rabbit.Queue{Name: dbtest.Name(t, "test.batches"), Exchange: dbtest.Name(t, "test.events"), Bindings: []string{"#"}, DeliveryLimit: 2}
	dbtest.RemoveQueue(t, ch, q)
	if err := rabbit.Declare(ch, q); err != nil {
		t.Fatal(err)
	}
	const total, poisonEvery = 300, 50
	for i := range total {
		body := fmt.Sprintf("m%d", i)
		if i%poisonEvery == 7 {
			body = "poison"
		}
		if err := ch.PublishWithContext(context.Background(), q.Exchange, "k", false, false, amqp.Publishing{MessageId: fmt.Sprint(i), Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu      sync.Mutex
		seen    = map[string]int{}
		largest int
	)
	handler := func(ctx context.Context, ds []amqp.Delivery) ([]error, error) {
		mu.Lock()
		defer mu.Unlock()
		largest = max(largest, len(ds))
		errs := make([]error, len(ds))
		for i, d := range ds {
			if string(d.Body) == "poison" {
				errs[i] = rabbit.ErrPoison
				continue
			}
			seen[d.MessageId]++
		}
		return errs, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := prometheus.NewRegistry()
	c := rabbit.NewConsumer(dbtest.AMQPURL(), q, handler, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()

	good := total - total/poisonEvery
	deadline := time.Now().Add(15 * time.Second)
	for consumed(t, reg, "acked") < good || consumed(t, reg, "dead_lettered") < total/poisonEvery {
		if time.Now().After(deadline) {
			t.Fatalf("acked %d of %d good messages, dead-lettered %d of %d", consumed(t, reg, "acked"), good,
				consumed(t, reg, "dead_lettered"), total/poisonEvery)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Stop the consumer: anything it had not acked would now be redelivered to the next one.
	cancel()
	<-done
	if len(seen) != good {
		t.Errorf("%d distinct good messages handled, want %d", len(seen), good)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %s handled %d times, want once", id, n)
		}
	}
	if largest < 2 {
		t.Errorf("largest batch = %d: a burst of %d messages was never handed over together", largest, total)
	}
	inspect := func(name string) int {
		t.Helper()
		st, err := ch.QueueDeclarePassive(name, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum})
		if err != nil {
			t.Fatal(err)
		}
		return st.Messages
	}
	deadline = time.Now().Add(5 * time.Second)
	for inspect(q.DeadLetterQueue()) != total/poisonEvery && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := inspect(q.DeadLetterQueue()); n != total/poisonEvery {
		t.Errorf("dead-letter queue holds %d messages, want the %d poison ones", n, total/poisonEvery)
	}
	if n := inspect(q.Name); n != 0 {
		t.Errorf("queue holds %d messages after the consumer stopped, want 0: every good one acked", n)
	}
}

// consumed reads the consumer's events_consumed_total counter for outcome.
func consumed(t *testing.T, reg *prometheus.Registry, outcome string) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "events_consumed_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

// TestRetryStopsWhenConnectionCloses keeps the handler failing, as during a database outage,
// and has the broker close the consumer's connection while a message is being retried in
// place: the consumer gives the dead channel's batch up at once, subscribes again, gets the
// message redelivered and retries it there; once the database is back the message is acked,
// not dead-lettered, although its delivery limit is 1.
func TestRetryStopsWhenConnectionCloses(t *testing.T) {
	ctl, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		t.Skip("rabbitmqctl is not installed: it is how the test closes a connection on the broker's side")
	}
	conn, err := amqp.Dial(dbtest.AMQPURL())
	if err != nil {
		t.Skipf("RabbitMQ is not reachable: %v", err)
	}
	defer conn.Close()
	q := rabbit.Queue{Name: dbtest.Name(t, "test.outage"), Exchange: dbtest.Name(t, "test.events"), Bindings: []string{"#"}, DeliveryLimit: 1}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ch.QueueDelete(q.Name, false, false, false)
		ch.QueueDelete(q.DeadLetterQueue(), false, false, false)
		ch.ExchangeDelete(q.Exchange, false, false)
		ch.ExchangeDelete(q.DeadLetterExchange(), false, false)
	}()
	if err := rabbit.Declare(ch, q); err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(context.Background(), q.Exchange, "k", false, false, amqp.Publishing{MessageId: "m1", Body: []byte("m1")}); err != nil {
		t.Fatal(err)
	}

	var (
		mu          sync.Mutex
		calls       int
		redelivered int  // calls that saw the message redelivered on a later channel
		databaseUp  bool // the outage ends when the test says so
	)
	handler := func(ctx context.Context, ds []amqp.Delivery) ([]error, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if ds[0].Redelivered {
			redelivered++
		}
		if !databaseUp {
			return nil, errors.New("database unavailable")
		}
		return make([]error, len(ds)), nil
	}
	state := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return calls, redelivered
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				n, r := state()
				t.Fatalf("%s: not within 15 s (handler calls %d, redelivered %d)", what, n, r)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	c := rabbit.NewConsumer(dbtest.AMQPURL(), q, handler, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitUntil("the message retried in place", func() bool { n, _ := state(); return n >= 3 })
	closeConnection(t, ctl, "consumer "+q.Name)
	start := time.Now()
	waitUntil("the message redelivered on a new subscription", func() bool { _, r := state(); return r > 0 })
	t.Logf("redelivered on a new subscription %v after the connection was closed", time.Since(start).Round(time.Millisecond))
	waitUntil("retries in place on the new subscription", func() bool { _, r := state(); return r >= 3 })

	mu.Lock()
	databaseUp = true
	mu.Unlock()
	waitUntil("the message acked", func() bool { return consumed(t, reg, "acked") == 1 })
	if n := consumed(t, reg, "dead_lettered"); n != 0 {
		t.Errorf("%d messages dead-lettered, want 0", n)
	}
	st, err := ch.QueueDeclarePassive(q.DeadLetterQueue(), true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum})
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 0 {
		t.Errorf("dead-letter queue holds %d messages, want 0", st.Messages)
	}
}

// closeConnection has the broker close the connection whose client-given name
// (connection_name among its client properties) is name.
func closeConnection(t *testing.T, ctl, name string) {
	t.Helper()
	out, err := exec.Command(ctl, "list_connections", "-q", "--no-table-headers", "pid", "client_properties").CombinedOutput()
	if err != nil {
		t.Fatalf("list connections: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		pid, rest, ok := strings.Cut(line, "\t")
		if !ok || !strings.Contains(rest, `"`+name+`"`) {
			continue
		}
		if out, err := exec.Command(ctl, "close_connection", pid, "test: connection lost").CombinedOutput(); err != nil {
			t.Fatalf("close connection %s: %v: %s", pid, err, out)
		}
		return
	}
	t.Fatalf("no connection named %q among:\n%s", name, out)
}

// TestOutageSurvivesRepeatedDisconnects keeps the handler failing, as while the database is
// down, and cuts the consumer's connection more times than the queue's delivery limit, each
// time while the consumer holds every event unacked. RabbitMQ 3.10 counts each cut as a
// delivery of each of them (TestQuorumQueueCountsEveryReturn), so without the consumer's
// republishing they would all be dead-lettered. Once the database is back, every event is
// handled, as published, and the dead-letter queue is empty.
func TestOutageSurvivesRepeatedDisconnects(t *testing.T) {
	vhostURL := dbtest.NewVhost(t)
	admin := dbtest.Channel(t, vhostURL)
	const limit, cuts, total = 2, 6, 20
	q := rabbit.Queue{Name: "test.outage", Exchange: "test.events", Bindings: []string{"order.*"}, DeliveryLimit: limit}
	if err := rabbit.Declare(admin, q); err != nil {
		t.Fatal(err)
	}
	for i := range total {
		if err := admin.PublishWithContext(context.Background(), q.Exchange, "order.completed", false, false, amqp.Publishing{
			MessageId: fmt.Sprintf("e%d", i), Headers: amqp.Table{"x-request-id": fmt.Sprintf("r%d", i)}, Body: []byte("{}"),
		}); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu         sync.Mutex
		databaseUp bool
		calls      int                // handler calls since the count was last reset
		handled    = map[string]int{} // by message id, once the database is up
		altered    []string           // deliveries that do not look as published
	)
	handler := func(ctx context.Context, ds []amqp.Delivery) ([]error, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if !databaseUp {
			return nil, errors.New("database unavailable")
		}
		for _, d := range ds {
			handled[d.MessageId]++
			if d.Exchange != q.Exchange || d.RoutingKey != "order.completed" || d.Headers["x-request-id"] != "r"+strings.TrimPrefix(d.MessageId, "e") {
				altered = append(altered, fmt.Sprintf("%s: exchange %q, routing key %q, headers %v", d.MessageId, d.Exchange, d.RoutingKey, d.Headers))
			}
		}
		return make([]error, len(ds)), nil
	}
	messages := func(queue string) int { return readyMessages(t, admin, queue) }
	// await polls cond, failing at once when an event reaches the dead-letter queue.
	await := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if n := messages(q.DeadLetterQueue()); n > 0 {
				t.Fatalf("%d of %d good events dead-lettered while waiting for %s", n, total, what)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20 s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	link := newLinkCutter(t, vhostURL)
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	c := rabbit.NewConsumer(link.url, q, handler, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for i := range cuts {
		// A new session: its connection is accepted and it has subscribed. Sessions run one
		// after the other, so no handler call of an earlier one can follow.
		await(fmt.Sprintf("subscription %d", i+1), func() bool { return link.accepted() > i && c.Ready() })
		mu.Lock()
		calls = 0
		mu.Unlock()
		// Cut only while the consumer retries in place with every event in its hands, so
		// that the cut returns each of them to the queue.
		await(fmt.Sprintf("retries in place before cut %d", i+1), func() bool {
			mu.Lock()
			n := calls
			mu.Unlock()
			return n >= 2 && messages(q.Name) == 0
		})
		link.cut()
	}

	mu.Lock()
	databaseUp = true
	mu.Unlock()
	await("every event handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == total
	})
	cancel()
	<-done
	// Dead-lettering happens on the broker after the return: give a late one time to show.
	time.Sleep(200 * time.Millisecond)
	if n := messages(q.DeadLetterQueue()); n != 0 {
		t.Errorf("dead-letter queue holds %d messages, want 0", n)
	}
	if n := messages(q.Name); n != 0 {
		t.Errorf("queue holds %d messages after every event was handled, want 0", n)
	}
	if n := consumed(t, reg, "dead_lettered"); n != 0 {
		t.Errorf("consumer dead-lettered %d messages, want 0", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range altered {
		t.Errorf("delivered altered: %s", a)
	}
	t.Logf("%d events handled %d times in all after %d connection cuts; %d republished", total, sum(handled), cuts, consumed(t, reg, "republished"))
}

// TestCrashLoopStillDeadLetters keeps the safety net the delivery limit is for: a message
// the handler never answers for, as when it crashes or hangs the consumer, is not
// republished, so each lost connection counts against the limit, and the broker
// dead-letters it after limit+1 of them, while the consumer goes on.
func TestCrashLoopStillDeadLetters(t *testing.T) {
	vhostURL := dbtest.NewVhost(t)
	admin := dbtest.Channel(t, vhostURL)
	const limit = 2
	q := rabbit.Queue{Name: "test.crash", Exchange: "test.events", Bindings: []string{"#"}, DeliveryLimit: limit}
	if err := rabbit.Declare(admin, q); err != nil {
		t.Fatal(err)
	}
	if err := admin.PublishWithContext(context.Background(), q.Exchange, "order.completed", false, false, amqp.Publishing{MessageId: "crash", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		entered int // handler calls: one per session, as each hangs until its session is lost
	)
	// The handler hangs until the session is lost: it never answers while its answer could
	// count, which is what a crash looks like from the queue's side.
	handler := func(ctx context.Context, ds []amqp.Delivery) ([]error, error) {
		mu.Lock()
		entered++
		mu.Unlock()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	link := newLinkCutter(t, vhostURL)
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	c := rabbit.NewConsumer(link.url, q, handler, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for i := range limit + 1 {
		dbtest.Eventually(t, 20*time.Second, fmt.Sprintf("the handler stuck on the message before cut %d", i+1), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return entered > i
		})
		link.cut()
	}
	dbtest.Eventually(t, 10*time.Second, "the message dead-lettered", func() bool { return readyMessages(t, admin, q.DeadLetterQueue()) == 1 })
	if n := consumed(t, reg, "republished"); n != 0 {
		t.Errorf("%d messages republished, want 0: the handler never answered", n)
	}
	dbtest.Eventually(t, 20*time.Second, "the consumer subscribed again", func() bool { return link.accepted() > limit+1 && c.Ready() })
}

// readyMessages is how many messages of the queue wait for a consumer: not those a consumer
// holds unacked.
func readyMessages(t *testing.T, ch *amqp.Channel, queue string) int {
	t.Helper()
	st, err := ch.QueueDeclarePassive(queue, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum})
	if err != nil {
		t.Fatal(err)
	}
	return st.Messages
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// linkCutter is a TCP proxy in front of the broker whose connections the test can cut, as a
// network failure or a killed peer would: faster than having the broker close them, and the
// broker sees the same thing, a connection gone with its unacked deliveries.
type linkCutter struct {
	url string // the broker URL through the proxy

	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	count int
}

func newLinkCutter(t *testing.T, brokerURL string) *linkCutter {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Host = ln.Addr().String()
	l := &linkCutter{url: u.String(), ln: ln}
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			broker, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			l.mu.Lock()
			l.conns = append(l.conns, client, broker)
			l.count++
			l.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(broker, client)
			go pipe(client, broker)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		l.cut()
	})
	return l
}

// cut closes every connection through the proxy.
func (l *linkCutter) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// accepted is how many connections the proxy has accepted.
func (l *linkCutter) accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// TestConsumerExportsEveryOutcomeFromTheStart: before any delivery, each outcome of the
// queue is a series at 0, so that the first dead-lettered message is an increase of 1 that
// rate() and increase() see, and a dashboard of dead-lettering shows 0 rather than nothing.
func TestConsumerExportsEveryOutcomeFromTheStart(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	rabbit.NewConsumer("amqp://127.0.0.1:1/", rabbit.Queue{Name: "test.outcomes"}, nil, slog.New(slog.DiscardHandler), reg)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "events_consumed_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["queue"] == "test.outcomes" && m.GetCounter().GetValue() == 0 {
				exported[labels["outcome"]] = true
			}
		}
	}
	for _, outcome := range []string{"acked", "dead_lettered", "retried", "republished"} {
		if !exported[outcome] {
			t.Errorf("no events_consumed_total{queue=\"test.outcomes\",outcome=%q} at 0 among %v", outcome, exported)
		}
	}
}
