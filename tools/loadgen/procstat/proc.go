// Package procstat measures what processes and the whole machine spent in CPU between two
// moments, from Linux's /proc: each process's utime + stime (/proc/<pid>/stat, all its threads)
// and the machine's busy time (/proc/stat). Meter follows a changing set of processes over a
// run; Parts says which of them make up which line of order-system's bill.
//
// Everything reads from a root directory, "/proc" on a live system, so that the tests can
// give it files of their own.
package procstat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// Proc is one process as /proc/<pid>/stat showed it. Times are in clock ticks (ClockTicks).
type Proc struct {
	PID, PPID int
	Comm      string // the command name, at most 15 bytes; it may hold spaces and parentheses
	Start     uint64 // when it started, in ticks after boot; with PID it names the process
	CPU       uint64 // utime + stime of all its threads, living and ended
	ChildCPU  uint64 // cutime + cstime: the CPU of its children that ended and were waited for
}

// ParseStat reads the one line of /proc/<pid>/stat. The command name is whatever lies between
// the first '(' and the last ')': a program may call itself "a) (b" and the fields after it
// still count from the last parenthesis.
func ParseStat(line []byte) (Proc, error) {
	open, end := bytes.IndexByte(line, '('), bytes.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return Proc{}, fmt.Errorf("stat %q: no command name in parentheses", line)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(line[:open])))
	if err != nil {
		return Proc{}, fmt.Errorf("stat %q: pid: %w", line, err)
	}
	// From field 3 (state) on; stat(5) numbers them from 1, pid being 1 and comm 2.
	f := strings.Fields(string(line[end+1:]))
	if len(f) < 20 {
		return Proc{}, fmt.Errorf("stat of %d: %d fields after the command name, want at least 20", pid, len(f))
	}
	num := func(field int) (uint64, error) { return strconv.ParseUint(f[field-3], 10, 64) }
	p := Proc{PID: pid, Comm: string(line[open+1 : end])}
	ppid, err := num(4)
	if err != nil {
		return Proc{}, fmt.Errorf("stat of %d: ppid: %w", pid, err)
	}
	p.PPID = int(ppid)
	var t [4]uint64 // utime, stime, cutime, cstime: fields 14 to 17
	for i := range t {
		if t[i], err = num(14 + i); err != nil {
			return Proc{}, fmt.Errorf("stat of %d: field %d: %w", pid, 14+i, err)
		}
	}
	p.CPU, p.ChildCPU = t[0]+t[1], t[2]+t[3]
	if p.Start, err = num(22); err != nil {
		return Proc{}, fmt.Errorf("stat of %d: starttime: %w", pid, err)
	}
	return p, nil
}

// ReadProc reads /proc/<pid>/stat under root. A process that has ended gives an error
// satisfying errors.Is(err, os.ErrNotExist).
func ReadProc(root string, pid int) (Proc, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return Proc{}, gone(err)
	}
	return ParseStat(b)
}

// gone makes the error of reading a file of a process that ended between listing /proc and
// reading it (ENOENT, or ESRCH for a file open when it ended) a not-exist error.
func gone(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%w: %v", os.ErrNotExist, err)
	}
	return err
}

// Cmdline reads /proc/<pid>/cmdline under root as one line: its NUL separators and the NUL
// padding a process that rewrites its title (PostgreSQL's backends do) leaves are spaces, and
// the ends are trimmed. Empty for a kernel thread or a zombie.
func Cmdline(root string, pid int) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return "", gone(err)
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")), nil
}

// Status is what Classify needs of /proc/<pid>/status.
type Status struct {
	UID int // the real user id
	// Namespaced: the process is in a pid namespace below the one this /proc shows (a
	// container's): its NSpid line has more than one pid.
	Namespaced bool
}

// ReadStatus reads the Uid and NSpid lines of /proc/<pid>/status (kernels before 4.1 have no
// NSpid: not namespaced).
func ReadStatus(root string, pid int) (Status, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "status"))
	if err != nil {
		return Status{}, gone(err)
	}
	var st Status
	uid := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if st.UID, err = strconv.Atoi(f[0]); err != nil {
					return Status{}, fmt.Errorf("status of %d: Uid: %w", pid, err)
				}
				uid = true
			}
		}
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			st.Namespaced = len(strings.Fields(rest)) > 1
		}
	}
	if !uid {
		return Status{}, fmt.Errorf("status of %d: no Uid line", pid)
	}
	return st, nil
}

// PIDs lists the processes under root: its directories named by a number (thread group
// leaders only; their threads' CPU is in their stat).
func PIDs(root string) ([]int, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(entries))
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// MachineBusy reads the busy time of all CPUs from the first line of <root>/stat: user,
// nice, system, irq, softirq and steal, in ticks; idle and iowait are left out (guest time
// is inside user already).
func MachineBusy(root string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("stat: first line %q is not the cpu line with at least 8 times", line)
	}
	var busy uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system [idle iowait] irq softirq steal
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: cpu line field %d: %w", i, err)
		}
		busy += v
	}
	return busy, nil
}

// Uptime reads the seconds since boot from <root>/uptime, in ticks of hz, to compare with a
// process's Start.
func Uptime(root string, hz uint64) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(root, "uptime"))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("uptime: empty")
	}
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("uptime: %w", err)
	}
	return uint64(s * float64(hz)), nil
}

// DefaultClockTicks is what Linux reports as USER_HZ on every architecture Go runs on.
const DefaultClockTicks = 100

// atClkTck is the auxiliary vector's entry for the clock ticks per second (AT_CLKTCK).
const atClkTck = 17

// ClockTicks is the number of ticks per second of the times in /proc (sysconf(_SC_CLK_TCK),
// which Go cannot call without cgo): the AT_CLKTCK entry of <root>/self/auxv, the auxiliary
// vector the kernel gave this process, or DefaultClockTicks when it cannot be read.
func ClockTicks(root string) uint64 {
	b, err := os.ReadFile(filepath.Join(root, "self", "auxv"))
	if err != nil {
		return DefaultClockTicks
	}
	if hz, ok := parseAuxv(b, int(unsafe.Sizeof(uintptr(0)))); ok && hz > 0 {
		return hz
	}
	return DefaultClockTicks
}

// parseAuxv finds AT_CLKTCK in an auxiliary vector of (type, value) pairs of word bytes each,
// in the machine's byte order.
func parseAuxv(b []byte, word int) (uint64, bool) {
	read := func(p []byte) uint64 {
		if word == 4 {
			return uint64(binary.NativeEndian.Uint32(p))
		}
		return binary.NativeEndian.Uint64(p)
	}
	for i := 0; i+2*word <= len(b); i += 2 * word {
		switch read(b[i:]) {
		case 0: // AT_NULL ends the vector
			return 0, false
		case atClkTck:
			return read(b[i+word:]), true
		}
	}
	return 0, false
}

// Seconds converts ticks to seconds.
func Seconds(ticks, hz uint64) float64 { return float64(ticks) / float64(hz) }
