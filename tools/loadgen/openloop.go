package main

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// schedule is the open-loop plan: request i is due at start + i/rate, whatever the answers
// to the earlier ones do. Closed-loop clients send less when the system slows down and so
// never measure the wait a user arriving at a steady rate would see (coordinated omission);
// a schedule keeps sending and charges every wait to the request that suffered it.
type schedule struct {
	start time.Time
	rate  float64 // requests per second
}

// due is when request i should start.
func (s schedule) due(i int) time.Time {
	return s.start.Add(time.Duration(float64(i) * float64(time.Second) / s.rate))
}

// count is how many requests fall due within d of the start.
func (s schedule) count(d time.Duration) int {
	return int(d.Seconds() * s.rate)
}

// lateness tracks requests that started after their due time: the load generator itself
// could not keep up (starved of CPU, or at its in-flight cap). Their latency still counts
// from the due time; the count says how far to trust the schedule.
type lateness struct {
	threshold time.Duration
	mu        sync.Mutex
	late      int
	max       time.Duration
}

func (l *lateness) observe(due, started time.Time) {
	d := started.Sub(due)
	l.mu.Lock()
	defer l.mu.Unlock()
	if d > l.threshold {
		l.late++
	}
	l.max = max(l.max, d)
}

// runOpenLoop starts requests on the schedule until the run's duration is over, each in its
// own goroutine, at most maxInFlight at once, and waits for the last answers.
func runOpenLoop(sch schedule, n, maxInFlight int, place func(rng *rand.Rand, due time.Time), placed *atomic.Int64, late *lateness) (peakInFlight int) {
	seed := rand.New(rand.NewPCG(uint64(sch.start.UnixNano()), 7))
	slots := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	for i := range n {
		due := sch.due(i)
		time.Sleep(time.Until(due))
		slots <- struct{}{}
		late.observe(due, time.Now())
		peakInFlight = max(peakInFlight, len(slots))
		rng := rand.New(rand.NewPCG(seed.Uint64(), seed.Uint64()))
		wg.Go(func() {
			defer func() { <-slots }()
			place(rng, due)
			placed.Add(1)
		})
	}
	wg.Wait()
	return peakInFlight
}
