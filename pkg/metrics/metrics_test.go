package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/metrics"
)

// scrape gathers reg once, as a scrape does.
func scrape(t *testing.T, reg prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return families
}

// value returns the value of the gauge or counter name whose labels include labels in one
// scrape of reg, and whether it was reported.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	return find(scrape(t, reg), name, labels)
}

// find returns the value of the gauge or counter name whose labels include labels, and
// whether families hold it.
func find(families []*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestQueryReportsWhatItsReadReturns(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	backlog := 3.0
	reg.MustRegister(metrics.NewQuery("things", []metrics.Gauge{{Name: "things_waiting", Help: "h"}, {Name: "things_oldest_age_seconds", Help: "h"}},
		func(context.Context) ([]float64, error) { return []float64{backlog, 42.5}, nil }))
	for _, want := range []float64{3, 7} {
		backlog = want
		if v, ok := value(t, reg, "things_waiting", nil); !ok || v != want {
			t.Errorf("things_waiting = %v (reported %v), want %v", v, ok, want)
		}
	}
	families := scrape(t, reg)
	if v, ok := find(families, "things_oldest_age_seconds", nil); !ok || v != 42.5 {
		t.Errorf("things_oldest_age_seconds = %v (reported %v), want 42.5", v, ok)
	}
	if v, ok := find(families, "metrics_query_failures_total", map[string]string{"query": "things"}); !ok || v != 0 {
		t.Errorf("failures = %v (reported %v), want 0", v, ok)
	}
}

// TestQueryLeavesItsGaugesOutWhenTheReadFails: a failed read reports no value rather than a
// zero that would look like an empty backlog, and is counted.
func TestQueryLeavesItsGaugesOutWhenTheReadFails(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	fail := errors.New("database down")
	reg.MustRegister(metrics.NewQuery("things", []metrics.Gauge{{Name: "things_waiting", Help: "h"}},
		func(context.Context) ([]float64, error) { return nil, fail }))
	for i := 1; i <= 2; i++ {
		families := scrape(t, reg)
		if v, ok := find(families, "things_waiting", nil); ok {
			t.Errorf("things_waiting reported as %v after a failed read", v)
		}
		if v, _ := find(families, "metrics_query_failures_total", map[string]string{"query": "things"}); v != float64(i) {
			t.Errorf("failures after %d failed scrapes = %v", i, v)
		}
	}
}

func TestQueryWithTooFewValuesIsAFailure(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewQuery("things", []metrics.Gauge{{Name: "a", Help: "h"}, {Name: "b", Help: "h"}},
		func(context.Context) ([]float64, error) { return []float64{1}, nil }))
	families := scrape(t, reg)
	if _, ok := find(families, "a", nil); ok {
		t.Error("a reported although the read returned one value for two gauges")
	}
	if v, _ := find(families, "metrics_query_failures_total", nil); v != 1 {
		t.Errorf("failures = %v, want 1", v)
	}
}

// TestBoundDoesNotWaitForAHungCall: a call that ignores its context is given up after the
// timeout, the next call does not start a second one beside it, and once it returns calls
// run again.
func TestBoundDoesNotWaitForAHungCall(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	calls := 0
	f := metrics.Bound(50*time.Millisecond, func(ctx context.Context) (int, error) {
		calls++
		if calls == 1 {
			<-release // hung, whatever the context says
		}
		return calls, nil
	})
	start := time.Now()
	if _, err := f(); err == nil {
		t.Fatal("a hung call answered without an error")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("waited %v for a hung call, the bound is 50ms", d)
	}
	if _, err := f(); !errors.Is(err, metrics.ErrBusy) {
		t.Errorf("a call while the hung one runs: %v, want ErrBusy", err)
	}
	close(release)
	var (
		n   int
		err error
	)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if n, err = f(); !errors.Is(err, metrics.ErrBusy) {
			break
		}
	}
	if err != nil || n != 2 {
		t.Errorf("after the hung call returned: %d, %v; want the second call's 2", n, err)
	}
}

func TestBoundPassesAContextThatEnds(t *testing.T) {
	t.Parallel()
	f := metrics.Bound(20*time.Millisecond, func(ctx context.Context) (bool, error) {
		<-ctx.Done()
		return true, ctx.Err()
	})
	if _, err := f(); err == nil {
		t.Error("a call that ran out of time answered without an error")
	}
}

// TestPoolReportsASecondPool: the statistics of a pool besides the service's own, under the
// name it was given.
func TestPoolReportsASecondPool(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t, "metrics")
	main, err := database.Open(context.Background(), database.Config{URL: url, MaxOpenConns: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer main.Close()
	relay, err := database.Open(context.Background(), database.Config{URL: url, MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	reg := metrics.NewRegistry(main.DB, "svc")
	reg.MustRegister(metrics.Pool(relay.DB, "svc_relay"))

	conn, err := relay.Conn(context.Background()) // one connection of the relay's pool in use
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, c := range []struct {
		name, db string
		want     float64
	}{
		{"go_sql_max_open_connections", "svc", 5},
		{"go_sql_max_open_connections", "svc_relay", 2},
		{"go_sql_in_use_connections", "svc_relay", 1},
		{"go_sql_in_use_connections", "svc", 0},
	} {
		if v, ok := value(t, reg, c.name, map[string]string{"db_name": c.db}); !ok || v != c.want {
			t.Errorf("%s{db_name=%q} = %v (reported %v), want %v", c.name, c.db, v, ok, c.want)
		}
	}
}
