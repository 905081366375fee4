package servers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/order-system/order-system/tools/localrun"
)

// PostgresPair is PostgreSQL with automatic failover, as pg_auto_failover runs it: a
// monitor and two nodes, a primary and a synchronous standby (a commit returns once the
// standby has it, so a failover loses no commit a client was told of). Each node is a keeper
// process, pg_autoctl, that runs its postmaster and carries out the monitor's decisions: when
// the primary stops answering, the monitor promotes the standby; a killed node that starts
// again rejoins as the standby.
//
// Every server listens on 127.0.0.1 only, and its unix socket in the pair's own directory.
// Connections from 127.0.0.1 are trusted, as pg_autoctl sets a pair up with --auth trust:
// the pair is a test's, on free ports, for the test's lifetime.
type PostgresPair struct {
	dir         string
	pgautoctl   string
	as          *syscall.Credential
	env         []string
	monitorPort int

	mu      sync.Mutex
	monitor *child
	nodes   []*pairNode
	closed  bool // after Close, nothing starts again
}

type pairNode struct {
	name string
	dir  string
	port int
	proc *child // nil while the node is down
}

// The monitor's health checks, shortened from their defaults (5 s period, 20 s before a node
// is unhealthy, 30 s before a lost primary is taken as demoted) so that a failover takes
// seconds, not a minute; the keepers' network partition timeout (20 s by default: a primary
// that sees neither monitor nor standby that long demotes itself) stays below the demote
// timeout, which is what makes the shortcut safe.
const (
	monitorSettings = `
pgautofailover.health_check_period = 1000
pgautofailover.health_check_timeout = 1000
pgautofailover.health_check_max_retries = 1
pgautofailover.health_check_retry_delay = 500
pgautofailover.node_considered_unhealthy_timeout = 2000
pgautofailover.startup_grace_period = 3000
pgautofailover.primary_demote_timeout = 8000
`
	networkPartitionTimeout = "5" // seconds
)

// StartPostgresPair creates the monitor and the two nodes under dir (which must not exist
// yet, in a directory the postgres user can traverse) and waits until the first node is
// the primary and the second its streaming standby.
func StartPostgresPair(ctx context.Context, dir string) (*PostgresPair, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	pgautoctl, err := exec.LookPath("pg_autoctl")
	if err != nil {
		return nil, fmt.Errorf("pg_auto_failover is not installed: %w", err)
	}
	as, err := credentialOf("postgres")
	if err != nil {
		return nil, err
	}
	run := filepath.Join(dir, "run")
	p := &PostgresPair{dir: dir, pgautoctl: pgautoctl, as: as, env: []string{
		"PATH=" + bin + ":/usr/bin:/bin",
		"HOME=" + dir,
		"LANG=C.UTF-8",
		// pg_autoctl keeps its configuration and state under the XDG directories, and
		// puts the servers' sockets where its own test suite does.
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "share"),
		"XDG_RUNTIME_DIR=" + run,
		"PG_REGRESS_SOCK_DIR=" + run,
		"PGHOST=" + run,
	}}
	for _, d := range []string{dir, run} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if err := chown(d, as); err != nil {
			return nil, err
		}
	}
	if p.monitorPort, err = localrun.FreePort(); err != nil {
		return nil, err
	}
	for i := range 2 {
		node := &pairNode{name: fmt.Sprintf("node%d", i), dir: filepath.Join(dir, fmt.Sprintf("node%d", i))}
		if node.port, err = localrun.FreePort(); err != nil {
			return nil, err
		}
		p.nodes = append(p.nodes, node)
	}
	if err := p.start(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *PostgresPair) start(ctx context.Context) error {
	monitor := filepath.Join(p.dir, "monitor")
	if err := p.pgAutoctl(ctx, "create", "monitor", "--pgdata", monitor, "--pgport", strconv.Itoa(p.monitorPort),
		"--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl"); err != nil {
		return err
	}
	if err := p.pgAutoctl(ctx, "config", "set", "--pgdata", monitor, "postgresql.listen_addresses", "127.0.0.1"); err != nil {
		return err
	}
	if err := appendFile(filepath.Join(monitor, "postgresql.conf"), monitorSettings); err != nil {
		return err
	}
	if err := p.StartMonitor(ctx); err != nil {
		return err
	}
	for i, node := range p.nodes {
		// The first node becomes the primary; the second copies it and becomes its standby.
		if err := p.pgAutoctl(ctx, "create", "postgres", "--pgdata", node.dir, "--pgport", strconv.Itoa(node.port),
			"--listen", "127.0.0.1", "--hostname", "127.0.0.1", "--name", node.name, "--auth", "trust", "--no-ssl",
			"--monitor", p.monitorURL()); err != nil {
			return err
		}
		if err := p.pgAutoctl(ctx, "config", "set", "--pgdata", node.dir, "timeout.network_partition_timeout", networkPartitionTimeout); err != nil {
			return err
		}
		if err := p.StartNode(ctx, i); err != nil {
			return err
		}
	}
	_, err := p.WaitHealthy(ctx)
	return err
}

