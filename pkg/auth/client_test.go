package auth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/order-system/order-system/pkg/auth"
)

func TestServiceTransportRenewsARefusedToken(t *testing.T) {
	is := newIssuer(t, "k1")
	var seen []string // Authorization and body of each request the server got
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen = append(seen, r.Header.Get("Authorization")+" "+string(body))
		if len(seen) == 1 {
			w.WriteHeader(http.StatusUnauthorized) // as after the provider rotated its keys
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer server.Close()
	client := &http.Client{Transport: auth.ServiceTransport(auth.Config{Issuer: is.srv.URL, ClientID: "order-service", ClientSecret: "s3cret-s3cret-s3cret"}, http.DefaultTransport)}

	resp, err := client.Post(server.URL, "application/json", strings.NewReader(`{"paymentId":"p1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || len(seen) != 2 {
		t.Fatalf("status %d after %d requests, want 204 after 2", resp.StatusCode, len(seen))
	}
	if seen[0] == seen[1] || !strings.HasSuffix(seen[1], `{"paymentId":"p1"}`) || !strings.HasPrefix(seen[1], "Bearer ") {
		t.Errorf("the retry was %q after %q: want a new token and the same body", seen[1], seen[0])
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.tokens != 2 {
		t.Errorf("%d tokens fetched, want 2", is.tokens)
	}

	off := auth.ServiceTransport(auth.Config{}, http.DefaultTransport)
	if off != http.DefaultTransport {
		t.Error("with sign-in off the transport is not the base one")
	}
}
