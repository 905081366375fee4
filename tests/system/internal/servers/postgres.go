// Package servers starts PostgreSQL and RabbitMQ servers of a test's own: a fault test may
// stop, kill and restart them, which it must never do to the machine's. Each server gets
// its own free ports on 127.0.0.1, its own data directory under the directory the caller
// gives, and its own credentials, and Close stops everything that was started.
package servers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/order-system/order-system/tools/localrun"
)

// Postgres is a PostgreSQL server in a data directory of its own, run by the operating
// system's postgres user (initdb refuses root), listening on 127.0.0.1 only.
type Postgres struct {
	bin      string // the directory holding initdb, pg_ctl and postgres
	dir      string // the data directory
	port     int
	password string // the superuser's, required for TCP connections
	as       *syscall.Credential
	closed   atomic.Bool // after Close, Start refuses
}

// StartPostgres creates a cluster under dir (which must not exist yet, in a directory the
// postgres user can traverse) and starts it.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	as, err := credentialOf("postgres")
	if err != nil {
		return nil, err
	}
	port, err := localrun.FreePort()
	if err != nil {
		return nil, err
	}
	p := &Postgres{bin: bin, dir: filepath.Join(dir, "data"), port: port, password: randomHex(16), as: as}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := chown(dir, as); err != nil {
		return nil, err
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(p.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := chown(pwfile, as); err != nil {
		return nil, err
	}
	defer os.Remove(pwfile)
	// Connections come over TCP only and must know the password; the superuser keeps the
	// usual name, so that URLs built from AdminURL read as elsewhere.
	if err := p.run(ctx, "initdb", "-D", p.dir, "-U", "postgres", "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=peer", "--encoding=UTF8", "--no-instructions"); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 200\n", p.port)
	if err := appendFile(filepath.Join(p.dir, "postgresql.conf"), conf); err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// AdminURL is the superuser's connection to the postgres database.
func (p *Postgres) AdminURL() string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", p.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)), Path: "/postgres", RawQuery: "sslmode=disable"}
	return u.String()
}

// Start starts the server and waits until it accepts connections.
func (p *Postgres) Start(ctx context.Context) error {
	if p.closed.Load() {
		return errors.New("the server is closed")
	}
	return p.run(ctx, "pg_ctl", "-D", p.dir, "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "120", "start")
}

// Stop stops the server: mode fast closes the sessions and checkpoints, immediate stops
// like a crash (the next start recovers from the WAL).
func (p *Postgres) Stop(ctx context.Context, mode string) error {
	return p.run(ctx, "pg_ctl", "-D", p.dir, "-m", mode, "-w", "-t", "120", "stop")
}

// Restart stops the server in mode and starts it again.
func (p *Postgres) Restart(ctx context.Context, mode string) error {
	if err := p.Stop(ctx, mode); err != nil {
		return err
	}
	return p.Start(ctx)
}

// Running reports whether the server is up, as pg_ctl status sees it.
func (p *Postgres) Running(ctx context.Context) bool {
	return p.run(ctx, "pg_ctl", "-D", p.dir, "status") == nil
}

// Close stops the server if it runs, within about 30 s (a server that does not stop fast
// is stopped immediately); Start refuses after it. The data directory stays for a look
// after the test.
func (p *Postgres) Close() error {
	p.closed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !p.Running(ctx) {
		return nil
	}
	if err := p.run(ctx, "pg_ctl", "-D", p.dir, "-m", "fast", "-w", "-t", "15", "stop"); err == nil {
		return nil
	}
	return p.Stop(ctx, "immediate")
}

// run runs one of PostgreSQL's programs as the postgres user.
func (p *Postgres) run(ctx context.Context, program string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, program), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.as}
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", program, strings.Join(args, " "), err, out)
	}
	return nil
}

// postgresBin finds the newest installed PostgreSQL's programs, as Debian lays them out.
func postgresBin() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		if path, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(path), nil
		}
		return "", errors.New("PostgreSQL's initdb is not installed")
	}
	sort.Slice(found, func(i, j int) bool { return versionOf(found[i]) < versionOf(found[j]) })
	return filepath.Dir(found[len(found)-1]), nil
}

func versionOf(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// credentialOf returns the credential to run a child as name; the current user's when it
// is not root (the child then runs as whoever runs the test).
func credentialOf(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs the %s user: %w", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// chown gives path to the user of as, if any.
func chown(path string, as *syscall.Credential) error {
	if as == nil {
		return nil
	}
	return os.Chown(path, int(as.Uid), int(as.Gid))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
