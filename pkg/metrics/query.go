package metrics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ScrapeTimeout bounds how long a scrape waits for a value read from a dependency (a count in
// the database, a readiness check): well inside Prometheus's default scrape timeout of 10 s,
// so that the service's other series still arrive while its database hangs.
const ScrapeTimeout = 2 * time.Second

// ErrBusy is the answer of a Bound function whose previous call has not returned yet.
var ErrBusy = errors.New("the previous call has not returned yet")

// Bound returns fn as a function for scrapes: each call gives fn a context that ends after
// timeout and waits for it at most that long, even if fn does not heed its context (lib/pq
// waits for a partitioned server until its read timeout, tens of seconds). Calls do not pile
// up behind a hung one: while one is still running, the next returns ErrBusy at once.
func Bound[T any](timeout time.Duration, fn func(ctx context.Context) (T, error)) func() (T, error) {
	running := make(chan struct{}, 1)
	type result struct {
		v   T
		err error
	}
	return func() (T, error) {
		var zero T
		select {
		case running <- struct{}{}:
		default:
			return zero, ErrBusy
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done := make(chan result, 1)
		go func() {
			defer func() { <-running }()
			v, err := fn(ctx)
			done <- result{v, err}
		}()
		select {
		case r := <-done:
			return r.v, r.err
		case <-ctx.Done():
			return zero, fmt.Errorf("no answer within %v", timeout)
		}
	}
}

// Gauge is one value a Query reports.
type Gauge struct {
	Name, Help string
}

// Query is a collector of gauges that one read, typically one cheap indexed query, computes
// at every scrape: nothing is counted on the paths that serve requests. When the read fails
// or gives no answer within ScrapeTimeout, the gauges are left out of that scrape (a zero
// would say "no backlog" exactly when nobody can tell) and metrics_query_failures_total
// counts the failure; whether the database answers at all is what the readiness series say.
type Query struct {
	gauges   []*prometheus.Desc
	read     func() ([]float64, error)
	failures prometheus.Counter
}

// NewQuery returns a Query named name (the query label of its failures) whose read returns
// one value per gauge, in their order.
func NewQuery(name string, gauges []Gauge, read func(ctx context.Context) ([]float64, error)) *Query {
	q := &Query{
		read: Bound(ScrapeTimeout, read),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metrics_query_failures_total", Help: "Scrapes whose query for the named gauges failed or timed out; the gauges were left out.",
			ConstLabels: prometheus.Labels{"query": name},
		}),
	}
	for _, g := range gauges {
		q.gauges = append(q.gauges, prometheus.NewDesc(g.Name, g.Help, nil, nil))
	}
	return q
}

// Describe implements prometheus.Collector.
func (q *Query) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range q.gauges {
		ch <- d
	}
	q.failures.Describe(ch)
}

// Collect implements prometheus.Collector.
func (q *Query) Collect(ch chan<- prometheus.Metric) {
	values, err := q.read()
	if err == nil && len(values) != len(q.gauges) {
		err = fmt.Errorf("read %d values for %d gauges", len(values), len(q.gauges))
	}
	if err != nil {
		q.failures.Inc()
	} else {
		for i, d := range q.gauges {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, values[i])
		}
	}
	q.failures.Collect(ch)
}
