package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/pprof/profile"

	"github.com/order-system/order-system/tools/loadgen/procstat"
	"github.com/order-system/order-system/tools/loadgen/result"
)

func TestSummarizeGivesTheSamplesPercentiles(t *testing.T) {
	var sample []time.Duration
	for i := 100; i >= 1; i-- {
		sample = append(sample, time.Duration(i)*time.Millisecond)
	}
	p := summarize(sample)
	if p.Count != 100 || p.P50 != 50 || p.P95 != 95 || p.P99 != 99 || p.Max != 100 {
		t.Fatalf("summarize = %+v", p)
	}
	if (summarize(nil) != result.Percentiles{}) {
		t.Fatal("empty sample should summarise to zero")
	}
}

func TestParseAmount(t *testing.T) {
	for in, want := range map[string]int64{"500": 50000, "499.5": 49950, "0.01": 1, "0": 0} {
		if got := parseAmount(in); got != want {
			t.Errorf("parseAmount(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestCheckFindsEveryBrokenInvariant(t *testing.T) {
	healthy := func() *UserState {
		return &UserState{
			Deposited: 1000,
			Orders:    map[string]Order{"a": {Price: 300, Outcome: Completed}, "b": {Price: 5000, Outcome: Insufficient}},
			DebitRows: map[string]int{"a": 1},
			Balance:   700,
			Notes:     map[string]string{"a": "success", "b": "failure"},
			NoteCount: map[string]int{"a": 1, "b": 1},
		}
	}
	if v := check(map[string]*UserState{"u": healthy()}); v.Total() != 0 {
		t.Fatalf("healthy user: %+v", v)
	}
	// An order answered with 503 that the service finished as failed: no debit, a failure note.
	u := healthy()
	u.Orders["c"] = Order{Price: 10, Outcome: Failed}
	u.Notes["c"], u.NoteCount["c"] = "failure", 1
	if v := check(map[string]*UserState{"u": u}); v.Total() != 0 {
		t.Fatalf("an order finished as failed: %+v", v)
	}
	tests := map[string]func(u *UserState) int{
		"double debit":      func(u *UserState) int { u.DebitRows["a"] = 2; return 1 },
		"refused debited":   func(u *UserState) int { u.DebitRows["b"] = 1; return 1 },
		"balance off":       func(u *UserState) int { u.Balance = 699; return 1 },
		"lost notification": func(u *UserState) int { delete(u.NoteCount, "a"); return 1 },
		"duplicate":         func(u *UserState) int { u.NoteCount["b"] = 2; return 1 },
		"wrong type":        func(u *UserState) int { u.Notes["a"] = "failure"; return 1 },
		"unknown note":      func(u *UserState) int { u.NoteCount["zzz"] = 1; return 1 },
		"debit unknown":     func(u *UserState) int { u.DebitRows["zzz"] = 1; return 1 },
		"failed debited": func(u *UserState) int {
			u.Orders["c"] = Order{Price: 10, Outcome: Failed}
			u.NoteCount["c"], u.Notes["c"] = 1, "failure"
			u.DebitRows["c"] = 1
			return 1
		},
		"still pending": func(u *UserState) int { u.Orders["c"] = Order{Price: 10, Outcome: Pending}; return 1 },
	}
	for name, breakIt := range tests {
		u := healthy()
		want := breakIt(u)
		if v := check(map[string]*UserState{"u": u}); v.Total() != want {
			t.Errorf("%s: %d violations (%+v), want %d", name, v.Total(), v, want)
		}
	}
}

func TestSummarizeTail(t *testing.T) {
	sample := make([]time.Duration, 2000)
	for i := range sample {
		sample[i] = time.Duration(i+1) * time.Millisecond
	}
	p := summarize(sample)
	want := result.Percentiles{Count: 2000, P50: 1000, P95: 1900, P99: 1980, P999: 1998, Max: 2000}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Fatalf("summarize (-want +got):\n%s", diff)
	}
}

func TestOpenLoopScheduleSpacesRequestsEvenly(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		rate  float64
		i     int
		due   time.Duration
		count time.Duration
		n     int
	}{
		{rate: 500, i: 0, due: 0, count: 30 * time.Second, n: 15000},
		{rate: 500, i: 1, due: 2 * time.Millisecond, count: time.Second, n: 500},
		{rate: 500, i: 250, due: 500 * time.Millisecond, count: 1999 * time.Millisecond, n: 999},
		{rate: 3, i: 1, due: 333333333, count: time.Second, n: 3},
		{rate: 0.5, i: 3, due: 6 * time.Second, count: 10 * time.Second, n: 5},
	}
	for _, tt := range tests {
		s := schedule{start: start, rate: tt.rate}
		if got := s.due(tt.i).Sub(start); got != tt.due {
			t.Errorf("rate %v: request %d due at %v, want %v", tt.rate, tt.i, got, tt.due)
		}
		if got := s.count(tt.count); got != tt.n {
			t.Errorf("rate %v: %d requests within %v, want %d", tt.rate, got, tt.count, tt.n)
		}
	}
}

func TestLatenessCountsStartsPastTheThreshold(t *testing.T) {
	due := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &lateness{threshold: time.Millisecond}
	for _, started := range []time.Duration{0, time.Millisecond, 1500 * time.Microsecond, -time.Millisecond, 40 * time.Millisecond} {
		l.observe(due, due.Add(started))
	}
	if l.late != 2 || l.max != 40*time.Millisecond {
		t.Fatalf("late %d, max %v; want 2 late, max 40ms", l.late, l.max)
	}
}

// TestRunOpenLoop checks that every scheduled request is placed, each with its own due time,
// in order of the schedule; it asserts nothing about how punctual the start was.
func TestRunOpenLoop(t *testing.T) {
	sch := schedule{start: time.Now(), rate: 2000}
	var mu sync.Mutex
	var dues []time.Time
	var placed atomic.Int64
	late := &lateness{threshold: time.Millisecond}
	peak := runOpenLoop(sch, 100, 4, func(rng *rand.Rand, due time.Time) {
		rng.Float64()
		mu.Lock()
		dues = append(dues, due)
		mu.Unlock()
		time.Sleep(time.Millisecond)
	}, &placed, late)
	if placed.Load() != 100 || len(dues) != 100 {
		t.Fatalf("placed %d (%d due times), want 100", placed.Load(), len(dues))
	}
	if peak < 1 || peak > 4 {
		t.Errorf("peak in flight %d, want 1..4 (the cap)", peak)
	}
	slices.SortFunc(dues, time.Time.Compare)
	for i, d := range dues {
		if !d.Equal(sch.due(i)) {
			t.Fatalf("due time %d is %v after the start, want %v", i, d.Sub(sch.start), sch.due(i).Sub(sch.start))
		}
	}
}

func TestValidateRefusesImpossibleConfigurations(t *testing.T) {
	ok := config{clients: 32, users: 200, duration: time.Second, insufficient: 0.1, keyed: 0.2, repeat: 0.05, maxInFlight: 10}
	tests := map[string]struct {
		change  func(c *config)
		wantErr bool
	}{
		"default mix":             {change: func(c *config) {}},
		"every order keyed":       {change: func(c *config) { c.keyed = 1 }},
		"no key":                  {change: func(c *config) { c.keyed = 0 }},
		"open loop":               {change: func(c *config) { c.rate = 500 }},
		"keyed above 1":           {change: func(c *config) { c.keyed = 1.01 }, wantErr: true},
		"negative share":          {change: func(c *config) { c.insufficient = -0.1 }, wantErr: true},
		"shares above 1 together": {change: func(c *config) { c.insufficient, c.repeat = 0.6, 0.5 }, wantErr: true},
		"no clients":              {change: func(c *config) { c.clients = 0 }, wantErr: true},
		"negative rate":           {change: func(c *config) { c.rate = -1 }, wantErr: true},
		"open loop with no slots": {change: func(c *config) { c.rate, c.maxInFlight = 100, 0 }, wantErr: true},
		"not a number":            {change: func(c *config) { c.keyed = math.NaN() }, wantErr: true},
		"zero duration":           {change: func(c *config) { c.duration = 0 }, wantErr: true},
		"negative CPU sampling":   {change: func(c *config) { c.cpuSample = -time.Second }, wantErr: true},
		"CPU sampled at the ends": {change: func(c *config) { c.cpuSample = 0 }},
	}
	for name, tt := range tests {
		c := ok
		tt.change(&c)
		if err := c.validate(); (err != nil) != tt.wantErr {
			t.Errorf("%s: validate() = %v, want error %v", name, err, tt.wantErr)
		}
	}
}

func TestPrintTable(t *testing.T) {
	closed := result.Report{Mode: "closed", Clients: 32, Keyed: 1, OrdersPerSecond: 900, CompletedPerSec: 810,
		Latency: map[string]result.Percentiles{"completed": {P50: 30, P99: 90, P999: 120}}, NotificationLag: result.Percentiles{P99: 60},
		Processes: map[string]result.ProcStats{"order": {PeakRSSMiB: 22}, "billing": {PeakRSSMiB: 20}}}
	open := result.Report{Mode: "open", Rate: 450, Keyed: 1, Late: 3, OrdersPerSecond: 450, CompletedPerSec: 405,
		Latency: map[string]result.Percentiles{"completed": {P50: 8, P99: 25, P999: 60}}, Violations: result.Violations{LostNotes: 1}}
	var b strings.Builder
	printTable(&b, []result.Run{{Name: "all keyed", Report: closed}, {Name: "open loop", Report: open}}, 4500)
	out := b.String()
	for _, want := range []string{"pgbench debit tps (same run): 4500", "32 clients", "450/s open", "0.180", "0.090", "22.0", "1 VIOLATED", "  ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "CPU ms per completed order") {
		t.Errorf("a CPU bill block for runs without a bill:\n%s", out)
	}

	closed.CPUBill = bill(procstat.Totals{Groups: map[string]procstat.Group{"order": {Seconds: 4.7, Processes: 1}}, Machine: 25, HZ: 100}, 10_000, 30*time.Second, time.Second)
	b.Reset()
	printTable(&b, []result.Run{{Name: "all keyed", Report: closed}, {Name: "open loop", Report: open}}, 4500)
	out = b.String()
	block := out[strings.Index(out, "CPU ms per completed order"):]
	for _, want := range []string{
		"CPU ms per completed order     all keyed  open loop\n",
		"\norder                              0.470          -\n",
		"\npostgres order_service                 -          -\n",
		"\nmachine total                      2.500          -\n",
		"\nmachine total without loadgen      2.500          -\n",
		result.BillNote,
	} {
		if !strings.Contains(block, want) {
			t.Errorf("the CPU bill block lacks %q:\n%s", want, block)
		}
	}
}

func TestBillIsCPUPerCompletedOrder(t *testing.T) {
	totals := procstat.Totals{Groups: map[string]procstat.Group{
		"order":                       {Seconds: 9.5, Processes: 2},
		"postgres order_service":      {Seconds: 9.62, Processes: 12},
		"postgres (ended, unsampled)": {Seconds: 0.02},
		"nginx":                       {Seconds: 1.4, Processes: 2},
		"loadgen":                     {Seconds: 6, Processes: 1},
	}, Machine: 40, Samples: 81, HZ: 100}
	b := bill(totals, 20_000, 20*time.Second+4*time.Millisecond, 250*time.Millisecond)
	if b.CompletedOrders != 20_000 || b.WindowSeconds != 20 || b.SamplePeriodMs != 250 || b.Samples != 81 || b.ClockTicks != 100 || b.MachineCPUSeconds != 40 {
		t.Errorf("bill = %+v", b)
	}
	if b.MachineMsPerOrder != 2 || b.MachineNoLoadgenMsPerOrder != 1.7 {
		t.Errorf("machine %v ms per order, without the load generator %v; want 2 and 1.7", b.MachineMsPerOrder, b.MachineNoLoadgenMsPerOrder)
	}
	parts := map[string]result.CPUPart{}
	var names []string
	for _, p := range b.Parts {
		parts[p.Name] = p
		names = append(names, p.Name)
	}
	if want := billParts(); !slices.Equal(names, want) {
		t.Errorf("parts %v, want every part in the table's order %v", names, want)
	}
	for name, want := range map[string]result.CPUPart{
		"order":                       {Name: "order", CPUSeconds: 9.5, MsPerOrder: 0.475, Processes: 2},
		"postgres order_service":      {Name: "postgres order_service", CPUSeconds: 9.62, MsPerOrder: 0.481, Processes: 12},
		"postgres (ended, unsampled)": {Name: "postgres (ended, unsampled)", CPUSeconds: 0.02, MsPerOrder: 0.001},
		"rabbitmq":                    {Name: "rabbitmq"},
		"loadgen":                     {Name: "loadgen", CPUSeconds: 6, MsPerOrder: 0.3, Processes: 1},
	} {
		if parts[name] != want {
			t.Errorf("%s: %+v, want %+v", name, parts[name], want)
		}
	}
	if z := bill(totals, 0, time.Second, 0); z.MachineMsPerOrder != 0 || z.Parts[2].MsPerOrder != 0 {
		t.Errorf("no completed order: %+v", z)
	}
	if names := billParts(); names[4] != "postgres user_service" || names[7] != "postgres notification_service" {
		t.Errorf("the services' roles: %v (scripts/run.sh connects as <service>_service)", names)
	}
}

func TestReadPIDsKeepsOnlyTheProcessesTheFilesName(t *testing.T) {
	self, err := procstat.ReadProc("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for file, content := range map[string]string{
		"user.pid":     fmt.Sprintf("%d %d\n", self.PID, self.Start),   // as make run writes it
		"user.2.pid":   fmt.Sprintf("%d %d\n", self.PID, self.Start+1), // the pid given to another process since
		"user.3.pid":   fmt.Sprintf("%d %d\n", self.PID, self.Start),
		"gateway.pid":  fmt.Sprintf("%d\n", self.PID), // nginx's own, before the start time is added
		"billing.pid":  "2147483646 12345\n",          // no such process
		"order.pid":    "",
		"notification": fmt.Sprint(self.PID), // not a pid file's name
	} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readPIDs(dir, []string{"user", "billing", "order", "notification", "gateway"})
	want := map[string][]int{"user": {self.PID, self.PID}, "gateway": {self.PID}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("readPIDs (-want +got):\n%s", diff)
	}
}

func TestProfileFlagTakesNamedURLs(t *testing.T) {
	f := profileFlag{}
	for _, v := range []string{"order=http://127.0.0.1:8083/", "billing=http://127.0.0.1:8082"} {
		if err := f.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	if f["order"] != "http://127.0.0.1:8083" || f["billing"] != "http://127.0.0.1:8082" {
		t.Errorf("got %v", f)
	}
	for _, bad := range []string{"order=http://x", "order", "=http://x", "order=127.0.0.1:8083"} {
		if err := f.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestProfilesAreWrittenAndDrawn(t *testing.T) {
	fn := &profile.Function{ID: 1, Name: "main.work"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
	prof := &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample:        []*profile.Sample{{Location: []*profile.Location{loc}, Value: []int64{1, 10e6}}},
		Location:      []*profile.Location{loc},
		Function:      []*profile.Function{fn},
		DurationNanos: 1e9,
	}
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.String())
		if r.URL.Path != "/debug/pprof/profile" {
			http.NotFound(w, r)
			return
		}
		if err := prof.Write(w); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	prefix := filepath.Join(t.TempDir(), "run")
	if err := startProfiles(map[string]string{"order": srv.URL}, 1500*time.Millisecond, prefix).wait(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/debug/pprof/profile?seconds=2"}; !slices.Equal(asked, want) {
		t.Errorf("asked %v, want %v (the run's seconds, rounded up)", asked, want)
	}
	svg, err := os.ReadFile(prefix + "-order-flame.svg")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svg), "main.work: 0.01 s, 100.00%") {
		t.Errorf("the flame graph lacks the profile's function:\n%.400s", svg)
	}
	if _, err := os.Stat(prefix + "-order.pprof"); err != nil {
		t.Error(err)
	}
	// A service without its profiler: the run says so.
	err = startProfiles(map[string]string{"billing": srv.URL + "/elsewhere"}, time.Second, prefix).wait()
	if err == nil || !strings.Contains(err.Error(), "billing's CPU profile") || !strings.Contains(err.Error(), "PPROF=true") {
		t.Errorf("got %v, want billing's profile refused", err)
	}
}
