package outbox_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/outbox"
)

// confirmAll is a broker that confirms every message at once.
type confirmAll struct{}

func (confirmAll) Publish(context.Context, []outbox.Message) error { return nil }

// gauges scrapes reg once and returns its gauges by name.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]*dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.Metric{}
	for _, f := range families {
		if f.GetType() == dto.MetricType_GAUGE && len(f.GetMetric()) == 1 {
			got[f.GetName()] = f.GetMetric()[0]
		}
	}
	return got
}

// TestBacklogMetrics: the outbox's backlog and the age of its oldest event, read from the
// table at each scrape, and both zero once the relay published everything.
func TestBacklogMetrics(t *testing.T) {
	t.Parallel()
	f := &fixture{db: dbtest.New(t, fstest.MapFS{"000001_outbox.up.sql": {Data: []byte(outbox.Schema)}})}
	reg := prometheus.NewRegistry()
	relay := outbox.NewRelay(f.db, confirmAll{}, outbox.RelayConfig{}, discard, reg)

	g := gauges(t, reg)
	if g["outbox_backlog"].GetGauge().GetValue() != 0 || g["outbox_oldest_age_seconds"].GetGauge().GetValue() != 0 {
		t.Errorf("empty outbox: backlog %v, oldest age %v; want 0 and 0", g["outbox_backlog"], g["outbox_oldest_age_seconds"])
	}

	f.write(t, 3, true)
	f.write(t, 2, false) // rolled back: never in the outbox
	f.db.MustExec(`UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE id = (SELECT min(id) FROM outbox)`)
	g = gauges(t, reg)
	if n := g["outbox_backlog"].GetGauge().GetValue(); n != 3 {
		t.Errorf("backlog = %v, want the 3 committed events", n)
	}
	if age := g["outbox_oldest_age_seconds"].GetGauge().GetValue(); age < 90 || age > 120 {
		t.Errorf("oldest age = %vs, want the oldest event's 90 s (and a little)", age)
	}

	if n, err := relay.RelayOnce(context.Background()); err != nil || n != 3 {
		t.Fatalf("relay published %d, %v; want 3", n, err)
	}
	g = gauges(t, reg)
	if g["outbox_backlog"].GetGauge().GetValue() != 0 || g["outbox_oldest_age_seconds"].GetGauge().GetValue() != 0 {
		t.Errorf("after publishing: backlog %v, oldest age %v; want 0 and 0", g["outbox_backlog"], g["outbox_oldest_age_seconds"])
	}
}

// TestBacklogMetricsLeftOutWithoutADatabase: with the database gone, the scrape still
// answers, without the backlog gauges (a zero would read as "nothing waiting").
func TestBacklogMetricsLeftOutWithoutADatabase(t *testing.T) {
	t.Parallel()
	f := &fixture{db: dbtest.New(t, fstest.MapFS{"000001_outbox.up.sql": {Data: []byte(outbox.Schema)}})}
	reg := prometheus.NewRegistry()
	outbox.NewRelay(f.db, confirmAll{}, outbox.RelayConfig{}, discard, reg)
	f.db.Close()
	g := gauges(t, reg)
	for _, name := range []string{"outbox_backlog", "outbox_oldest_age_seconds"} {
		if m, ok := g[name]; ok {
			t.Errorf("%s reported as %v without a database", name, m.GetGauge().GetValue())
		}
	}
}
