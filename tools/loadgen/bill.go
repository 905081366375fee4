package main

import (
	"fmt"
	"math"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/order-system/order-system/tools/loadgen/procstat"
	"github.com/order-system/order-system/tools/loadgen/result"
)

// The parts of the CPU bill, in the order of the table. The services connect to PostgreSQL
// as <service>_service (scripts/run.sh, deploy/postgres/setup.sql).
const (
	partPGOther   = "postgres (other)"
	partPGClients = "postgres (other clients)"
	partPGEnded   = "postgres (ended, unsampled)"
	partRabbitMQ  = "rabbitmq"
	partNginx     = "nginx"
	partLoadgen   = "loadgen"
)

var services = []string{"user", "billing", "order", "notification"}

func billParts() []string {
	parts := append([]string(nil), services...)
	for _, s := range services {
		parts = append(parts, pgPart(s))
	}
	return append(parts, partPGOther, partPGClients, partPGEnded, partRabbitMQ, partNginx, partLoadgen)
}

func pgPart(service string) string { return "postgres " + service + "_service" }

// startBill starts measuring the CPU bill of the run: every instance of each service and the
// gateway by the pid files of make run (pids), the backends of the services' roles, the rest
// of their PostgreSQL server, the machine's RabbitMQ (the beam.smp of the rabbitmq user), this
// process and the machine. Nil, after a warning, where /proc cannot be read.
func startBill(pids map[string][]int, period time.Duration) *procstat.Meter {
	parts := &procstat.Parts{Roots: map[int]string{os.Getpid(): partLoadgen}, PGRoles: map[string]string{},
		PGOther: partPGOther, PGClients: partPGClients, RabbitUID: -1, Rabbit: partRabbitMQ}
	for _, s := range services {
		for _, pid := range pids[s] {
			parts.Roots[pid] = s
		}
		parts.PGRoles[s+"_service"] = pgPart(s)
	}
	for _, pid := range pids["gateway"] {
		parts.Roots[pid] = partNginx // the master; its workers are its children
	}
	if u, err := user.Lookup("rabbitmq"); err == nil {
		parts.RabbitUID, _ = strconv.Atoi(u.Uid)
	}
	m := procstat.NewMeter("/proc", parts.Classify)
	// The postmaster waits for every backend: what ended between two samples is in its
	// children's time, and is no one role's.
	m.EndedInto[partPGOther] = partPGEnded
	if err := m.Start(period); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: no CPU bill: %v\n", err)
		return nil
	}
	return m
}

// finishBill stops m and divides what each part spent by the orders completed in window.
func finishBill(m *procstat.Meter, completed int, window, period time.Duration) *result.CPUBill {
	if m == nil {
		return nil
	}
	t, err := m.Stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: no CPU bill: %v\n", err)
		return nil
	}
	return bill(t, completed, window, period)
}

func bill(t procstat.Totals, completed int, window, period time.Duration) *result.CPUBill {
	perOrder := func(s float64) float64 {
		if completed == 0 {
			return 0
		}
		return math.Round(s*1000/float64(completed)*1000) / 1000
	}
	b := &result.CPUBill{CompletedOrders: completed, WindowSeconds: round2(window.Seconds()), SamplePeriodMs: ms(period),
		Samples: t.Samples, ClockTicks: t.HZ, MachineCPUSeconds: round2(t.Machine), MachineMsPerOrder: perOrder(t.Machine)}
	for _, name := range billParts() {
		g := t.Groups[name]
		b.Parts = append(b.Parts, result.CPUPart{Name: name, CPUSeconds: round2(g.Seconds), MsPerOrder: perOrder(g.Seconds), Processes: g.Processes})
	}
	b.MachineNoLoadgenMsPerOrder = perOrder(max(t.Machine-t.Groups[partLoadgen].Seconds, 0))
	return b
}
