package localrun

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spec says what to start and how.
type Spec struct {
	// Name names the process in messages.
	Name    string
	Program string
	Args    []string
	// Env is the whole environment; nil passes the caller's.
	Env []string
	// Log is the file its output is appended to.
	Log string
	// Dir is its working directory; empty is the caller's.
	Dir string
	// As runs it as another user (a database server refuses to run as root); nil is the
	// caller's.
	As *syscall.Credential
	// Detach starts it in a session of its own, to outlive the caller (make run leaves the
	// services running). Otherwise it stays in the caller's session and, with DieWithCaller,
	// is killed when the caller dies without stopping it (a test binary's panic or timeout);
	// with Group it leads a process group of its own, which Kill ends with its helpers.
	Detach        bool
	DieWithCaller bool
	Group         bool
}

// Process is a program started by Start, with the goroutine that reaps it: it is signalled
// only while not yet reaped, so that its pid cannot belong to another process by then.
type Process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the program the spec names.
func Start(spec Spec) (*Process, error) {
	log, err := os.OpenFile(spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	defer log.Close() // the process has its own descriptor
	cmd := exec.Command(spec.Program, spec.Args...)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = spec.Env, log, log, spec.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: spec.Detach, Setpgid: spec.Group && !spec.Detach, Credential: spec.As}
	if spec.DieWithCaller && !spec.Detach {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p := &Process{name: spec.Name, log: spec.Log, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process; it fails once the process has exited.
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return fmt.Errorf("%s has exited", p.name)
	}
	return p.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM and waits until the process exits, killing it (its group, when it leads
// one) after grace.
func (p *Process) Stop(grace time.Duration) {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// Kill sends SIGKILL to the process's group when it leads one (an Erlang node's helpers,
// a PostgreSQL keeper's postmaster), to the process alone otherwise, and waits until it is
// reaped.
func (p *Process) Kill() {
	if !p.Exited() {
		if pgid, err := syscall.Getpgid(p.Pid()); err == nil && pgid == p.Pid() {
			syscall.Kill(-pgid, syscall.SIGKILL)
		} else {
			p.cmd.Process.Kill()
		}
	}
	<-p.done
}

// Tail is the last n lines of the process's log.
func (p *Process) Tail(n int) string { return Tail(p.log, n) }

// Tail is the last n lines of the file at path.
func Tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ErrExited is why WaitReady gave up when the process exited before it was ready.
var ErrExited = errors.New("exited during start-up")

// WaitReady polls url until it answers 200, and fails with the end of the process's log when
// the process exits first or ctx ends.
func (p *Process) WaitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s %w; its last log lines:\n%s", p.name, ErrExited, p.Tail(25))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (%s): %w; its last log lines:\n%s", p.name, url, context.Cause(ctx), p.Tail(25))
		case <-tick.C:
		}
	}
}

// WritePidFile records the process as "<pid> <start time>", the start time in clock ticks
// since boot from /proc: the pid file scripts/lib.sh's stop_pid reads, which signals the
// process only while that pid still has that start time (a pid file left over from before
// a reboot never names another process).
func (p *Process) WritePidFile(path string) error {
	start, err := startTime(p.Pid())
	if err != nil {
		return fmt.Errorf("pid file of %s: %w", p.name, err)
	}
	return os.WriteFile(path, []byte(strconv.Itoa(p.Pid())+" "+start+"\n"), 0o644)
}

// startTime is field 22 of /proc/<pid>/stat; the command name before it, in parentheses, may
// hold spaces, so the fields are counted from the last ')'.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	return fields[19], nil
}

// FreePort is a TCP port on 127.0.0.1 that nothing listened on a moment ago, for a process a
// test starts on a port of its own.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
