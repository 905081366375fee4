package procstat

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Snapshot is the process list of one sample, for a classifier to read.
type Snapshot struct {
	Root     string
	Procs    map[int]Proc
	children map[int][]int
	cmdlines map[int]string
}

// Children lists the processes of the snapshot whose parent is pid.
func (s *Snapshot) Children(pid int) []int {
	if s.children == nil {
		s.children = map[int][]int{}
		for c, p := range s.Procs {
			s.children[p.PPID] = append(s.children[p.PPID], c)
		}
	}
	return s.children[pid]
}

// Cmdline is the command line of pid (see Cmdline), read once per snapshot and only when
// asked; "" when the process has ended since.
func (s *Snapshot) Cmdline(pid int) string {
	if c, ok := s.cmdlines[pid]; ok {
		return c
	}
	if s.cmdlines == nil {
		s.cmdlines = map[int]string{}
	}
	c, _ := Cmdline(s.Root, pid)
	s.cmdlines[pid] = c
	return c
}

// A Classifier names the group of each process of a snapshot that belongs to one; the
// others it leaves out.
type Classifier func(*Snapshot) map[int]string

// Meter adds up the CPU that the processes of each group spent between Start and Stop, and
// the machine's, by reading the whole process list at Start, at Stop and every period in
// between.
//
// A process counts from its CPU at Start, or from 0 when it started after Start; it
// belongs to the last group it was classified in (a PostgreSQL backend has the postmaster's
// command line until it knows its role). What the samples cannot see:
//   - a process that ended after the last sample that saw it loses its CPU since then, and
//     one that started and ended between two samples is missed whole; but when its parent
//     is in a group and waited for it (the postmaster does for every backend), the kernel
//     added its whole CPU to the parent's cutime + cstime, so the rest of the parent's
//     growth there, less what the samples saw, is put in the group EndedInto names (its own
//     group by default), not lost;
//   - a process classified only after it had run for a while before Start, and not seen at
//     Start, counts from when it was first seen;
//   - times are in clock ticks (1/100 s), read at slightly different moments: a process's
//     figure is exact to a tick or two, which is nothing over a run of seconds.
//
// The samples themselves cost the calling process some CPU: a few milliseconds per hundred
// processes on the machine.
type Meter struct {
	root      string
	hz        uint64
	classify  Classifier
	EndedInto map[string]string // group of a parent → group of its children's unsampled CPU

	mu          sync.Mutex
	procs       map[ident]*tracked
	samples     int
	startUptime uint64 // when Start's sample was taken, in ticks after boot
	startBusy   uint64
	stop, done  chan struct{}
	stopped     bool
}

type ident struct {
	pid   int
	start uint64
}

type tracked struct {
	last         Proc
	group        string
	cpu0, child0 uint64 // CPU and reaped children's CPU at Start; 0 if it started later
	sample       int    // the last sample that saw it, from 1
}

// NewMeter measures the processes under root (/proc on a live system) with classify.
func NewMeter(root string, classify Classifier) *Meter {
	return &Meter{root: root, hz: ClockTicks(root), classify: classify, EndedInto: map[string]string{}, procs: map[ident]*tracked{}}
}

// Start takes the first sample and then one every period until Stop (none if period is 0).
func (m *Meter) Start(period time.Duration) error {
	var err error
	if m.startUptime, err = Uptime(m.root, m.hz); err != nil {
		return err
	}
	if m.startBusy, err = MachineBusy(m.root); err != nil {
		return err
	}
	if err := m.Sample(); err != nil {
		return err
	}
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.done)
		if period <= 0 {
			return
		}
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.Sample() // a failed sample only leaves a longer gap before the next
			}
		}
	}()
	return nil
}

// Sample reads the process list once more. Start, Stop and the periodic sampling call it;
// a test may call it between them.
func (m *Meter) Sample() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil
	}
	pids, err := PIDs(m.root)
	if err != nil {
		return err
	}
	s := &Snapshot{Root: m.root, Procs: make(map[int]Proc, len(pids))}
	for _, pid := range pids {
		p, err := ReadProc(m.root, pid)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue // it ended after the listing
		case err != nil:
			return err
		}
		s.Procs[pid] = p
	}
	groups := m.classify(s)
	m.samples++
	for pid, p := range s.Procs {
		id := ident{pid, p.Start}
		t := m.procs[id]
		if t == nil {
			t = &tracked{cpu0: p.CPU, child0: p.ChildCPU}
			if m.samples > 1 && p.Start >= m.startUptime {
				t.cpu0, t.child0 = 0, 0 // all it spent, it spent during the run
			}
			m.procs[id] = t
		}
		t.last, t.sample = p, m.samples
		if g := groups[pid]; g != "" {
			t.group = g
		}
	}
	return nil
}

// Group is the CPU of one group over the run.
type Group struct {
	Seconds   float64
	Processes int // how many processes the samples saw in it
}

// Totals is what Stop measured.
type Totals struct {
	Groups  map[string]Group
	Machine float64 // busy seconds of all CPUs together
	Samples int
	HZ      uint64
}

// Stop ends the periodic sampling, takes the last sample and adds up.
func (m *Meter) Stop() (Totals, error) {
	if m.stop == nil {
		return Totals{}, fmt.Errorf("procstat: Stop without a successful Start")
	}
	close(m.stop)
	<-m.done
	if err := m.Sample(); err != nil {
		return Totals{}, err
	}
	busy, err := MachineBusy(m.root)
	if err != nil {
		return Totals{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	ticks := map[string]uint64{}
	count := map[string]int{}
	ended := map[int][]*tracked{} // by parent: processes that were gone at the last sample
	for _, t := range m.procs {
		if t.group != "" {
			ticks[t.group] += sub(t.last.CPU, t.cpu0)
			count[t.group]++
		}
		if t.sample < m.samples {
			ended[t.last.PPID] = append(ended[t.last.PPID], t)
		}
	}
	for _, p := range m.procs {
		if p.group == "" || p.sample < m.samples {
			continue
		}
		// What the children that ended cost, by the kernel's count, less what is already
		// counted: the samples' share of those in a group, and what any of them had spent
		// before Start.
		reaped := sub(p.last.ChildCPU, p.child0)
		var known uint64
		for _, c := range ended[p.last.PID] {
			if c.last.Start < p.last.Start {
				continue // a child of an earlier process with this pid
			}
			if c.group != "" {
				known += c.last.CPU + c.child0
			} else {
				known += c.cpu0 + c.child0
			}
		}
		if reaped > known {
			into := p.group
			if g, ok := m.EndedInto[p.group]; ok {
				into = g
			}
			ticks[into] += reaped - known
		}
	}
	t := Totals{Groups: map[string]Group{}, Machine: Seconds(sub(busy, m.startBusy), m.hz), Samples: m.samples, HZ: m.hz}
	for g, n := range ticks {
		t.Groups[g] = Group{Seconds: Seconds(n, m.hz), Processes: count[g]}
	}
	return t, nil
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
