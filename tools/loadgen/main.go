// Command loadgen drives order-system through its gateway: it creates users, deposits money,
// places orders for a fixed time, then checks end to end that nothing was lost or done twice
// and reports throughput, latencies, notification lag, what each service process cost and the
// CPU per completed order of every part of the system (package procstat). It exits non-zero
// when an invariant fails; it never judges timings.
//
// Orders come either from a fixed number of clients that each wait for their answer before
// sending the next (closed loop, -clients), or on a fixed schedule whatever the answers do
// (open loop, -rate), with latency counted from each request's scheduled start.
//
// `loadgen table` prints the reports of several runs side by side; `loadgen report` writes
// them as one HTML page with charts (package report).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/order-system/order-system/tools/loadgen/result"
)

type config struct {
	baseURL      string
	clients      int
	duration     time.Duration
	users        int
	out          string
	pidDir       string
	insufficient float64
	keyed        float64
	repeat       float64
	drain        time.Duration
	rate         float64       // open loop: requests per second; 0 means closed loop
	lateAfter    time.Duration // open loop: a request starting later than this after its due time is late
	maxInFlight  int           // open loop: cap on requests waiting for their answer
	cpuSample    time.Duration // how often the CPU bill reads the process list; 0: at the start and end only
	profiles     profileFlag   // services whose CPU profile is taken over the run, by name
}

// validate rejects settings that cannot describe a run; every share is a fraction of the
// requests, 1 included (-keyed 1: every new order carries a key).
func (c config) validate() error {
	for name, v := range map[string]float64{"insufficient": c.insufficient, "keyed": c.keyed, "repeat": c.repeat} {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("-%s must be between 0 and 1, got %v", name, v)
		}
	}
	switch {
	case c.insufficient+c.repeat > 1:
		return fmt.Errorf("-insufficient + -repeat must be at most 1, got %v", c.insufficient+c.repeat)
	case c.clients < 1:
		return fmt.Errorf("-clients must be at least 1, got %d", c.clients)
	case c.users < 1:
		return fmt.Errorf("-users must be at least 1, got %d", c.users)
	case c.duration <= 0:
		return fmt.Errorf("-duration must be positive, got %v", c.duration)
	case !(c.rate >= 0) || math.IsInf(c.rate, 0):
		return fmt.Errorf("-rate must be a positive number of requests per second (or 0 for closed loop), got %v", c.rate)
	case c.cpuSample < 0:
		return fmt.Errorf("-cpu-sample must not be negative, got %v", c.cpuSample)
	case c.rate > 0 && c.maxInFlight < 1:
		return fmt.Errorf("-max-in-flight must be at least 1, got %d", c.maxInFlight)
	}
	return nil
}

