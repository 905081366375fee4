// Package httpx builds the echo server every service uses: one error handler that maps
// apperr codes to statuses, request ids, trace spans, access logs, metrics, a body limit and
// health checks.
package httpx

import (
	"log/slog"

	"github.com/labstack/echo/v5"
	"github.com/labstack/echo/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HeaderRequestID carries the request id between clients, services and the broker.
const HeaderRequestID = "X-Request-ID"

// MaxBodyBytes bounds request bodies; the API's payloads are a few hundred bytes.
const MaxBodyBytes = 64 << 10

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

	e.Use(requestID, traceRequests, middleware.Recover(), accessLog(log, requests, latency), middleware.BodyLimit(MaxBodyBytes))
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	return e
}
