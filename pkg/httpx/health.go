package httpx

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/metrics"
)

// Check is one readiness probe, e.g. a database ping.
type Check func(ctx context.Context) error

type degradedError struct{ error }

// Degraded wraps a check whose failure is reported by /readyz but does not take the instance
// out of rotation. The broker is such a dependency: requests are served without it (events
// wait in the outbox, deliveries in the queue), so failing readiness on a broker outage would
// turn it into a full outage.
func Degraded(check Check) Check {
	return func(ctx context.Context) error {
		if err := check(ctx); err != nil {
			return degradedError{err}
		}
		return nil
	}
}

// operational reports whether route is one of the probes or the metrics scrape: they are
// not logged, counted or traced: they would drown the requests that matter.
func operational(route string) bool {
	return route == "/metrics" || route == "/livez" || route == "/readyz"
}

// Health serves /livez (the process answers) and /readyz: 200 when every check passes within
// 2 s or only Degraded ones fail, 503 otherwise; the body says how each check went. The
// checks are also the series readiness_check_up{check} on reg (see readiness).
func Health(e *echo.Echo, checks map[string]Check, reg prometheus.Registerer) {
	reg.MustRegister(newReadiness(checks))
	e.GET("/livez", func(c *echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c *echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		status, body := http.StatusOK, map[string]string{}
		for name, check := range checks {
			err := check(ctx)
			var degraded degradedError
			switch {
			case errors.As(err, &degraded):
				body[name] = "degraded: " + degraded.Error()
				continue
			case err != nil:
				status, body[name] = http.StatusServiceUnavailable, err.Error()
				continue
			}
			body[name] = "ok"
		}
		return c.JSON(status, body)
	})
}

// readiness reports each check at every scrape as readiness_check_up{check}: 1 when it
// passes, 0 when it fails, Degraded or not (the series says whether the dependency answers;
// /readyz whether the instance takes requests), or when it gives no answer within
// metrics.ScrapeTimeout. The checks run side by side, so that a hung database does not hold
// up the broker's answer, and a hung check is not started again until it returns.
type readiness struct {
	desc   *prometheus.Desc
	checks map[string]func() (struct{}, error)
}

func newReadiness(checks map[string]Check) *readiness {
	r := &readiness{
		desc: prometheus.NewDesc("readiness_check_up", "Whether the readiness check of a dependency (database, broker) passes: 1 yes, 0 no.",
			[]string{"check"}, nil),
		checks: make(map[string]func() (struct{}, error), len(checks)),
	}
	for name, check := range checks {
		r.checks[name] = metrics.Bound(metrics.ScrapeTimeout, func(ctx context.Context) (struct{}, error) { return struct{}{}, check(ctx) })
	}
	return r
}

// Describe implements prometheus.Collector.
func (r *readiness) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

// Collect implements prometheus.Collector.
func (r *readiness) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for name, check := range r.checks {
		wg.Go(func() {
			up := 1.0
			if _, err := check(); err != nil {
				up = 0
			}
			ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, up, name)
		})
	}
	wg.Wait()
}