func main() {
	if len(os.Args) > 1 {
		if sub, ok := map[string]func([]string) error{"table": runTable, "report": runReport}[os.Args[1]]; ok {
			if err := sub(os.Args[2:]); err != nil {
				fmt.Fprintf(os.Stderr, "loadgen %s: %v\n", os.Args[1], err)
				os.Exit(2)
			}
			return
		}
	}
	var c config
	flag.StringVar(&c.baseURL, "base-url", "http://localhost:8000", "gateway URL (through HTTP_PROXY when set, e.g. http://arch.homework via a cluster entry)")
	flag.IntVar(&c.clients, "clients", 32, "concurrent clients")
	flag.DurationVar(&c.duration, "duration", 30*time.Second, "how long to place orders")
	flag.IntVar(&c.users, "users", 200, "users to spread the orders over")
	flag.StringVar(&c.out, "out", "bench.json", "JSON report file")
	flag.StringVar(&c.pidDir, "pid-dir", ".run", "directory of the services' pid files (make run writes them)")
	flag.Float64Var(&c.insufficient, "insufficient", 0.10, "share of orders that exceed the balance")
	flag.Float64Var(&c.keyed, "keyed", 0.20, "share of the new orders sent with an Idempotency-Key (1: all of them)")
	flag.Float64Var(&c.repeat, "repeat", 0.05, "share of requests that repeat an earlier keyed order")
	flag.DurationVar(&c.drain, "drain", 30*time.Second, "how long to wait for notifications after the run")
	flag.Float64Var(&c.rate, "rate", 0, "open loop: start this many requests per second on a fixed schedule (0: closed loop with -clients)")
	flag.DurationVar(&c.lateAfter, "late-after", time.Millisecond, "open loop: a request that starts later than this after its due time counts as late")
	flag.IntVar(&c.maxInFlight, "max-in-flight", 4096, "open loop: most requests waiting for their answer at once")
	c.profiles = profileFlag{}
	flag.Var(c.profiles, "cpu-profile", "name=URL of a service serving /debug/pprof (PPROF=true make run): take its CPU profile over the run, written beside -out as <out>-<name>.pprof and drawn as <out>-<name>-flame.svg (repeatable)")
	flag.DurationVar(&c.cpuSample, "cpu-sample", 250*time.Millisecond, "how often the CPU bill reads the process list during the run, to see processes that start and end in it (0: at the start and the end only)")
	flag.Parse()
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type client struct {
	base string
	http *http.Client
}

func (c client) do(method, path, body string, header ...string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

type keyedOrder struct {
	key, body string
	response  []byte
}

type sampleSet struct {
	mu        sync.Mutex
	latency   map[string][]time.Duration
	statuses  map[string]int
	finished  map[string]time.Time // order id → when its response arrived
	repeats   []keyedOrder
	errors    int
	completed int
	timeline  *timeline
}

func run(c config) error {
	conns := c.clients * 2
	if c.rate > 0 {
		conns = c.maxInFlight
	}
	cl := client{base: strings.TrimRight(c.baseURL, "/"), http: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConns: conns, MaxIdleConnsPerHost: conns}}}

	fmt.Fprintf(os.Stderr, "setting up %d users\n", c.users)
	users, ids, err := setup(cl, c.users)
	if err != nil {
		return err
	}
	procNames := []string{"user", "billing", "order", "notification", "gateway"}
	pids := readPIDs(c.pidDir, procNames)
	before := map[string]result.ProcStats{}
	for n, ps := range pids {
		before[n] = procSamples(ps)
	}
	meter := startBill(pids, c.cpuSample)
	profs := startProfiles(c.profiles, c.duration, strings.TrimSuffix(c.out, ".json"))

	var placed atomic.Int64
	start := time.Now()
	s := &sampleSet{latency: map[string][]time.Duration{}, statuses: map[string]int{}, finished: map[string]time.Time{}, timeline: newTimeline(start)}
	done := make(chan struct{})
	go progress(start, c.duration, &placed, done)
	place := func(rng *rand.Rand, due time.Time) { placeOne(cl, c, rng, ids, users, s, due) }
	r := result.Report{Mode: "closed", Clients: c.clients, Keyed: c.keyed}
	if c.rate > 0 {
		sch := schedule{start: start, rate: c.rate}
		late := &lateness{threshold: c.lateAfter}
		r.Mode, r.Clients, r.Rate = "open", 0, c.rate
		r.PeakInFlight = runOpenLoop(sch, sch.count(c.duration), c.maxInFlight, place, &placed, late)
		r.Late, r.LateAfterMs, r.MaxLateMs = late.late, ms(c.lateAfter), ms(late.max)
	} else {
		runClosedLoop(c.clients, c.duration, place, &placed)
	}
	elapsed := time.Since(start)
	close(done)
	s.mu.Lock()
	completed := s.completed
	s.mu.Unlock()
	r.CPUBill = finishBill(meter, completed, elapsed, c.cpuSample)
	profErr := profs.wait() // reported once the run's own report is written

	procs := map[string]result.ProcStats{}
	for n, ps := range pids {
		if p := procSamples(ps); p.Instances > 0 {
			procs[n] = result.ProcStats{CPUSeconds: round2(p.CPUSeconds - before[n].CPUSeconds), PeakRSSMiB: round2(p.PeakRSSMiB), Instances: p.Instances}
		}
	}

	fmt.Fprintf(os.Stderr, "\nwaiting up to %v for notifications\n", c.drain)
	lag, err := collect(cl, users, s, c.drain)
	if err != nil {
		return err
	}
	v := check(users)

	r.DurationSeconds, r.Orders = round2(elapsed.Seconds()), int(placed.Load())
	r.OrdersPerSecond, r.CompletedPerSec = round2(float64(placed.Load())/elapsed.Seconds()), round2(float64(s.completed)/elapsed.Seconds())
	lags := make([]time.Duration, len(lag))
	for i, l := range lag {
		lags[i] = l.lag
		s.timeline.lag(l.answered, l.lag)
	}
	r.Latency, r.Statuses, r.Errors, r.NotificationLag, r.Processes, r.Violations = map[string]result.Percentiles{}, s.statuses, s.errors, summarize(lags), procs, v
	for kind, sample := range s.latency {
		r.Latency[kind] = summarize(sample)
	}
	r.Timeline, r.Histograms = s.timeline.series(), s.timeline.histograms()
	printReport(r)
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(c.out, compactArrays(b), 0o644); err != nil {
		return err
	}
	if v.Total() > 0 {
		return fmt.Errorf("%d invariant violations, e.g. %v", v.Total(), v.Examples)
	}
	return profErr
}

