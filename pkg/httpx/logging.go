package httpx

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/logger"
)

// requestID accepts the caller's X-Request-ID or creates one, echoes it back and puts it in
// the request context so that logs and outgoing calls carry it.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		req := c.Request()
		id := req.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = uuid.NewString()
		}
		c.Response().Header().Set(HeaderRequestID, id)
		c.SetRequest(req.WithContext(logger.WithRequestID(req.Context(), id)))
		return next(c)
	}
}

// validRequestID accepts the ids that tracing systems and proxies produce (UUIDs, hex,
// base64url, dotted or colon-separated trace ids) and nothing else. The id is stored with
// outbox events and sent on to other services, so a value a database column or an HTTP
// header cannot carry would break a request that had nothing else wrong with it.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func accessLog(log *slog.Logger, requests *prometheus.CounterVec, latency *prometheus.HistogramVec) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				// Let the error handler write the response now so the status is known.
				c.Echo().HTTPErrorHandler(c, err)
			}
			route := c.Path()
			if operational(route) {
				return nil
			}
			if route == "" {
				route = "unmatched"
			}
			_, status := echo.ResolveResponseStatus(c.Response(), nil)
			elapsed := time.Since(start)
			requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Inc()
			latency.WithLabelValues(route, c.Request().Method).Observe(elapsed.Seconds())
			log.DebugContext(c.Request().Context(), "http request",
				"method", c.Request().Method, "route", route, "status", status, "duration_ms", elapsed.Milliseconds())
			return nil
		}
	}
}
