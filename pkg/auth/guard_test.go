package auth_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/httpx"
)

// guarded is an API with one public route, answering the caller's user id, one route that
// acts on the user in its path, and one internal route.
func guarded(g *auth.Guard) *echo.Echo {
	e := httpx.New(slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	e.GET("/me", func(c *echo.Context) error {
		id, _ := auth.Caller(c)
		return c.String(http.StatusOK, id.UserID().String())
	}, g.Users())
	e.GET("/users/:id", func(c *echo.Context) error {
		id, err := httpx.PathUUID(c, "id")
		if err != nil {
			return err
		}
		if err := auth.Permit(c, id); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}, g.Users())
	e.POST("/internal/x", func(c *echo.Context) error { return c.NoContent(http.StatusNoContent) }, g.Services())
	return e
}

// call sends a request with the bearer token, if not empty; a token with a space in it is
// the whole Authorization header.
func call(e *echo.Echo, method, path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	switch {
	case strings.Contains(token, " "):
		req.Header.Set("Authorization", token)
	case token != "":
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func TestGuardAdmitsOnlyTokensItCanVerifyForItsAudiences(t *testing.T) {
	is := newIssuer(t, "k1")
	e := guarded(auth.NewGuard(auth.Config{Issuer: is.srv.URL, Audience: "order-system", InternalAudience: "internal", InternalClients: []string{"order-service"}}))
	alice := is.sign("k1", is.claims("order-system"), nil)
	aliceID := auth.Identity{Issuer: is.srv.URL, Subject: "alice"}.UserID()
	// A service's token names it as its client; a person signed in with a chosen subject
	// has the client they signed in with.
	service := is.signClient("k1", is.claims("internal"), "order-service")
	posing := is.claims("internal")
	posing.Subject = "order-service"
	intruder := is.signClient("k1", is.claims("internal"), "some-client")
	expired := is.claims("order-system")
	expired.Expiry = expired.IssuedAt

	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		challenge                 string // what WWW-Authenticate must contain, if anything
	}{
		{"no token", "GET", "/me", "", 401, `Bearer realm="order-system"`},
		{"not bearer", "GET", "/me", "Basic YWxpY2U6c2VjcmV0", 401, `error="invalid_request"`},
		{"forged", "GET", "/me", alice[:len(alice)-4] + "AAAA", 401, `error="invalid_token"`},
		{"expired", "GET", "/me", is.sign("k1", expired, nil), 401, `error_description="the token expired"`},
		{"own user", "GET", "/users/" + aliceID.String(), alice, 204, ""},
		{"another user", "GET", "/users/" + uuid.NewString(), alice, 403, ""},
		{"a person on the internal API", "POST", "/internal/x", alice, 401, `error="invalid_token"`},
		{"an unknown client on the internal API", "POST", "/internal/x", intruder, 403, `error="insufficient_scope"`},
		{"a person named like a service on the internal API", "POST", "/internal/x", is.signClient("k1", posing, "order-system-cli"), 403, `error="insufficient_scope"`},
		{"a service on the internal API", "POST", "/internal/x", service, 204, ""},
		{"a service on a public route", "GET", "/me", is.signClient("k1", is.claims("order-system"), "order-service"), 401, `error="invalid_token"`},
		{"no token on the internal API", "POST", "/internal/x", "", 401, `Bearer realm="order-system"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := call(e, tc.method, tc.path, tc.token)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); !strings.Contains(got, tc.challenge) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", got, tc.challenge)
			}
			if tc.status >= 400 && !strings.Contains(rec.Body.String(), `"code":`) {
				t.Errorf("body %s is not the API's error body", rec.Body)
			}
		})
	}
	if rec := call(e, "GET", "/me", alice); rec.Body.String() != aliceID.String() {
		t.Errorf("the caller's user id = %s, want %s", rec.Body, aliceID)
	}
}

func TestGuardOffAdmitsEveryone(t *testing.T) {
	e := guarded(auth.NewGuard(auth.Config{}))
	if rec := call(e, "GET", "/users/"+uuid.NewString(), ""); rec.Code != http.StatusNoContent {
		t.Errorf("any user with sign-in off = %d, want 204", rec.Code)
	}
	if rec := call(e, "POST", "/internal/x", ""); rec.Code != http.StatusNoContent {
		t.Errorf("internal call with sign-in off = %d, want 204", rec.Code)
	}
}
