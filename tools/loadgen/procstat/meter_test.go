package procstat

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// machine is a /proc of the test's own: the machine's busy time, the uptime and processes.
type machine struct {
	t    *testing.T
	root string
	hz   uint64
}

func newMachine(t *testing.T, hz uint64) machine {
	m := machine{t, t.TempDir(), hz}
	var auxv []byte
	for _, v := range []uint64{atClkTck, hz, 0, 0} {
		auxv = binary.NativeEndian.AppendUint64(auxv, v)
	}
	writeFile(t, filepath.Join(m.root, "self", "auxv"), string(auxv))
	return m
}

func (m machine) at(uptimeTicks, busyTicks uint64, procs ...fake) {
	writeFile(m.t, filepath.Join(m.root, "uptime"), fmt.Sprintf("%.2f 1.00\n", float64(uptimeTicks)/float64(m.hz)))
	writeFile(m.t, filepath.Join(m.root, "stat"), fmt.Sprintf("cpu  %d 0 0 5000 0 0 0 0 0 0\n", busyTicks))
	for _, p := range procs {
		p.write(m.t, m.root)
	}
}

func (m machine) end(pid int) {
	if err := os.RemoveAll(filepath.Join(m.root, fmt.Sprint(pid))); err != nil {
		m.t.Fatal(err)
	}
}

