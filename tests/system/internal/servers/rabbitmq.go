package servers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/order-system/order-system/tools/localrun"
)

// rabbitBin holds Debian's RabbitMQ programs themselves: the ones on PATH are wrappers
// that switch to the rabbitmq user and to the machine's node and cookie.
const rabbitBin = "/usr/lib/rabbitmq/bin"

// RabbitCluster is a RabbitMQ cluster of nodes on this host, all of its own: node names,
// AMQP and distribution ports, data directories, an Erlang cookie, an epmd (the Erlang
// port mapper the nodes find each other through) and a user with a random password. The
// nodes form the cluster through classic-config peer discovery and pause when they are in a
// minority, as a production cluster would.
type RabbitCluster struct {
	dir      string
	epmd     *child
	epmdPort int
	user     string
	password string

	mu     sync.Mutex
	nodes  []*rabbitNode
	closed bool // after Close, nothing starts again
}

type rabbitNode struct {
	name     string // node@localhost
	dir      string
	amqpPort int
	distPort int
	proc     *child // nil while the node is down
}

// StartRabbitCluster starts n nodes under dir and waits until they form one cluster.
func StartRabbitCluster(ctx context.Context, dir string, n int) (*RabbitCluster, error) {
	if _, err := os.Stat(filepath.Join(rabbitBin, "rabbitmq-server")); err != nil {
		return nil, fmt.Errorf("RabbitMQ is not installed: %w", err)
	}
	c := &RabbitCluster{dir: dir, user: "test-" + randomHex(4), password: randomHex(16)}
	if err := c.prepare(n); err != nil {
		return nil, err
	}
	var err error
	if c.epmd, err = startChild(filepath.Join(dir, "epmd.log"), nil, c.env(), "epmd", "-port", strconv.Itoa(c.epmdPort)); err != nil {
		return nil, fmt.Errorf("start epmd: %w", err)
	}
	// The first node forms the cluster; the others then join it. Started together, two
	// nodes that do not see each other yet could each form a cluster of their own.
	if err := c.Start(ctx, 0); err != nil {
		c.Close()
		return nil, err
	}
	errs := make(chan error, n)
	for i := 1; i < n; i++ {
		go func() { errs <- c.Start(ctx, i) }()
	}
	for i := 1; i < n; i++ {
		err = errors.Join(err, <-errs)
	}
	if err == nil {
		_, err = c.Ctl(ctx, 0, "await_online_nodes", strconv.Itoa(n), "--timeout", "120")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// prepare writes the cookie, the empty files that keep the machine's settings out, and
// each node's configuration.
func (c *RabbitCluster) prepare(n int) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	var err error
	if c.epmdPort, err = localrun.FreePort(); err != nil {
		return err
	}
	for i := range n {
		node := &rabbitNode{name: fmt.Sprintf("test%s%d@localhost", randomHex(3), i), dir: filepath.Join(c.dir, fmt.Sprintf("node%d", i))}
		if node.amqpPort, err = localrun.FreePort(); err != nil {
			return err
		}
		if node.distPort, err = localrun.FreePort(); err != nil {
			return err
		}
		c.nodes = append(c.nodes, node)
	}
	files := map[string]string{
		".erlang.cookie":    strings.ToUpper(randomHex(10)),
		"rabbitmq-env.conf": "",
		"enabled_plugins":   "[].\n",
	}
	for _, node := range c.nodes {
		if err := os.MkdirAll(node.dir, 0o755); err != nil {
			return err
		}
		files[filepath.Join(filepath.Base(node.dir), "rabbitmq.conf")] = c.config(node)
	}
	for name, text := range files {
		mode := os.FileMode(0o644)
		if name == ".erlang.cookie" {
			mode = 0o400 // Erlang refuses a cookie others can read
		}
		if err := os.WriteFile(filepath.Join(c.dir, name), []byte(text), mode); err != nil {
			return err
		}
	}
	return nil
}

func (c *RabbitCluster) config(node *rabbitNode) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listeners.tcp.1 = 127.0.0.1:%d\n", node.amqpPort)
	fmt.Fprintf(&b, "default_user = %s\ndefault_pass = %s\nloopback_users = none\n", c.user, c.password)
	b.WriteString("cluster_formation.peer_discovery_backend = classic_config\n")
	for i, peer := range c.nodes {
		fmt.Fprintf(&b, "cluster_formation.classic_config.nodes.%d = %s\n", i+1, peer.name)
	}
	b.WriteString("cluster_partition_handling = pause_minority\nlog.console = false\nlog.file.level = info\n")
	return b.String()
}

