package servers

import (
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is a process this package started, in a process group of its own, with the
// goroutine that reaps it: it is signalled only while not yet reaped, so that its pid
// cannot have been given to another process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startChild starts program with args and env, as the user of as if not nil, its output
// appended to logPath.
func startChild(logPath string, as *syscall.Credential, env []string, program string, args ...string) (*child, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(program, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: as}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := &child{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(ch.done) }()
	return ch, nil
}

func (ch *child) exited() bool {
	select {
	case <-ch.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the child's process group (an Erlang node's helpers, a PostgreSQL
// keeper's postmaster) and waits until the child is reaped.
func (ch *child) kill() {
	if !ch.exited() {
		syscall.Kill(-ch.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-ch.done
}

// stop sends SIGTERM to the child and waits for it to exit, killing its process group after
// grace.
func (ch *child) stop(grace time.Duration) {
	if !ch.exited() {
		ch.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-ch.done:
	case <-time.After(grace):
		ch.kill()
	}
}
