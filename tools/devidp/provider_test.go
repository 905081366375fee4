package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/order-system/order-system/pkg/auth"
)

// startProvider runs the real provider on a loopback port of its own.
func startProvider(t *testing.T) (issuer string, rotate func()) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer = "http://" + srv.Listener.Addr().String()
	handler, err := newProvider(settings{issuer: issuer, audience: "order-system", internalAudience: "internal",
		otherAudience: "another-api", serviceClients: "order-service:0123456789abcdef", tokenLifetime: 10 * time.Minute},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = handler
	srv.Start()
	t.Cleanup(srv.Close)
	return issuer, func() {
		resp, err := http.Post(issuer+"/dev/rotate-keys", "", nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("rotate keys: %v %v", resp, err)
		}
		resp.Body.Close()
	}
}

func TestSignInGivesEachUserTheirOwnVerifiableToken(t *testing.T) {
	issuer, rotate := startProvider(t)
	ctx := context.Background()
	v := auth.NewVerifier(issuer, "order-system")

	identities := map[string]auth.Identity{}
	for _, user := range []string{"ann", "bob"} {
		token, err := signIn(ctx, http.DefaultTransport, issuer, "order-system-cli", user)
		if err != nil {
			t.Fatalf("sign in %s: %v", user, err)
		}
		id, err := v.Verify(ctx, token)
		if err != nil {
			t.Fatalf("%s's token: %v", user, err)
		}
		if id.Subject != user {
			t.Errorf("%s's token has subject %q", user, id.Subject)
		}
		identities[user] = id
	}
	if identities["ann"].UserID() == identities["bob"].UserID() {
		t.Error("two people have one user id")
	}

	// After a rotation the new key signs, and a token of the previous one still verifies,
	// with the same verifier: no restart.
	before, err := signIn(ctx, http.DefaultTransport, issuer, "order-system-cli", "ann")
	if err != nil {
		t.Fatal(err)
	}
	rotate()
	after, err := signIn(ctx, http.DefaultTransport, issuer, "order-system-cli", "ann")
	if err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{"signed before the rotation": before, "signed after": after} {
		if _, err := v.Verify(ctx, token); err != nil {
			t.Errorf("a token %s: %v", name, err)
		}
	}
	// Two rotations later the key that signed `before` is no longer published; the verifier
	// forgets it when it fetches the set again, for the first token of the new key.
	rotate()
	rotate()
	latest, err := signIn(ctx, http.DefaultTransport, issuer, "order-system-cli", "ann")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, latest); err != nil {
		t.Fatal(err)
	}
	var invalid *auth.TokenError
	if _, err := v.Verify(ctx, before); !errors.As(err, &invalid) {
		t.Errorf("a token of a retired key: Verify = %v, want a *auth.TokenError", err)
	}

	// Another client's token is for another API.
	other, err := signIn(ctx, http.DefaultTransport, issuer, "other-app", "ann")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, other); !errors.As(err, &invalid) {
		t.Errorf("a token for another audience: Verify = %v, want a *auth.TokenError", err)
	}
}

func TestServicesGetTheInternalAudience(t *testing.T) {
	issuer, _ := startProvider(t)
	cfg := auth.Config{Issuer: issuer, Audience: "order-system", InternalAudience: "internal", InternalClients: []string{"order-service"}}

	var seen string
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Get("Authorization")
	}))
	defer internal.Close()
	for name, c := range map[string]auth.Config{
		"right secret": {Issuer: issuer, ClientID: "order-service", ClientSecret: "0123456789abcdef"},
		"wrong secret": {Issuer: issuer, ClientID: "order-service", ClientSecret: "fedcba9876543210"},
	} {
		seen = ""
		client := &http.Client{Transport: auth.ServiceTransport(c, http.DefaultTransport)}
		resp, err := client.Get(internal.URL)
		if name == "wrong secret" {
			if err == nil {
				resp.Body.Close()
				t.Errorf("a wrong secret got a token: %q", seen)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		id, err := auth.NewVerifier(issuer, cfg.InternalAudience).Verify(context.Background(), seen[len("Bearer "):])
		if err != nil || id.Subject != "order-service" {
			t.Errorf("the service's token: %+v, %v; want subject order-service, internal audience", id, err)
		}
	}
}