// env is the environment of the nodes and of rabbitmqctl: the machine's RabbitMQ and Erlang
// settings removed, the cluster's own in their place.
func (c *RabbitCluster) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RABBITMQ_") && !strings.HasPrefix(kv, "ERL_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env,
		"HOME="+c.dir, // the Erlang cookie's home, for the nodes and the CLI alike
		"ERL_EPMD_PORT="+strconv.Itoa(c.epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		// Without our epmd, fail rather than start an epmd daemon nobody would stop.
		"ERL_FLAGS=-start_epmd false",
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(c.dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(c.dir, "enabled_plugins"),
	)
}

func (c *RabbitCluster) nodeEnv(node *rabbitNode) []string {
	return append(c.env(),
		"RABBITMQ_NODENAME="+node.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(node.amqpPort),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(node.distPort),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(node.dir, "rabbitmq.conf"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(node.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(node.dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(node.dir, "pid"),
		"ERL_FLAGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
	)
}

// Len is the number of nodes.
func (c *RabbitCluster) Len() int { return len(c.nodes) }

// URL is the AMQP URL of node i.
func (c *RabbitCluster) URL(i int) string {
	u := url.URL{Scheme: "amqp", User: url.UserPassword(c.user, c.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.nodes[i].amqpPort)), Path: "/"}
	return u.String()
}

// Ctl runs rabbitmqctl against node i.
func (c *RabbitCluster) Ctl(ctx context.Context, i int, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(rabbitBin, "rabbitmqctl"), append([]string{"-n", c.nodes[i].name}, args...)...)
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("rabbitmqctl -n %s %s: %w\n%s", c.nodes[i].name, strings.Join(args, " "), err, out)
	}
	return out, nil
}

// Start starts node i (after Kill, it rejoins the cluster) and waits until it has booted.
func (c *RabbitCluster) Start(ctx context.Context, i int) error {
	c.mu.Lock()
	node := c.nodes[i]
	if c.closed {
		c.mu.Unlock()
		return errors.New("the cluster is closed")
	}
	if node.proc != nil && !node.proc.Exited() {
		c.mu.Unlock()
		return nil
	}
	proc, err := startChild(filepath.Join(node.dir, "server.log"), nil, c.nodeEnv(node), filepath.Join(rabbitBin, "rabbitmq-server"))
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("start %s: %w", node.name, err)
	}
	node.proc = proc
	c.mu.Unlock()
	// await_startup fails at once while the node is not yet registered with epmd.
	for {
		attempt, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := c.Ctl(attempt, i, "await_startup", "--timeout", "25")
		cancel()
		switch {
		case err == nil:
			return nil
		case proc.Exited():
			return fmt.Errorf("%s exited while starting; see %s", node.name, filepath.Join(node.dir, "log"))
		case ctx.Err() != nil:
			return fmt.Errorf("%s did not start: %w", node.name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Kill kills node i with SIGKILL, as a machine that loses power, and waits until it is gone.
func (c *RabbitCluster) Kill(i int) {
	c.mu.Lock()
	proc := c.nodes[i].proc
	c.nodes[i].proc = nil
	c.mu.Unlock()
	if proc != nil {
		proc.Kill()
	}
}

// Running reports whether node i's process runs (it may be paused in a minority).
func (c *RabbitCluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].proc != nil && !c.nodes[i].proc.Exited()
}

// Close stops every node, then epmd, within about 15 s; nothing starts again after it.
func (c *RabbitCluster) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	var wg sync.WaitGroup
	for i := range c.nodes {
		if !c.Running(i) {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c.Ctl(ctx, i, "stop") // a node that will not stop is killed below
			c.Kill(i)
		})
	}
	wg.Wait()
	if c.epmd != nil {
		c.epmd.Kill()
	}
}