// runClosedLoop runs clients that each send their next order once the last one was answered,
// until d is over.
func runClosedLoop(clients int, d time.Duration, place func(rng *rand.Rand, due time.Time), placed *atomic.Int64) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				place(rng, time.Now())
				placed.Add(1)
			}
		})
	}
	wg.Wait()
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func setup(cl client, n int) (map[string]*UserState, []string, error) {
	users := map[string]*UserState{}
	var ids []string
	for i := range n {
		status, _, body, err := cl.do("POST", "/users", fmt.Sprintf(`{"name":"Load %d","email":"load%d@example.com"}`, i, i))
		if err != nil || status != 201 {
			return nil, nil, fmt.Errorf("create user: %d %s %v", status, body, err)
		}
		var u struct{ ID string }
		json.Unmarshal(body, &u)
		const deposit = 10_000_000_00 // 10 million: normal orders never run out
		if status, _, body, err := cl.do("POST", "/billing/deposit", fmt.Sprintf(`{"userId":"%s","amount":%s}`, u.ID, amount(deposit))); err != nil || status != 200 {
			return nil, nil, fmt.Errorf("deposit: %d %s %v", status, body, err)
		}
		users[u.ID] = &UserState{Deposited: deposit, Orders: map[string]Order{}}
		ids = append(ids, u.ID)
	}
	return users, ids, nil
}

func amount(minor int64) string { return fmt.Sprintf("%d.%02d", minor/100, minor%100) }

// parseAmount reads an exact JSON number with at most two decimals into minor units.
func parseAmount(s string) int64 {
	whole, frac, _ := strings.Cut(s, ".")
	w, _ := strconv.ParseInt(whole, 10, 64)
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac[:2], 10, 64)
	return w*100 + f
}

// placeOne sends one request of the mix; its latency counts from due, the time it was meant
// to start (in the closed loop, when it did start).
func placeOne(cl client, c config, rng *rand.Rand, ids []string, users map[string]*UserState, s *sampleSet, due time.Time) {
	roll := rng.Float64()
	s.mu.Lock()
	canRepeat := len(s.repeats) > 0
	var rep keyedOrder
	if canRepeat {
		rep = s.repeats[rng.IntN(len(s.repeats))]
	}
	s.mu.Unlock()

	if roll < c.repeat && canRepeat {
		status, h, body, err := cl.do("POST", "/orders", rep.body, "Idempotency-Key", rep.key)
		arrived := time.Now()
		s.record("replay", status, arrived, arrived.Sub(due), err, func() {
			if !bytes.Equal(body, rep.response) || h.Get("X-Idempotency-Cached") != "true" {
				s.errors++
				s.statuses["replay_mismatch"]++
			}
		})
		return
	}
	user := ids[rng.IntN(len(ids))]
	price := int64(100 + rng.IntN(900))
	kind := "completed"
	if roll < c.repeat+c.insufficient {
		price, kind = 100_000_000_00, "insufficient" // more than any balance
	}
	body := fmt.Sprintf(`{"userId":"%s","email":"load@example.com","price":%s}`, user, amount(price))
	var header []string
	key := ""
	if rng.Float64() < c.keyed {
		key = fmt.Sprintf("load-%d-%d", time.Now().UnixNano(), rng.Int64())
		header = []string{"Idempotency-Key", key}
	}
	status, _, resp, err := cl.do("POST", "/orders", body, header...)
	arrived := time.Now()
	var o struct {
		ID    string `json:"id"`
		Code  string `json:"code"`
		Order struct {
			ID string `json:"id"`
		} `json:"order"`
	}
	json.Unmarshal(resp, &o)
	if err == nil && status == http.StatusServiceUnavailable && o.Code == "unavailable" && o.Order.ID != "" {
		// A failed request all the same, but the order exists and will be finished: the check
		// must account for it.
		s.mu.Lock()
		users[user].Orders[o.Order.ID] = Order{Price: price, Outcome: Pending}
		s.mu.Unlock()
	}
	s.record(kind, status, arrived, arrived.Sub(due), err, func() {
		u := users[user]
		switch {
		case status == 201:
			u.Orders[o.ID] = Order{Price: price, Outcome: Completed}
			s.finished[o.ID] = arrived
			s.completed++
			s.timeline.complete(arrived, arrived.Sub(due))
			if key != "" {
				s.repeats = append(s.repeats, keyedOrder{key: key, body: body, response: resp})
			}
		case status == 400 && o.Code == "insufficient_funds":
			u.Orders[o.Order.ID] = Order{Price: price, Outcome: Insufficient}
			s.finished[o.Order.ID] = arrived
			if key != "" {
				s.repeats = append(s.repeats, keyedOrder{key: key, body: body, response: resp})
			}
		}
	})
}

