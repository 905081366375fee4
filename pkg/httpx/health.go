package httpx

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"
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
// 2 s or only Degraded ones fail, 503 otherwise; the body says how each check went.
func Health(e *echo.Echo, checks map[string]Check) {
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
