// Package httpx builds the echo server every service uses: one error handler that maps
// apperr codes to statuses, request ids, access logs, metrics, a body limit and health checks.
package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
	"github.com/labstack/echo/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/logger"
)

// HeaderRequestID carries the request id between clients, services and the broker.
const HeaderRequestID = "X-Request-ID"

// MaxBodyBytes bounds request bodies; the API's payloads are a few hundred bytes.
const MaxBodyBytes = 64 << 10

// ErrorResponse is the one error body of the API.
type ErrorResponse struct {
	Code    apperr.Code       `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// New returns an echo instance with the common middleware; metrics are registered on reg and
// served at /metrics.
func New(log *slog.Logger, reg *prometheus.Registry) *echo.Echo {
	e := echo.NewWithConfig(echo.Config{Logger: log, HTTPErrorHandler: errorHandler(log)})

	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "HTTP requests by route, method and status.",
	}, []string{"route", "method", "status"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "HTTP request latency by route and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method"})
	reg.MustRegister(requests, latency)

	e.Use(requestID, middleware.Recover(), accessLog(log, requests, latency), middleware.BodyLimit(MaxBodyBytes))
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	return e
}

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
			if route == "/metrics" || route == "/livez" || route == "/readyz" {
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

// StatusOf maps an error code to its HTTP status.
func StatusOf(code apperr.Code) int {
	switch code {
	case apperr.Invalid:
		return http.StatusBadRequest
	case apperr.NotFound:
		return http.StatusNotFound
	case apperr.MethodNotAllowed:
		return http.StatusMethodNotAllowed
	case apperr.PayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case apperr.IdempotencyInUse:
		return http.StatusConflict
	case apperr.IdempotencyMismatch, apperr.Unprocessable:
		return http.StatusUnprocessableEntity
	case apperr.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(c *echo.Context, err error) {
		if resp, _ := echo.UnwrapResponse(c.Response()); resp != nil && resp.Committed {
			return
		}
		ae := fromEcho(err)
		status := StatusOf(ae.Class())
		ctx := c.Request().Context()
		if status >= 500 {
			log.ErrorContext(ctx, "request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "status", status, "err", err)
		}
		var werr error
		if c.Request().Method == http.MethodHead {
			werr = c.NoContent(status)
		} else {
			werr = c.JSON(status, errorBody(ae, membersOf(err)))
		}
		if werr != nil {
			log.WarnContext(ctx, "write error response", "err", werr)
		}
	}
}

// WithMembers returns err answered with members added to its error body beside code, message
// and fields, e.g. the failed order; a member of the same name as one of those is left out.
// A handler adds them: what an answer looks like is the HTTP layer's business.
func WithMembers(err error, members map[string]any) error {
	return &membersError{err: err, members: members}
}

type membersError struct {
	err     error
	members map[string]any
}

func (e *membersError) Error() string { return e.err.Error() }
func (e *membersError) Unwrap() error { return e.err }

func membersOf(err error) map[string]any {
	var me *membersError
	if errors.As(err, &me) {
		return me.members
	}
	return nil
}

func errorBody(ae *apperr.Error, members map[string]any) any {
	body := ErrorResponse{Code: ae.Code, Message: ae.Message, Fields: ae.Fields}
	if ae.Code == apperr.Internal {
		body.Message = "internal error"
	}
	if len(members) == 0 {
		return body
	}
	m := map[string]any{"code": body.Code, "message": body.Message}
	if len(body.Fields) > 0 {
		m["fields"] = body.Fields
	}
	for k, v := range members {
		if _, taken := m[k]; !taken {
			m[k] = v
		}
	}
	return m
}

// fromEcho turns echo's own errors (routing, body limit) into coded errors.
func fromEcho(err error) *apperr.Error {
	code := echo.StatusCode(err)
	if code == 0 {
		return apperr.As(err)
	}
	switch code {
	case http.StatusNotFound:
		return apperr.New(apperr.NotFound, "resource not found")
	case http.StatusMethodNotAllowed:
		return apperr.New(apperr.MethodNotAllowed, "method not allowed")
	case http.StatusRequestEntityTooLarge:
		return apperr.New(apperr.PayloadTooLarge, "request body is larger than %dKB", MaxBodyBytes>>10)
	case http.StatusBadRequest:
		return apperr.New(apperr.Invalid, "bad request")
	case http.StatusServiceUnavailable:
		return apperr.New(apperr.Unavailable, "service unavailable")
	case http.StatusUnsupportedMediaType:
		return apperr.New(apperr.Invalid, "request body must be JSON")
	default:
		if code < 500 {
			return apperr.New(apperr.Invalid, "%s", http.StatusText(code))
		}
		return apperr.Wrap(err, apperr.Internal, "internal error")
	}
}
