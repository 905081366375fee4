package procstat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fake is a process in a /proc of the test's own.
type fake struct {
	pid, ppid        int
	comm             string
	start, cpu, kids uint64 // kids: cutime + cstime
	cmdline          string
	uid              int
	container        bool // in a pid namespace of its own, as the first of it
}

// statLine is a /proc/<pid>/stat line as Linux writes it, the CPU split between utime and
// stime (and cutime and cstime) so that the sum is what counts.
func statLine(p fake) string {
	return fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 120 0 0 0 %d %d %d %d 20 0 4 0 %d 1245184 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
		p.pid, p.comm, p.ppid, p.pid, p.pid, p.cpu-p.cpu/3, p.cpu/3, p.kids-p.kids/2, p.kids/2, p.start)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (p fake) write(t *testing.T, root string) {
	t.Helper()
	dir := filepath.Join(root, fmt.Sprint(p.pid))
	writeFile(t, filepath.Join(dir, "stat"), statLine(p))
	// The NULs between arguments and the padding of a rewritten title, as the kernel gives them.
	writeFile(t, filepath.Join(dir, "cmdline"), strings.ReplaceAll(p.cmdline, " ", "\x00")+"\x00\x00\x00")
	nspid := fmt.Sprint(p.pid)
	if p.container {
		nspid += "\t1"
	}
	writeFile(t, filepath.Join(dir, "status"), fmt.Sprintf("Name:\t%s\nState:\tS (sleeping)\nUid:\t%d\t%d\t%d\t%d\nGid:\t0\t0\t0\t0\nNSpid:\t%s\n", p.comm, p.uid, p.uid, p.uid, p.uid, nspid))
}

func TestParseStatCountsFieldsFromTheLastParenthesis(t *testing.T) {
	// A command name may hold spaces and parentheses: "(a) (b c" ends only at the last ')'.
	p, err := ParseStat([]byte(statLine(fake{pid: 4242, ppid: 7, comm: "a) (b c", start: 987654, cpu: 1234, kids: 99})))
	if err != nil {
		t.Fatal(err)
	}
	want := Proc{PID: 4242, PPID: 7, Comm: "a) (b c", Start: 987654, CPU: 1234, ChildCPU: 99}
	if p != want {
		t.Fatalf("ParseStat = %+v, want %+v", p, want)
	}
	for _, bad := range []string{
		"",
		"12 no parentheses S 1",
		"x (cat) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5",
		"12 (cat) S 1 1 1", // cut short
		"12 (cat) S 1 1 1 0 -1 0 0 0 0 0 1 x 0 0 20 0 1 0 5", // stime not a number
	} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) should fail", bad)
		}
	}
}

func TestClockTicksFromTheAuxiliaryVector(t *testing.T) {
	root := t.TempDir()
	if hz := ClockTicks(root); hz != DefaultClockTicks {
		t.Errorf("no auxv: %d ticks per second, want the default %d", hz, DefaultClockTicks)
	}
	// AT_PAGESZ (6) 4096, AT_CLKTCK (17) 250, AT_NULL: 64-bit words.
	var auxv []byte
	for _, v := range []uint64{6, 4096, atClkTck, 250, 0, 0} {
		auxv = binary.NativeEndian.AppendUint64(auxv, v)
	}
	if hz, ok := parseAuxv(auxv, 8); !ok || hz != 250 {
		t.Errorf("parseAuxv, 64-bit = %d, %v; want 250", hz, ok)
	}
	var auxv32 []byte
	for _, v := range []uint32{6, 4096, atClkTck, 1000, 0, 0} {
		auxv32 = binary.NativeEndian.AppendUint32(auxv32, v)
	}
	if hz, ok := parseAuxv(auxv32, 4); !ok || hz != 1000 {
		t.Errorf("parseAuxv, 32-bit = %d, %v; want 1000", hz, ok)
	}
	if _, ok := parseAuxv(auxv[:16], 8); ok {
		t.Error("parseAuxv found AT_CLKTCK in a vector without it")
	}
	if _, ok := parseAuxv(append(binary.NativeEndian.AppendUint64(binary.NativeEndian.AppendUint64(nil, 0), 0), auxv...), 8); ok {
		t.Error("parseAuxv read past AT_NULL")
	}
	if hz, ok := parseAuxv(auxv[:20], 8); ok {
		t.Errorf("parseAuxv of a vector cut inside its AT_CLKTCK entry = %d, want not found", hz)
	}
	writeFile(t, filepath.Join(root, "self", "auxv"), string(auxv))
	if hz := ClockTicks(root); hz != 250 {
		t.Fatalf("ClockTicks = %d, want 250", hz)
	}
	if s := Seconds(125, 250); s != 0.5 {
		t.Errorf("125 ticks at 250/s = %v s, want 0.5", s)
	}
	if s := Seconds(125, DefaultClockTicks); s != 1.25 {
		t.Errorf("125 ticks at 100/s = %v s, want 1.25", s)
	}
}

