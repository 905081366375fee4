package main

import (
	"bytes"
	"regexp"
	"slices"
	"time"

	"github.com/order-system/order-system/tools/loadgen/result"
)

// timeline gathers what the report shows over time: per second of the run, the answers that
// arrived in it and the notification lag of the orders answered in it; and per outcome, a
// latency histogram. Its callers hold the sample set's lock.
type timeline struct {
	start   time.Time
	seconds []second
	bounds  []float64
	hist    map[string][]int
}

type second struct {
	answers, completed, errors int
	latency, lag               []time.Duration
}

func newTimeline(start time.Time) *timeline {
	return &timeline{start: start, bounds: result.HistogramBounds(), hist: map[string][]int{}}
}

// at is the second an answer that arrived at t falls in.
func (t *timeline) at(when time.Time) *second {
	i := max(int(when.Sub(t.start)/time.Second), 0)
	for len(t.seconds) <= i {
		t.seconds = append(t.seconds, second{})
	}
	return &t.seconds[i]
}

// answer counts an answer (or a transport error) that arrived at when after d, under its
// outcome's histogram.
func (t *timeline) answer(when time.Time, outcome string, d time.Duration, failed bool) {
	s := t.at(when)
	s.answers++
	if failed {
		s.errors++
	}
	h := t.hist[outcome]
	if h == nil {
		h = make([]int, len(t.bounds)+1)
		t.hist[outcome] = h
	}
	h[result.Bucket(t.bounds, float64(d)/float64(time.Millisecond))]++
}

// complete counts a new order answered 201 at when, after d.
func (t *timeline) complete(when time.Time, d time.Duration) {
	s := t.at(when)
	s.completed++
	s.latency = append(s.latency, d)
}

// lag files a notification lag under the second its order was answered in.
func (t *timeline) lag(answered time.Time, d time.Duration) {
	s := t.at(answered)
	s.lag = append(s.lag, d)
}

func (t *timeline) series() *result.Timeline {
	n := len(t.seconds)
	r := &result.Timeline{
		Answers: make([]int, n), Completed: make([]int, n), Errors: make([]int, n),
		LatencyP50: make([]float64, n), LatencyP90: make([]float64, n), LatencyP99: make([]float64, n),
		LagCount: make([]int, n), LagP50: make([]float64, n), LagP99: make([]float64, n), LagMax: make([]float64, n),
	}
	for i, s := range t.seconds {
		r.Answers[i], r.Completed[i], r.Errors[i], r.LagCount[i] = s.answers, s.completed, s.errors, len(s.lag)
		if len(s.latency) > 0 {
			l := sorted(s.latency)
			r.LatencyP50[i], r.LatencyP90[i], r.LatencyP99[i] = ms(nearestRank(l, 0.50)), ms(nearestRank(l, 0.90)), ms(nearestRank(l, 0.99))
		}
		if len(s.lag) > 0 {
			l := sorted(s.lag)
			r.LagP50[i], r.LagP99[i], r.LagMax[i] = ms(nearestRank(l, 0.50)), ms(nearestRank(l, 0.99)), ms(l[len(l)-1])
		}
	}
	return r
}

func (t *timeline) histograms() *result.Histograms {
	h := &result.Histograms{UpperMs: t.bounds, Counts: map[string][]int{}}
	for outcome, counts := range t.hist {
		n := len(counts)
		for n > 0 && counts[n-1] == 0 {
			n--
		}
		h.Counts[outcome] = counts[:n]
	}
	return h
}

func sorted(sample []time.Duration) []time.Duration {
	s := slices.Clone(sample)
	slices.Sort(s)
	return s
}

// numberArray is a JSON array of numbers as json.MarshalIndent writes it, one per line. A
// JSON string holds no raw line feed, so no string can match.
var numberArray = regexp.MustCompile(`\[\n\s*[-+0-9.eE]+(?:,\n\s*[-+0-9.eE]+)*\n\s*\]`)

// compactArrays puts each array of numbers of an indented JSON on one line, so that the
// report's series take a line each instead of one per second or per bucket. Only numbers
// and white space between them change: the JSON means the same.
func compactArrays(b []byte) []byte {
	return numberArray.ReplaceAllFunc(b, func(a []byte) []byte {
		return bytes.ReplaceAll(bytes.Join(bytes.Fields(a), nil), []byte(","), []byte(", "))
	})
}
