package system_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/tests/system/internal/servers"
)

// The fault and chaos tests stop, kill and restart PostgreSQL and RabbitMQ, so they run on
// servers of their own, never the machine's: one PostgreSQL and a three-node RabbitMQ
// cluster (the services get every node's URL), started on first use under
// SYSTEM_SERVERS_DIR (make fault and make chaos set it to a folder of the repository's run
// directory; a temporary directory otherwise) and stopped when the tests end, or two
// minutes before their timeout. The run's directory is removed when every test passed and kept,
// logs and data, when one failed.
var (
	ownOnce sync.Once
	own     *ownServers
	ownErr  error

	pairOnce sync.Once
	pairErr  error
)

type ownServers struct {
	dir    string
	pg     *servers.Postgres
	rabbit *servers.RabbitCluster
	pair   *servers.PostgresPair // started by startOwnPair, for the failover tests
}

// brokerNodes is the size of the test cluster: odd, so that a majority survives a node.
const brokerNodes = 3

// startOwnServers starts the servers once per test binary, failing the test if they cannot
// start: a fault test that ran against nothing must not pass.
func startOwnServers(t *testing.T) *ownServers {
	t.Helper()
	ownOnce.Do(func() {
		base := os.Getenv("SYSTEM_SERVERS_DIR")
		if base == "" {
			base = os.TempDir()
		}
		if ownErr = os.MkdirAll(base, 0o755); ownErr != nil {
			return
		}
		var dir string
		if dir, ownErr = os.MkdirTemp(base, "servers-"); ownErr != nil {
			return
		}
		// PostgreSQL runs as the postgres user, which must reach its data directory.
		if ownErr = os.Chmod(dir, 0o755); ownErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		o := &ownServers{dir: dir}
		if o.pg, ownErr = servers.StartPostgres(ctx, filepath.Join(dir, "postgresql")); ownErr != nil {
			return
		}
		if o.rabbit, ownErr = servers.StartRabbitCluster(ctx, filepath.Join(dir, "rabbitmq"), brokerNodes); ownErr != nil {
			o.pg.Close()
			return
		}
		own = o
	})
	if ownErr != nil {
		t.Fatalf("start the test's own PostgreSQL and RabbitMQ: %v", ownErr)
	}
	return own
}

// startOwnPair starts, once, a PostgreSQL pair with automatic failover beside the other
// servers (in the same directory), for the failover tests.
func startOwnPair(t *testing.T) *ownServers {
	t.Helper()
	o := startOwnServers(t)
	pairOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		o.pair, pairErr = servers.StartPostgresPair(ctx, filepath.Join(o.dir, "postgresql-pair"))
	})
	if pairErr != nil {
		t.Fatalf("start the test's own PostgreSQL pair: %v", pairErr)
	}
	return o
}

// stopOwnServers stops what startOwnServers and startOwnPair started, once; TestMain calls
// it after the tests.
func stopOwnServers(passed bool) {
	stopOnce.Do(func() {
		if own == nil {
			return
		}
		if own.pair != nil {
			own.pair.Close()
		}
		own.rabbit.Close()
		own.pg.Close()
		if passed {
			os.RemoveAll(own.dir)
		}
	})
}

var stopOnce sync.Once

// stopOwnServersBeforeTimeout stops the servers, and the Prometheus a test started, two
// minutes before the binary's -test.timeout ends it (Close takes at most about 90 s): a
// binary that times out exits without returning to TestMain or running the tests' cleanups,
// and would leave its servers running on the machine. A test still running then fails, its
// servers gone. TestMain calls it after flag.Parse.
func stopOwnServersBeforeTimeout() {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return
	}
	timeout, ok := f.Value.(flag.Getter).Get().(time.Duration)
	if !ok || timeout <= 4*time.Minute {
		return
	}
	time.AfterFunc(timeout-2*time.Minute, func() {
		fmt.Fprintf(os.Stderr, "the tests are about to reach their %v timeout: stopping their own servers\n", timeout)
		stopPrometheuses()
		stopOwnServers(false)
	})
}

// servers are the servers as dbtest knows them: the services get every broker node's URL
// and move to another node when theirs goes; rabbitmqctl runs on the first node that
// answers.
func (o *ownServers) servers() dbtest.Servers {
	urls := make([]string, o.rabbit.Len())
	for i := range urls {
		urls[i] = o.rabbit.URL(i)
	}
	return dbtest.Servers{
		AdminURL:    o.pg.AdminURL(),
		AMQPURL:     strings.Join(urls, ","),
		Rabbitmqctl: o.anyNodeCtl,
	}
}

