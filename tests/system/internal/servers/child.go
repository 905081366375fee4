package servers

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/order-system/order-system/tools/localrun"
)

// child is a server process this package started, in a process group of its own (a
// localrun.Process: reaped by its own goroutine, signalled only while not yet reaped, so that
// its pid cannot have been given to another process).
type child struct{ *localrun.Process }

// startChild starts program with args and env, as the user of as if not nil, its output
// appended to logPath.
func startChild(logPath string, as *syscall.Credential, env []string, program string, args ...string) (*child, error) {
	p, err := localrun.Start(localrun.Spec{Name: filepath.Base(program), Program: program, Args: args, Env: env,
		Log: logPath, Dir: "/", As: as, Group: true})
	if err != nil {
		return nil, err
	}
	return &child{p}, nil
}

// killTree kills the child's process group and every process descended from it, as a
// machine that loses power. The descendants matter where a process starts helpers in
// sessions of their own: a postmaster's backends and WAL senders call setsid, outlive a
// SIGKILL of its group for a moment, and can still commit a write a client then takes for
// the new primary's. The group is stopped first, so that nobody in it forks or reaps while
// the tree is walked (an unreaped child keeps its pid); each descendant found is stopped as
// well before its own children are looked for.
func (ch *child) killTree() {
	if ch.Exited() {
		return
	}
	group := ch.Pid()
	syscall.Kill(-group, syscall.SIGSTOP)
	tree := map[int]bool{}
	for pid := range parents() {
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == group {
			tree[pid] = true
		}
	}
	for grown := true; grown; {
		grown = false
		for pid, parent := range parents() {
			if tree[parent] && !tree[pid] {
				syscall.Kill(pid, syscall.SIGSTOP)
				tree[pid], grown = true, true
			}
		}
	}
	for pid := range tree {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	syscall.Kill(-group, syscall.SIGKILL)
	<-ch.Done()
}

// parents maps each running process's pid to its parent's, from /proc.
func parents() map[int]int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	out := make(map[int]int, len(stats))
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // it exited meanwhile
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so the fields
		// after it are counted from the last ')'.
		head, tail, ok := strings.Cut(string(b), " (")
		if i := strings.LastIndexByte(tail, ')'); ok && i >= 0 {
			fields := strings.Fields(tail[i+1:])
			pid, err1 := strconv.Atoi(head)
			if len(fields) >= 2 && err1 == nil {
				if ppid, err := strconv.Atoi(fields[1]); err == nil {
					out[pid] = ppid
				}
			}
		}
	}
	return out
}