// AdminURL is the superuser's connection to the postgres database, through whichever node
// is the writable primary: both hosts, tried in turn, and target_session_attrs=read-write,
// as the services connect to a pair.
func (p *PostgresPair) AdminURL() string {
	hosts, ports := make([]string, len(p.nodes)), make([]string, len(p.nodes))
	for i, node := range p.nodes {
		hosts[i], ports[i] = "127.0.0.1", strconv.Itoa(node.port)
	}
	q := url.Values{"host": {strings.Join(hosts, ",")}, "port": {strings.Join(ports, ",")},
		"target_session_attrs": {"read-write"}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Host: "", Path: "/postgres", RawQuery: q.Encode()}).String()
}

func (p *PostgresPair) monitorURL() string {
	return fmt.Sprintf("postgres://autoctl_node@127.0.0.1:%d/pg_auto_failover?sslmode=disable", p.monitorPort)
}

// State is what the monitor knows of the pair: each node's reported and assigned states
// ("primary", "secondary", "wait_primary", "stop_replication", "demoted", ...).
type State struct {
	Reported, Assigned [2]string
}

// Primary is the node that is the primary, reported and assigned, or -1.
func (s State) Primary() int {
	for i := range s.Reported {
		if s.Reported[i] == s.Assigned[i] && (s.Reported[i] == "primary" || s.Reported[i] == "wait_primary" || s.Reported[i] == "single") {
			return i
		}
	}
	return -1
}

func (s State) String() string {
	return fmt.Sprintf("node0 %s→%s, node1 %s→%s", s.Reported[0], s.Assigned[0], s.Reported[1], s.Assigned[1])
}

// State asks the monitor.
func (p *PostgresPair) State(ctx context.Context) (State, error) {
	db, err := sql.Open("postgres", p.monitorURL()+"&connect_timeout=2")
	if err != nil {
		return State{}, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT nodename, reportedstate, goalstate FROM pgautofailover.node`)
	if err != nil {
		return State{}, err
	}
	defer rows.Close()
	var s State
	for rows.Next() {
		var name, reported, assigned string
		if err := rows.Scan(&name, &reported, &assigned); err != nil {
			return State{}, err
		}
		for i, node := range p.nodes {
			if node.name == name {
				s.Reported[i], s.Assigned[i] = reported, assigned
			}
		}
	}
	return s, rows.Err()
}

// WaitHealthy waits until one node is the primary and the other its standby, as the
// monitor sees them, and returns the primary's index.
func (p *PostgresPair) WaitHealthy(ctx context.Context) (int, error) {
	var last State
	var err error
	for {
		last, err = p.State(ctx)
		if err == nil {
			if primary := last.Primary(); primary >= 0 && last.Reported[primary] == "primary" &&
				last.Reported[1-primary] == "secondary" && last.Assigned[1-primary] == "secondary" {
				return primary, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("the pair is not healthy (%v, last error %v): %w", last, err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// StartMonitor starts the monitor's keeper (after KillMonitor, or at first).
func (p *PostgresPair) StartMonitor(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("the pair is closed")
	}
	if p.monitor != nil && !p.monitor.Exited() {
		return nil
	}
	proc, err := startChild(filepath.Join(p.dir, "monitor.log"), p.as, p.env, p.pgautoctl, "run", "--pgdata", filepath.Join(p.dir, "monitor"))
	if err != nil {
		return fmt.Errorf("start the monitor: %w", err)
	}
	p.monitor = proc
	return nil
}

// KillMonitor kills the monitor's keeper, its server and the server's backends with SIGKILL.
func (p *PostgresPair) KillMonitor() {
	p.mu.Lock()
	proc := p.monitor
	p.monitor = nil
	p.mu.Unlock()
	if proc != nil {
		proc.killTree()
	}
}

// StartNode starts node i's keeper, which starts its server in the role the monitor gives.
func (p *PostgresPair) StartNode(ctx context.Context, i int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("the pair is closed")
	}
	node := p.nodes[i]
	if node.proc != nil && !node.proc.Exited() {
		return nil
	}
	proc, err := startChild(filepath.Join(p.dir, node.name+".log"), p.as, p.env, p.pgautoctl, "run", "--pgdata", node.dir)
	if err != nil {
		return fmt.Errorf("start %s: %w", node.name, err)
	}
	node.proc = proc
	return nil
}

// KillNode kills node i's keeper, its postmaster and the postmaster's backends with
// SIGKILL, as a machine that loses power: no write commits on it after KillNode returns.
func (p *PostgresPair) KillNode(i int) {
	p.mu.Lock()
	proc := p.nodes[i].proc
	p.nodes[i].proc = nil
	p.mu.Unlock()
	if proc != nil {
		proc.killTree()
	}
}

// Close stops the nodes, then the monitor, within about 40 s; nothing starts again after
// it. The directory stays for a look after the test.
func (p *PostgresPair) Close() {
	p.mu.Lock()
	p.closed = true
	procs := []*child{}
	for _, node := range p.nodes {
		if node.proc != nil {
			procs = append(procs, node.proc)
		}
	}
	monitor := p.monitor
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, proc := range procs {
		wg.Go(func() { proc.Stop(20 * time.Second) }) // a keeper stops its server on SIGTERM
	}
	wg.Wait()
	if monitor != nil {
		monitor.Stop(20 * time.Second)
	}
}

// pgAutoctl runs one pg_autoctl command as the postgres user and waits for it.
func (p *PostgresPair) pgAutoctl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, p.pgautoctl, args...)
	cmd.Env = p.env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.as}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_autoctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}