// anyNodeCtl runs rabbitmqctl on the first node where it succeeds.
func (o *ownServers) anyNodeCtl(ctx context.Context, args ...string) ([]byte, error) {
	var errs []error
	for i := range o.rabbit.Len() {
		out, err := o.rabbit.Ctl(ctx, i, args...)
		if err == nil {
			return out, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// newFaultSystem is newSystem on the test's own servers.
func newFaultSystem(t *testing.T, env map[string]string) (*system, *ownServers) {
	t.Helper()
	o := startOwnServers(t)
	return newSystemOn(t, o.servers(), env), o
}

// newFailoverSystem is newSystem on the test's own PostgreSQL pair (the services connect to
// both nodes, to whichever is writable) and broker.
func newFailoverSystem(t *testing.T, env map[string]string) (*system, *ownServers) {
	t.Helper()
	o := startOwnPair(t)
	srv := o.servers()
	srv.AdminURL = o.pair.AdminURL()
	return newSystemOn(t, srv, env), o
}

// healPair starts every node of the pair and its monitor and waits until one node is the
// primary and the other its standby, failing the test if that does not come within five
// minutes; it returns the primary. A killed primary rejoins through pg_rewind or, when that
// fails, a fresh base backup of the other node: after ten minutes of chaos that took more
// than two minutes here.
func (o *ownServers) healPair(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := o.pair.StartMonitor(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := o.pair.StartNode(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	primary, err := o.pair.WaitHealthy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return primary
}

// stopBroker stops the RabbitMQ application on every node: the whole broker is down, as
// the services see it. startBroker starts it again on every node together (a node waits
// at boot for the one that stopped last).
func (o *ownServers) stopBroker(t *testing.T) {
	t.Helper()
	o.everyNode(t, func(ctx context.Context, i int) error {
		_, err := o.rabbit.Ctl(ctx, i, "stop_app")
		return err
	})
}

func (o *ownServers) startBroker(t *testing.T) {
	t.Helper()
	o.everyNode(t, func(ctx context.Context, i int) error {
		_, err := o.rabbit.Ctl(ctx, i, "start_app")
		return err
	})
}

// everyNode runs do for every broker node at once and fails the test if one fails.
func (o *ownServers) everyNode(t *testing.T, do func(ctx context.Context, node int) error) {
	t.Helper()
	nodes := make([]int, o.rabbit.Len())
	for i := range nodes {
		nodes[i] = i
	}
	o.onNodes(t, nodes, do)
}

func (o *ownServers) onNodes(t *testing.T, nodes []int, do func(ctx context.Context, node int) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errs := make(chan error, len(nodes))
	for _, i := range nodes {
		go func() { errs <- do(ctx, i) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// killBrokerNodes kills the given nodes with SIGKILL.
func (o *ownServers) killBrokerNodes(nodes ...int) {
	for _, i := range nodes {
		o.rabbit.Kill(i)
	}
}

// startBrokerNodes starts the given nodes together (nodes killed together each wait for
// the other at boot) and fails the test unless all are back.
func (o *ownServers) startBrokerNodes(t *testing.T, nodes ...int) {
	t.Helper()
	o.onNodes(t, nodes, o.rabbit.Start)
}

// healBroker starts every node that is down and the application on every node, together,
// for a test's cleanup; what fails here fails the next test's start.
func (o *ownServers) healBroker() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i := range o.rabbit.Len() {
		wg.Go(func() {
			if !o.rabbit.Running(i) {
				o.rabbit.Start(ctx, i)
			}
			o.rabbit.Ctl(ctx, i, "start_app")
		})
	}
	wg.Wait()
}

// closeConnections has the broker close every connection of vhost, on whichever node it
// is; it fails harmlessly when there is none.
func (o *ownServers) closeConnections(vhost, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o.anyNodeCtl(ctx, "close_all_connections", "-p", vhost, reason)
}

// requireReplicatedQueues fails the test unless every queue of vhost is a quorum queue
// with a member on every broker node: declared once the cluster had formed, as the
// services do it.
func (o *ownServers) requireReplicatedQueues(t *testing.T, vhost string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := o.anyNodeCtl(ctx, "list_queues", "-q", "-p", vhost, "name", "type", "members", "--formatter", "json")
	if err != nil {
		t.Fatal(err)
	}
	var queues []struct {
		Name, Type string
		Members    []string
	}
	if err := json.Unmarshal(out, &queues); err != nil {
		t.Fatalf("list_queues: %v\n%s", err, out)
	}
	if len(queues) == 0 {
		t.Fatal("the services declared no queue")
	}
	for _, q := range queues {
		if q.Type != "quorum" || len(q.Members) != o.rabbit.Len() {
			t.Errorf("queue %s: %s with members %v; want a quorum queue on all %d nodes", q.Name, q.Type, q.Members, o.rabbit.Len())
		}
	}
}

// restartPostgres restarts PostgreSQL in mode fast (sessions are closed) or immediate
// (like a crash: recovery from the WAL at start).
func (o *ownServers) restartPostgres(t *testing.T, mode string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := o.pg.Restart(ctx, mode); err != nil {
		t.Fatal(err)
	}
}

// vhostOf returns the virtual host of a broker URL (the first, of a list).
func vhostOf(t *testing.T, amqpURL string) string {
	t.Helper()
	first, _, _ := strings.Cut(amqpURL, ",")
	u, err := url.Parse(first)
	if err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimPrefix(u.Path, "/"); v != "" {
		return v
	}
	return "/"
}