// A run of order-system, sample by sample, with the clock at 250 ticks per second.
func TestMeterAddsUpEachPartOfTheBill(t *testing.T) {
	const hz = 250
	m := newMachine(t, hz)
	const rabbitUID, postgresUID = 105, 104
	pg := func(pid int, start, cpu uint64, title string) fake {
		return fake{pid: pid, ppid: 300, comm: "postgres", start: start, cpu: cpu, cmdline: title, uid: postgresUID}
	}
	// Before the run (uptime 1000 s: 250,000 ticks), every process started earlier.
	m.at(250_000, 10_000,
		fake{pid: 100, ppid: 1, comm: "order", start: 1000, cpu: 5000, cmdline: "bin/order"},
		fake{pid: 200, ppid: 1, comm: "nginx", start: 1000, cpu: 40, cmdline: "nginx: master process nginx -p .run/"},
		fake{pid: 201, ppid: 200, comm: "nginx", start: 1001, cpu: 900, cmdline: "nginx: worker process"},
		fake{pid: 300, ppid: 1, comm: "postgres", start: 500, cpu: 700, kids: 4000, cmdline: "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", uid: postgresUID},
		pg(301, 501, 300, "postgres: 15/main: checkpointer"),
		pg(302, 2000, 8000, "postgres: 15/main: order_service order_system [local] idle"),
		pg(304, 2001, 100, "postgres: 15/main: postgres other_db [local] idle"),
		pg(305, 2002, 60, "postgres: 15/main: billing_service order_system [local] idle"), // ends during the run
		fake{pid: 400, ppid: 1, comm: "beam.smp", start: 600, cpu: 3000, cmdline: "/usr/lib/erlang/erts-13.1.5/bin/beam.smp -W w -- -root /usr/lib/erlang", uid: rabbitUID},
		fake{pid: 401, ppid: 400, comm: "erl_child_setup", start: 601, cpu: 10, cmdline: "erl_child_setup 1024", uid: rabbitUID},
		// A test's broker (root) and a test's PostgreSQL server, without the services' roles.
		fake{pid: 500, ppid: 1, comm: "beam.smp", start: 700, cpu: 2000, cmdline: "beam.smp -- -sname test", uid: 0},
		fake{pid: 900, ppid: 1, comm: "postgres", start: 800, cpu: 50, cmdline: "/usr/lib/postgresql/15/bin/postgres -D /tmp/test", uid: postgresUID},
		fake{pid: 901, ppid: 900, comm: "postgres", start: 801, cpu: 500, cmdline: "postgres: postgres test_x 127.0.0.1(5555) idle", uid: postgresUID},
		fake{pid: 700, ppid: 1, comm: "sshd", start: 10, cpu: 77},
		// A cluster's PostgreSQL and RabbitMQ in containers: the same role names, the same user ids.
		fake{pid: 950, ppid: 940, comm: "postgres", start: 900, cpu: 50, cmdline: "postgres", uid: postgresUID, container: true},
		fake{pid: 951, ppid: 950, comm: "postgres", start: 901, cpu: 500, cmdline: "postgres: order_service order_system 10.1.0.7(4242) idle", uid: postgresUID, container: true},
		fake{pid: 952, ppid: 950, comm: "postgres", start: 902, cpu: 500, cmdline: "postgres: walwriter", uid: postgresUID, container: true},
		fake{pid: 960, ppid: 940, comm: "beam.smp", start: 903, cpu: 900, cmdline: "beam.smp -- -root /opt/erlang", uid: rabbitUID, container: true},
	)
	// Listed but gone before its stat could be read.
	if err := os.MkdirAll(filepath.Join(m.root, "800"), 0o755); err != nil {
		t.Fatal(err)
	}
	parts := &Parts{
		Roots:     map[int]string{100: "order", 200: "nginx"},
		PGRoles:   map[string]string{"order_service": "pg order", "billing_service": "pg billing"},
		PGOther:   "pg other",
		PGClients: "pg clients",
		RabbitUID: rabbitUID,
		Rabbit:    "rabbitmq",
	}
	meter := NewMeter(m.root, parts.Classify)
	meter.EndedInto["pg other"] = "pg ended"
	if err := meter.Start(0); err != nil {
		t.Fatal(err)
	}

	// One second in: a new billing backend (started after the run did), still being
	// authenticated, so with the postmaster's command line; the old one has ended, 20 ticks
	// after it was last seen, and the postmaster has waited for it (+80 in cutime).
	m.end(305)
	m.at(250_250, 10_400,
		fake{pid: 300, ppid: 1, comm: "postgres", start: 500, cpu: 710, kids: 4080, cmdline: "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", uid: postgresUID},
		pg(306, 250_100, 5, "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main"),
	)
	if err := meter.Sample(); err != nil {
		t.Fatal(err)
	}
	// Two seconds in: it knows its role.
	m.at(250_500, 10_800, pg(306, 250_100, 40, "postgres: 15/main: billing_service order_system [local] idle"))
	if err := meter.Sample(); err != nil {
		t.Fatal(err)
	}

	// The end, three seconds in: 306 ended after the last sample (30 ticks unseen), and a
	// backend that lived only between two samples (25 ticks) came and went; the postmaster
	// waited for both (+70 + 25). The order service has a short-lived child now.
	m.end(306)
	m.at(250_750, 11_500,
		fake{pid: 100, ppid: 1, comm: "order", start: 1000, cpu: 5600, cmdline: "bin/order"},
		fake{pid: 101, ppid: 100, comm: "gzip", start: 250_700, cpu: 3, cmdline: "gzip -c"},
		fake{pid: 200, ppid: 1, comm: "nginx", start: 1000, cpu: 41, cmdline: "nginx: master process nginx -p .run/"},
		fake{pid: 201, ppid: 200, comm: "nginx", start: 1001, cpu: 1150, cmdline: "nginx: worker process"},
		fake{pid: 300, ppid: 1, comm: "postgres", start: 500, cpu: 715, kids: 4080 + 70 + 25, cmdline: "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", uid: postgresUID},
		pg(301, 501, 320, "postgres: 15/main: checkpointer"),
		pg(302, 2000, 8500, "postgres: 15/main: order_service order_system [local] UPDATE"),
		pg(304, 2001, 130, "postgres: 15/main: postgres other_db [local] idle"),
		fake{pid: 400, ppid: 1, comm: "beam.smp", start: 600, cpu: 3200, cmdline: "/usr/lib/erlang/erts-13.1.5/bin/beam.smp -W w -- -root /usr/lib/erlang", uid: rabbitUID},
		fake{pid: 401, ppid: 400, comm: "erl_child_setup", start: 601, cpu: 12, cmdline: "erl_child_setup 1024", uid: rabbitUID},
		fake{pid: 500, ppid: 1, comm: "beam.smp", start: 700, cpu: 2900, cmdline: "beam.smp -- -sname test", uid: 0},
		fake{pid: 901, ppid: 900, comm: "postgres", start: 801, cpu: 900, cmdline: "postgres: postgres test_x 127.0.0.1(5555) idle", uid: postgresUID},
		fake{pid: 950, ppid: 940, comm: "postgres", start: 900, cpu: 90, cmdline: "postgres", uid: postgresUID, container: true},
		fake{pid: 951, ppid: 950, comm: "postgres", start: 901, cpu: 800, cmdline: "postgres: order_service order_system 10.1.0.7(4242) idle", uid: postgresUID, container: true},
		fake{pid: 952, ppid: 950, comm: "postgres", start: 902, cpu: 700, cmdline: "postgres: walwriter", uid: postgresUID, container: true},
		fake{pid: 960, ppid: 940, comm: "beam.smp", start: 903, cpu: 1900, cmdline: "beam.smp -- -root /opt/erlang", uid: rabbitUID, container: true},
	)
	got, err := meter.Stop()
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]Group{
		"order":      {Seconds: (600 + 3) / float64(hz), Processes: 2}, // the child from 0: it started during the run
		"nginx":      {Seconds: (1 + 250) / float64(hz), Processes: 2}, // the master and its worker
		"pg order":   {Seconds: 500 / float64(hz), Processes: 1},
		"pg billing": {Seconds: (40 + 0) / float64(hz), Processes: 2}, // 306 from its start; 305 spent nothing while seen
		"pg clients": {Seconds: 30 / float64(hz), Processes: 1},       // another role's backend on the same server
		"pg other":   {Seconds: (15 + 20) / float64(hz), Processes: 2},
		// Reaped during the run: 80 + 70 + 25. Seen: 305's 60 (all before the run) and 306's 40.
		"pg ended": {Seconds: (80 + 70 + 25 - 60 - 40) / float64(hz), Processes: 0},
		"rabbitmq": {Seconds: (200 + 2) / float64(hz), Processes: 2},
	}
	for g, w := range want {
		if d := got.Groups[g]; math.Abs(d.Seconds-w.Seconds) > 1e-9 || d.Processes != w.Processes {
			t.Errorf("%s: %+v, want %+v", g, d, w)
		}
	}
	if len(got.Groups) != len(want) {
		t.Errorf("groups %v, want only %d (not the test's broker or server, not the containers', not sshd)", got.Groups, len(want))
	}
	if got.Machine != 1500/float64(hz) || got.Samples != 4 || got.HZ != hz {
		t.Errorf("machine %v s, %d samples, %d Hz; want %v s, 4 samples, %d Hz", got.Machine, got.Samples, got.HZ, 1500/float64(hz), hz)
	}
}

func TestMeterReadsItsOwnCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Fatalf("this test reads Linux's /proc: %v", err)
	}
	self := os.Getpid()
	meter := NewMeter("/proc", (&Parts{Roots: map[int]string{self: "self"}, RabbitUID: -1}).Classify)
	before := rusage(t)
	if err := meter.Start(20 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Spend at least 0.3 s of CPU however busy the machine is.
	x := 1.0
	for rusage(t)-before < 0.3 {
		for range 100_000 {
			x = math.Sqrt(x + 1)
		}
	}
	got, err := meter.Stop()
	spent := rusage(t) - before
	if err != nil {
		t.Fatal(err)
	}
	// The kernel's own count through getrusage, in finer units than /proc's ticks: the two
	// agree within a few ticks (they are read at slightly different moments).
	if s := got.Groups["self"].Seconds; math.Abs(s-spent) > 0.05 || got.Groups["self"].Processes != 1 {
		t.Errorf("this process: %v s in %d process(es) by /proc, %v s by getrusage (x=%v)", s, got.Groups["self"].Processes, spent, x)
	}
	if got.Machine < got.Groups["self"].Seconds-0.05 {
		t.Errorf("the machine spent %v s, less than this process's %v s", got.Machine, got.Groups["self"].Seconds)
	}
	if got.Samples < 3 {
		t.Errorf("%d samples in 0.3 s of CPU at one per 20 ms", got.Samples)
	}
}

func rusage(t *testing.T) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
