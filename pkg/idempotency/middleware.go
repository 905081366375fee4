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

	"github.com/labstack/echo/v5"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/httpx"
)

// Middleware enforces idempotency on the routes it wraps. The scope is the route's method
// and path template, so the same key on two endpoints names two different requests, and with
// sign-in on the caller's user too (auth.Guard's Users runs first): one caller's key never
// replays another's answer.
//
// It checks the key and the body and puts the request's Claim in its context, from which
// the handler takes it as a Key (KeyOf) and passes it down; the repository takes the key
// (Key.Take) in the statement or transaction that writes the resource, and stores its answer
// in the one that finishes it (StoreCTE, InTx), so that a keyed request costs the commits of
// an unkeyed one. The context carries the claim from here to the handler only. A Refusal
// the handler returns is answered with the stored answer, 409 or 422. The middleware stores any other final answer that was
// not stored with the resource, taking the key first for an answer given before it was
// taken (which then gives way to the request holding the key). It releases the key after a
// 5xx, so that the retry resumes the same resource, and deletes it after a 4xx with
// Retry-After (done without effect, come back later), so that the retry starts afresh. A
// handler must take the claim before it sends a success.
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
			ctx := req.Context()
			scope := req.Method + " " + c.Path()
			if caller, ok := auth.Caller(c); ok {
				scope += " " + caller.UserID().String()
			}
			claim := s.claim(scope, key, Fingerprint(body))
			c.SetRequest(req.WithContext(context.WithValue(ctx, claimKey{}, claim)))
			resp, err := echo.UnwrapResponse(c.Response())
			if err != nil {
				return err
			}
			capture := &captureWriter{ResponseWriter: resp.ResponseWriter}
			resp.ResponseWriter = capture
			err = next(c)
			var refused *Refusal
			if errors.As(err, &refused) {
				return refuse(c, refused)
			}
			if err != nil && !claim.taken && final(c, err) {
				// Answered before the handler took the key (a 400 of its own, a change it
				// rolled back): the key is taken now, so that the answer is stored, or the
				// request holding the key answers instead.
				if err := s.take(ctx, claim); err != nil {
					return refuse(c, err)
				}
			}
			if err != nil {
				c.Echo().HTTPErrorHandler(c, err) // write the error body now, so that it is captured and stored
			}
			if !claim.taken && !claim.unsure || claim.stored {
				return nil
			}
			// The client's request is answered; recording it must not depend on the client.
			bg := context.WithoutCancel(ctx)
			status := resp.Status
			retryAfter := resp.Header().Get(HeaderRetryAfter) != ""
			switch {
			case status < http.StatusInternalServerError && retryAfter && claim.taken:
				// Done, without the effect asked for, and told to come back: the retry is a
				// new request, on a new resource, not the resumption of this one.
				if err := s.forget(bg, claim); err != nil {
					log.WarnContext(ctx, "idempotency forget failed", "err", err)
				}
				return nil
			case status >= http.StatusInternalServerError || retryAfter || !claim.taken:
				// A claim that is unsure whether its key was taken finds nothing to release
				// when it was not: that is no failure.
				if err := s.release(bg, claim); err != nil && !(claim.unsure && errors.Is(err, errLeaseLost)) {
					log.WarnContext(ctx, "idempotency release failed", "err", err)
				}
				return nil
			}
			err = claim.Store(bg, s.db, httpx.Reply{Status: status, ContentType: c.Response().Header().Get(echo.HeaderContentType), Body: capture.body.Bytes()})
			switch {
			case errors.Is(err, errLeaseLost):
				// This request outlived its lease and a retry took the key over; the retry
				// worked on the same resource (Claim.ID) and stores its own answer.
				log.WarnContext(ctx, "idempotency lease lost before the response was stored", "status", status)
			case err != nil:
				// The key stays leased until the lease ends; a retry then re-runs the
				// request, which resumes the same resource (Claim.ID).
				log.ErrorContext(ctx, "idempotency store failed", "err", err)
			}
			return nil
		}
	}
}

// final reports whether err is answered as the request's outcome, an answer to store: with a
// status below 500 and no Retry-After.
func final(c *echo.Context, err error) bool {
	r, rerr := httpx.ErrorReply(err)
	return rerr == nil && r.Status < http.StatusInternalServerError && c.Response().Header().Get(HeaderRetryAfter) == ""
}

// refuse answers a request whose key could not be taken: with the stored answer, 409 or
// 422 after a Refusal, 503 when the store could not be asked.
func refuse(c *echo.Context, err error) error {
	var r *Refusal
	if !errors.As(err, &r) {
		return apperr.Wrap(err, apperr.Unavailable, "idempotency store unavailable")
	}
	switch r.outcome {
	case mismatch:
		return apperr.New(apperr.IdempotencyMismatch, "Idempotency-Key was already used with a different request payload")
	case replay:
		h := c.Response().Header()
		h.Set(HeaderCached, "true")
		h.Set(HeaderReplayed, "true")
		return httpx.Send(c, r.stored)
	default:
		return apperr.New(apperr.IdempotencyInUse, "a request with this Idempotency-Key is still being processed")
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
