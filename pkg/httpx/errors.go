package httpx

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/order-system/order-system/pkg/apperr"
)

// ErrorResponse is the one error body of the API.
type ErrorResponse struct {
	Code    apperr.Code       `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// StatusOf maps an error code to its HTTP status.
func StatusOf(code apperr.Code) int {
	switch code {
	case apperr.Invalid:
		return http.StatusBadRequest
	case apperr.Unauthenticated:
		return http.StatusUnauthorized
	case apperr.Forbidden:
		return http.StatusForbidden
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
	case apperr.FailedDependency:
		return http.StatusFailedDependency
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
		ctx := c.Request().Context()
		reply, werr := ErrorReply(err)
		if werr != nil {
			log.WarnContext(ctx, "write error response", "err", werr)
			return
		}
		if reply.Status >= 500 {
			log.ErrorContext(ctx, "request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "status", reply.Status, "err", err)
		}
		if c.Request().Method == http.MethodHead {
			werr = c.NoContent(reply.Status)
		} else {
			werr = Send(c, reply)
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
