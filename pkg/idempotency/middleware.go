package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/httpx"
)

// Middleware enforces idempotency on the routes it wraps. The scope is the route's method
// and path template, so the same key on two endpoints names two different requests.
func (s *Store) Middleware(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			key := c.Request().Header.Get(HeaderKey)
			if key == "" {
				return next(c)
			}
			if len(key) > MaxKeyLength {
				return apperr.Validation(map[string]string{HeaderKey: fmt.Sprintf("must be at most %d characters", MaxKeyLength)})
			}
			if !printableASCII(key) {
				return apperr.Validation(map[string]string{HeaderKey: "must be printable ASCII"})
			}
			req := c.Request()
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return err // the body limit's 413, or a broken connection
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			// A body the handler would refuse must not take the key: the 400 would be stored
			// and the corrected retry answered 422. Checking it here also makes the
			// fingerprint see exactly the object the handler decodes.
			if err := httpx.CheckObject(body); err != nil {
				return err
			}
			scope := req.Method + " " + c.Path()
			ctx := req.Context()

			owner := uuid.New()
			result, rec, err := s.begin(ctx, scope, key, Fingerprint(body), owner)
			if err != nil {
				return apperr.Wrap(err, apperr.Unavailable, "idempotency store unavailable")
			}
			switch result {
			case mismatch:
				return apperr.New(apperr.IdempotencyMismatch, "Idempotency-Key was already used with a different request payload")
			case inFlight:
				return apperr.New(apperr.IdempotencyInUse, "a request with this Idempotency-Key is still being processed")
			case replay:
				h := c.Response().Header()
				h.Set(HeaderCached, "true")
				h.Set(HeaderReplayed, "true")
				return c.Blob(int(rec.StatusCode.Int32), rec.ContentType.String, rec.Body)
			}

			c.SetRequest(req.WithContext(context.WithValue(ctx, recordKey{}, Record{Scope: scope, Key: key, CreatedAt: rec.CreatedAt})))
			resp, err := echo.UnwrapResponse(c.Response())
			if err != nil {
				return err
			}
			capture := &captureWriter{ResponseWriter: resp.ResponseWriter}
			resp.ResponseWriter = capture
			if err := next(c); err != nil {
				c.Echo().HTTPErrorHandler(c, err) // write the error body now, so that it is captured and stored
			}
			// The client's request is answered; recording it must not depend on the client.
			bg := context.WithoutCancel(ctx)
			status := resp.Status
			if status >= http.StatusInternalServerError || resp.Header().Get(HeaderRetryAfter) != "" {
				if err := s.release(bg, scope, key, owner); err != nil {
					log.WarnContext(ctx, "idempotency release failed", "err", err)
				}
				return nil
			}
			err = s.complete(bg, scope, key, owner, status, c.Response().Header().Get(echo.HeaderContentType), capture.body.Bytes())
			switch {
			case errors.Is(err, errLeaseLost):
				// This request outlived its lease and a retry took the key over; the retry
				// worked on the same DerivedID and stores its own answer.
				log.WarnContext(ctx, "idempotency lease lost before the response was stored", "status", status)
			case err != nil:
				// The key stays leased until the lease ends; a retry then re-runs the
				// request, which resumes the same resource through DerivedID.
				log.ErrorContext(ctx, "idempotency store failed", "err", err)
			}
			return nil
		}
	}
}

// printableASCII reports whether key is a structured-field string, as the draft defines
// the header's value: characters 0x20 to 0x7E only. Checking it here also keeps bytes a
// text column cannot hold (invalid UTF-8) away from the store, which would otherwise answer
// a client's mistake with a 503.
func printableASCII(key string) bool {
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// Fingerprint hashes a request body so that key order and whitespace do not matter; a body
// that is not JSON is hashed as is.
func Fingerprint(body []byte) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err == nil && !dec.More() {
		if canonical, err := json.Marshal(v); err == nil {
			body = canonical
		}
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

type captureWriter struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}