// record files a response that arrived at when, after d, under its kind; f runs under the
// lock for definitive answers. Failures count in the timeline under their status (or as
// transport_error), not their kind.
func (s *sampleSet) record(kind string, status int, when time.Time, d time.Duration, err error, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errors++
		s.statuses["transport_error"]++
		s.timeline.answer(when, "transport_error", d, true)
		return
	}
	s.statuses[strconv.Itoa(status)]++
	if status >= 500 {
		s.errors++
		s.timeline.answer(when, strconv.Itoa(status), d, true)
		return
	}
	s.latency[kind] = append(s.latency[kind], d)
	s.timeline.answer(when, kind, d, false)
	f()
}

// lagSample is the notification lag of an order answered at answered.
type lagSample struct {
	answered time.Time
	lag      time.Duration
}

// collect reads every user's ledger and notifications once the notifications stopped
// arriving, and returns the notification lag of each order.
func collect(cl client, users map[string]*UserState, s *sampleSet, drain time.Duration) ([]lagSample, error) {
	deadline := time.Now().Add(drain)
	if err := settle(cl, users, deadline); err != nil {
		return nil, err
	}
	var lag []lagSample
	for id, u := range users {
		for {
			status, _, body, err := cl.do("GET", "/notifications/"+id, "")
			if err != nil || status != 200 {
				return nil, fmt.Errorf("notifications of %s: %d %v", id, status, err)
			}
			var notes []struct {
				OrderID   string    `json:"orderId"`
				Type      string    `json:"type"`
				CreatedAt time.Time `json:"createdAt"`
			}
			json.Unmarshal(body, &notes)
			u.Notes, u.NoteCount = map[string]string{}, map[string]int{}
			for _, n := range notes {
				u.Notes[n.OrderID] = n.Type
				u.NoteCount[n.OrderID]++
			}
			missing := 0
			for oid := range u.Orders {
				if u.NoteCount[oid] == 0 {
					missing++
				}
			}
			if missing == 0 || time.Now().After(deadline) {
				for _, n := range notes {
					if t, ok := s.finished[n.OrderID]; ok {
						lag = append(lag, lagSample{answered: t, lag: n.CreatedAt.Sub(t)})
					}
				}
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		status, _, body, err := cl.do("GET", "/billing/transactions/"+id, "")
		if err != nil || status != 200 {
			return nil, fmt.Errorf("transactions of %s: %d %v", id, status, err)
		}
		var entries []struct {
			Type      string      `json:"type"`
			Amount    json.Number `json:"amount"`
			PaymentID string      `json:"paymentId"`
		}
		json.Unmarshal(body, &entries)
		u.DebitRows = map[string]int{}
		for _, e := range entries {
			if e.Type == "debit" {
				u.DebitRows[e.PaymentID]++
			}
		}
		status, _, body, err = cl.do("GET", "/billing/balance/"+id, "")
		if err != nil || status != 200 {
			return nil, fmt.Errorf("balance of %s: %d %v", id, status, err)
		}
		var b struct {
			Balance json.Number `json:"balance"`
		}
		json.Unmarshal(body, &b)
		u.Balance = parseAmount(b.Balance.String())
	}
	return lag, nil
}

// settle reads the final state of each order answered with 503, waiting until the service
// has finished it or the deadline passes (it then stays Pending, a violation).
func settle(cl client, users map[string]*UserState, deadline time.Time) error {
	for _, u := range users {
		for oid, o := range u.Orders {
			for o.Outcome == Pending {
				status, _, body, err := cl.do("GET", "/orders/"+oid, "")
				if err != nil || status != 200 {
					return fmt.Errorf("order %s: %d %v", oid, status, err)
				}
				var got struct{ Status string }
				json.Unmarshal(body, &got)
				switch got.Status {
				case "completed":
					o.Outcome = Completed
				case "failed":
					o.Outcome = Failed
				}
				if o.Outcome == Pending && time.Now().After(deadline) {
					break
				}
				if o.Outcome == Pending {
					time.Sleep(200 * time.Millisecond)
				}
			}
			u.Orders[oid] = o
		}
	}
	return nil
}

func progress(start time.Time, total time.Duration, placed *atomic.Int64, done chan struct{}) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		el := time.Since(start)
		frac := min(el.Seconds()/total.Seconds(), 1)
		bar := strings.Repeat("=", int(frac*30)) + strings.Repeat(" ", 30-int(frac*30))
		n := placed.Load()
		fmt.Fprintf(os.Stderr, "\r[%s] %4.0fs/%.0fs %7d orders %6.0f/s", bar, el.Seconds(), total.Seconds(), n, float64(n)/el.Seconds())
	}
}

