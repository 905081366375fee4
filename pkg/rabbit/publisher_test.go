package rabbit_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/rabbit"
)

// TestReadinessDoesNotWaitForTheBroker points a publisher at a broker that accepts the TCP
// connection and then never answers: while its connection loop waits on that dial, /readyz
// answers at once, 503 with what the loop knows.
func TestReadinessDoesNotWaitForTheBroker(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	p := rabbit.NewPublisher("amqp://guest:guest@"+ln.Addr().String()+"/", "test.events")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close() // ends the dial under way
		}
		mu.Unlock()
		<-done
		p.Close()
	})

	e := echo.New()
	httpx.Health(e, map[string]httpx.Check{"broker": p.Check}, prometheus.NewRegistry())
	const limit = 500 * time.Millisecond
	for probe := range 3 {
		start := time.Now()
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		took := time.Since(start)
		t.Logf("probe %d: %d in %v: %s", probe, rec.Code, took, strings.TrimSpace(rec.Body.String()))
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "not connected") {
			t.Errorf("probe %d = %d %s, want 503 not connected", probe, rec.Code, rec.Body)
		}
		if took > limit {
			t.Errorf("probe %d took %v, want at most %v: a probe must not wait for a dial", probe, took, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPublisherConnectsWithoutPublishing runs a publisher against the real broker without
// publishing anything: its connection loop alone makes it ready.
func TestPublisherConnectsWithoutPublishing(t *testing.T) {
	t.Parallel()
	conn, err := amqp.Dial(dbtest.AMQPURL())
	if err != nil {
		t.Skipf("RabbitMQ is not reachable: %v", err)
	}
	defer conn.Close()
	exchange := dbtest.Name(t, "test.events")
	defer func() {
		if ch, err := conn.Channel(); err == nil {
			ch.ExchangeDelete(exchange, false, false)
		}
	}()
	p := rabbit.NewPublisher(dbtest.AMQPURL(), exchange)
	defer p.Close()
	if err := p.Check(context.Background()); err == nil {
		t.Fatal("a publisher that never ran reports itself connected")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.Check(context.Background())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not connected 10 s after Run started: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closedURL is a broker URL on a port nothing listens on: a node that is down.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "amqp://guest:guest@" + l.Addr().String() + "/"
}

// TestPublisherMovesToANodeThatAnswers gives a publisher two nodes of which the first is
// down: it publishes through the second; with every node down, the error names each.
func TestPublisherMovesToANodeThatAnswers(t *testing.T) {
	t.Parallel()
	ch := dbtest.Channel(t, dbtest.AMQPURL())
	exchange := dbtest.Name(t, "test.events")
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.ExchangeDelete(exchange, false, false) })
	if err := ch.QueueBind(q.Name, "#", exchange, false, nil); err != nil {
		t.Fatal(err)
	}

	p := rabbit.NewPublisher(closedURL(t)+", "+dbtest.AMQPURL(), exchange)
	defer p.Close()
	if err := p.Publish(context.Background(), []rabbit.Message{{RoutingKey: "k", MessageID: "m1", Body: []byte("{}")}}); err != nil {
		t.Fatalf("publish with the first node down: %v", err)
	}
	if _, ok, err := ch.Get(q.Name, true); err != nil || !ok {
		t.Fatalf("the message is not in the queue: ok=%v err=%v", ok, err)
	}

	down := rabbit.NewPublisher(closedURL(t)+","+closedURL(t), exchange)
	defer down.Close()
	err = down.Publish(context.Background(), []rabbit.Message{{RoutingKey: "k", MessageID: "m2", Body: []byte("{}")}})
	if err == nil || !strings.Contains(err.Error(), "node 1:") || !strings.Contains(err.Error(), "node 2:") {
		t.Fatalf("publish with every node down: %v; want each node's error", err)
	}
}
