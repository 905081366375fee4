package rabbit

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// dialTimeout bounds the TCP connect and the AMQP handshake, so that a broker that
// accepts connections but does not answer cannot hold a dial for long.
const dialTimeout = 5 * time.Second

// nodes are the brokers one connection may use: the nodes of a cluster, given as one URL or
// several separated by commas. A dial tries them in turn, starting with the node that
// answered last, so that a client stays on one node while it lives and moves to another
// when it dies or pauses in a minority.
type nodes struct {
	urls []string
	last atomic.Uint32 // the index of the node that answered last
}

func newNodes(urls string) *nodes {
	n := &nodes{}
	for _, u := range strings.Split(urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			n.urls = append(n.urls, u)
		}
	}
	return n
}

// dial connects to the first node that answers, naming the connection name in the broker's
// management views.
func (n *nodes) dial(name string) (*amqp.Connection, error) {
	if len(n.urls) == 0 {
		return nil, errors.New("dial broker: no broker URL")
	}
	var errs []error
	first := int(n.last.Load())
	for i := range n.urls {
		at := (first + i) % len(n.urls)
		conn, err := dialNode(n.urls[at], name)
		if err == nil {
			n.last.Store(uint32(at))
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("node %d: %w", at+1, err))
	}
	return nil, fmt.Errorf("dial broker: %w", errors.Join(errs...))
}

// reachAll dials every node and closes each connection at once: nil when all of them answered,
// else which did not. A node accepts connections once it has booted, and a node of the
// bundled cluster boots only once it has joined the others (or, the first one, after finding
// none), so every node answering means the cluster has all its nodes.
func (n *nodes) reachAll(name string) error {
	var errs []error
	for i, u := range n.urls {
		conn, err := dialNode(u, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", i+1, err))
			continue
		}
		_ = conn.Close()
	}
	return errors.Join(errs...)
}

func dialNode(url, name string) (*amqp.Connection, error) {
	return amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(dialTimeout), Properties: amqp.Table{"connection_name": name}})
}