func printReport(r result.Report) {
	if r.Mode == "open" {
		fmt.Printf("\norder-system load: open loop at %.0f requests/s, %.1f s, %.0f %% of new orders keyed\n", r.Rate, r.DurationSeconds, r.Keyed*100)
		fmt.Printf("  started late (>%g ms)  %10d   latest by %.2f ms, at most %d in flight\n", r.LateAfterMs, r.Late, r.MaxLateMs, r.PeakInFlight)
	} else {
		fmt.Printf("\norder-system load: %d clients, %.1f s, %.0f %% of new orders keyed\n", r.Clients, r.DurationSeconds, r.Keyed*100)
	}
	fmt.Printf("  orders/s (all)          %10.1f\n", r.OrdersPerSecond)
	fmt.Printf("  orders/s (completed)    %10.1f\n", r.CompletedPerSec)
	fmt.Printf("  requests                %10d   errors %d\n", r.Orders, r.Errors)
	fmt.Printf("  %-22s %8s %8s %8s %8s %8s %8s\n", "latency (ms)", "count", "p50", "p95", "p99", "p99.9", "max")
	kinds := make([]string, 0, len(r.Latency))
	for k := range r.Latency {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		p := r.Latency[k]
		fmt.Printf("  %-22s %8d %8.2f %8.2f %8.2f %8.2f %8.2f\n", k, p.Count, p.P50, p.P95, p.P99, p.P999, p.Max)
	}
	l := r.NotificationLag
	fmt.Printf("  %-22s %8d %8.2f %8.2f %8.2f %8.2f %8.2f\n", "notification lag", l.Count, l.P50, l.P95, l.P99, l.P999, l.Max)
	fmt.Printf("  statuses                %v\n", r.Statuses)
	names := make([]string, 0, len(r.Processes))
	for n := range r.Processes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := r.Processes[n]
		fmt.Printf("  process %-14s cpu %6.2f s   peak rss %6.1f MiB   instances %d\n", n, p.CPUSeconds, p.PeakRSSMiB, p.Instances)
	}
	if b := r.CPUBill; b != nil {
		fmt.Printf("  CPU ms per completed order (%d orders, %.1f s, %d samples of the process list)\n", b.CompletedOrders, b.WindowSeconds, b.Samples)
		for _, p := range b.Parts {
			fmt.Printf("    %-30s %8.3f   %7.2f s in %d process(es)\n", p.Name, p.MsPerOrder, p.CPUSeconds, p.Processes)
		}
		fmt.Printf("    %-30s %8.3f   %7.2f s\n", result.MachineRow, b.MachineMsPerOrder, b.MachineCPUSeconds)
		fmt.Printf("    %-30s %8.3f\n", result.MachineNoLoadgenRow, b.MachineNoLoadgenMsPerOrder)
	}
	if v := r.Violations; v.Total() == 0 {
		fmt.Println("  invariants              ok: every completed order debited once, balances = deposits - completed, one notification per finished order")
	} else {
		fmt.Printf("  invariants              %d VIOLATIONS: %+v\n", v.Total(), v)
	}
}
