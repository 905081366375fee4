package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"github.com/order-system/order-system/pkg/apperr"
)

// realm names the API in every WWW-Authenticate challenge.
const realm = "order-system"

// identityKey is where the Guard leaves the caller's identity in the echo context.
const identityKey = "auth.identity"

// Guard admits the callers of a service's routes. The nil *Guard is sign-in off: it admits
// everyone, and every caller may act on every user.
type Guard struct {
	users    *Verifier // tokens of people, for the public API
	services *Verifier // tokens of services, for the internal API
	clients  []string  // the service client ids the internal API admits
}

// NewGuard returns the guard cfg describes: nil when sign-in is off.
func NewGuard(cfg Config) *Guard {
	if !cfg.On() {
		return nil
	}
	return &Guard{
		users:    NewVerifier(cfg.Issuer, cfg.Audience),
		services: NewVerifier(cfg.Issuer, cfg.InternalAudience),
		clients:  cfg.InternalClients,
	}
}

// Users admits requests that carry a valid token of the public API's audience, and leaves
// the caller's identity for Permit and Allows. A request without one is answered 401 with a
// challenge (RFC 6750) and goes no further.
func (g *Guard) Users() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if g == nil {
			return next
		}
		return func(c *echo.Context) error {
			id, err := g.authenticate(c, g.users)
			if err != nil {
				return err
			}
			if slices.Contains(g.clients, id.ClientID) {
				// A service acts as itself, never as a user, whatever the audience it got.
				c.Response().Header().Set("WWW-Authenticate", challenge("invalid_token", "a service's token is not a user's"))
				return apperr.New(apperr.Unauthenticated, "invalid token: a service's token is not a user's")
			}
			c.Set(identityKey, id)
			return next(c)
		}
	}
}

// Services admits requests that carry a valid service token (the internal audience) issued
// to one of the admitted clients (its client_id or azp claim, not its subject, which a person
// can choose at some providers); a person's token, whose audience is the public API's, is
// refused.
func (g *Guard) Services() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if g == nil {
			return next
		}
		return func(c *echo.Context) error {
			id, err := g.authenticate(c, g.services)
			if err != nil {
				return err
			}
			if !slices.Contains(g.clients, id.ClientID) {
				c.Response().Header().Set("WWW-Authenticate", challenge("insufficient_scope", "this client may not call the internal API"))
				return apperr.New(apperr.Forbidden, "client %q may not call the internal API", id.ClientID)
			}
			return next(c)
		}
	}
}

// authenticate verifies the request's bearer token with v. Its errors are the answer: 401
// with a challenge, or 503 while the provider cannot be asked.
func (g *Guard) authenticate(c *echo.Context, v *Verifier) (Identity, error) {
	header := c.Request().Header.Get("Authorization")
	if header == "" {
		// RFC 6750 §3.1: a request without credentials gets a challenge without an error code.
		c.Response().Header().Set("WWW-Authenticate", fmt.Sprintf("Bearer realm=%q", realm))
		return Identity{}, apperr.New(apperr.Unauthenticated, "sign in: this route needs an Authorization: Bearer token")
	}
	scheme, raw, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		c.Response().Header().Set("WWW-Authenticate", challenge("invalid_request", "the Authorization header must be Bearer and a token"))
		return Identity{}, apperr.New(apperr.Unauthenticated, "the Authorization header must be Bearer and a token")
	}
	id, err := v.Verify(c.Request().Context(), strings.TrimSpace(raw))
	var invalid *TokenError
	switch {
	case errors.As(err, &invalid):
		c.Response().Header().Set("WWW-Authenticate", challenge("invalid_token", invalid.Reason))
		return Identity{}, apperr.Wrap(err, apperr.Unauthenticated, "invalid token: "+invalid.Reason)
	case errors.Is(err, ErrProviderUnavailable):
		c.Response().Header().Set("Retry-After", "1")
		return Identity{}, apperr.Wrap(err, apperr.Unavailable, "sign-in is unavailable, try again")
	case err != nil:
		return Identity{}, err
	}
	return id, nil
}

func challenge(code, description string) string {
	return fmt.Sprintf("Bearer realm=%q, error=%q, error_description=%q", realm, code, description)
}

// Caller returns the identity Users admitted the request with; ok is false with sign-in off.
func Caller(c *echo.Context) (id Identity, ok bool) {
	id, ok = c.Get(identityKey).(Identity)
	return id, ok
}

// Allows reports whether the request's caller may act on the user userID: always with
// sign-in off, otherwise only on their own user.
func Allows(c *echo.Context, userID uuid.UUID) bool {
	id, ok := Caller(c)
	return !ok || id.UserID() == userID
}

// Permit is Allows as the answer to a request that names the user it acts on (in its path or
// body): nil, or 403. The refusal tells nothing about the named user, since it is decided by
// comparing ids alone, before anything is read.
func Permit(c *echo.Context, userID uuid.UUID) error {
	if Allows(c, userID) {
		return nil
	}
	return apperr.New(apperr.Forbidden, "a caller may act only on their own user")
}