func TestMachineBusyAndUptime(t *testing.T) {
	root := t.TempDir()
	//                user nice system idle iowait irq softirq steal guest guest_nice
	writeFile(t, filepath.Join(root, "stat"), "cpu  1000 20 300 90000 500 7 11 2 40 0\ncpu0 500 10 150 45000 250 3 5 1 20 0\nintr 1\n")
	writeFile(t, filepath.Join(root, "uptime"), "4101.37 8000.12\n")
	if busy, err := MachineBusy(root); err != nil || busy != 1000+20+300+7+11+2 {
		t.Errorf("MachineBusy = %d, %v; want %d (idle, iowait and guest, inside user, left out)", busy, err, 1000+20+300+7+11+2)
	}
	if up, err := Uptime(root, 100); err != nil || up != 410137 {
		t.Errorf("Uptime = %d, %v; want 410137 ticks", up, err)
	}
	writeFile(t, filepath.Join(root, "stat"), "intr 1\n")
	if _, err := MachineBusy(root); err == nil {
		t.Error("MachineBusy of a stat without its cpu line should fail")
	}
}

func TestReadingAProcessThatEnded(t *testing.T) {
	root := t.TempDir()
	fake{pid: 10, ppid: 1, comm: "sleep", cpu: 3, cmdline: "sleep 60"}.write(t, root)
	if c, err := Cmdline(root, 10); err != nil || c != "sleep 60" {
		t.Errorf("Cmdline = %q, %v", c, err)
	}
	if err := os.RemoveAll(filepath.Join(root, "10")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadProc(root, 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadProc of an ended process = %v, want a not-exist error", err)
	}
	if _, err := Cmdline(root, 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Cmdline of an ended process = %v, want a not-exist error", err)
	}
}

func TestReadStatus(t *testing.T) {
	root := t.TempDir()
	fake{pid: 20, comm: "postgres", uid: 104}.write(t, root)
	fake{pid: 21, comm: "postgres", uid: 999, container: true}.write(t, root)
	writeFile(t, filepath.Join(root, "22", "status"), "Name:\told\nUid:\t7\t7\t7\t7\n") // a kernel without NSpid
	writeFile(t, filepath.Join(root, "23", "status"), "Name:\tbroken\n")
	for pid, want := range map[int]Status{20: {UID: 104}, 21: {UID: 999, Namespaced: true}, 22: {UID: 7}} {
		if st, err := ReadStatus(root, pid); err != nil || st != want {
			t.Errorf("ReadStatus(%d) = %+v, %v; want %+v", pid, st, err, want)
		}
	}
	if _, err := ReadStatus(root, 23); err == nil {
		t.Error("ReadStatus of a status without Uid should fail")
	}
	if _, err := ReadStatus(root, 24); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadStatus of an ended process = %v, want a not-exist error", err)
	}
}

func TestPGTitle(t *testing.T) {
	for title, want := range map[string]string{
		"postgres: 15/main: order_service order_system [local] idle":              "order_service",
		"postgres: billing_service order_system 127.0.0.1(51234) UPDATE":          "billing_service",
		"postgres: main: user_service order_system [local] idle in transaction":   "user_service",
		"postgres: 15/main: checkpointer":                                         "",
		"postgres: walwriter":                                                     "",
		"postgres: 15/main: autovacuum worker order_system":                       "",
		"postgres: parallel worker for PID 4242":                                  "",
		"/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main":      "",
		"postgres -D /srv/data":                                                   "",
		"":                                                                        "",
		"postgres: 15/main: logical replication worker for subscription 16400":    "",
		"postgres: postgres test_5b88 127.0.0.1(55288) idle":                      "postgres",
		"postgres: 15/main: notification_service order_system [local] authentica": "notification_service",
	} {
		role, backend := PGTitle(title)
		if role != want || backend != (want != "") {
			t.Errorf("PGTitle(%q) = %q, %v; want %q", title, role, backend, want)
		}
	}
}
