package httpx

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/labstack/echo/v5"
)

// Reply is an answer rendered before it is sent, so that what a handler sends and what is
// kept of it (the response an Idempotency-Key replays) are the same bytes.
type Reply struct {
	Status      int
	ContentType string
	Body        []byte
	// RetryAfter, unless empty, is the Retry-After of an answer that tells the client to
	// come back: such an answer is not final, and never stored under an Idempotency-Key.
	RetryAfter string
}

// JSONReply renders v as c.JSON sends it (encoding/json, newline-terminated).
func JSONReply(status int, v any) (Reply, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return Reply{}, fmt.Errorf("encode reply: %w", err)
	}
	return Reply{Status: status, ContentType: echo.MIMEApplicationJSON, Body: buf.Bytes()}, nil
}

// ErrorReply renders err as the error handler answers it: the status of its code and the
// one error body, with the members WithMembers added.
func ErrorReply(err error) (Reply, error) {
	ae := fromEcho(err)
	return JSONReply(StatusOf(ae.Class()), errorBody(ae, membersOf(err)))
}

// Send writes r as the response.
func Send(c *echo.Context, r Reply) error {
	if r.RetryAfter != "" {
		c.Response().Header().Set("Retry-After", r.RetryAfter)
	}
	return c.Blob(r.Status, r.ContentType, r.Body)
}
