package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/order-system/order-system/pkg/auth"
)

// issuer serves what a verifier reads from an OpenID provider, a discovery document and a
// JWKS, over keys the test signs with and rotates. The verifier under test is the real one;
// what the provider itself does is tested in tools/devidp against the real provider.
type issuer struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey // by key id, as the JWKS publishes them
	fetches int                        // of the JWKS
	tokens  int                        // issued by /token
}

func newIssuer(t *testing.T, kids ...string) *issuer {
	t.Helper()
	is := &issuer{t: t, keys: map[string]*rsa.PrivateKey{}}
	for _, kid := range kids {
		is.addKey(kid)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/keys",
			"authorization_endpoint": is.srv.URL + "/authorize", "token_endpoint": is.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		defer is.mu.Unlock()
		is.fetches++
		var set jose.JSONWebKeySet
		for kid, k := range is.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		_ = json.NewEncoder(w).Encode(set)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		// The client credentials grant, as far as a client sees it: a new token per call.
		id, _, ok := r.BasicAuth()
		if !ok || r.PostFormValue("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		is.mu.Lock()
		is.tokens++
		n := is.tokens
		is.mu.Unlock()
		c := is.claims("internal")
		c.ID = fmt.Sprint("token-", n) // each token its own
		token := is.signClient("k1", c, id)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": 3600})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) addKey(kid string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		is.t.Fatal(err)
	}
	is.mu.Lock()
	is.keys[kid] = k
	is.mu.Unlock()
}

func (is *issuer) dropKey(kid string) {
	is.mu.Lock()
	delete(is.keys, kid)
	is.mu.Unlock()
}

func (is *issuer) key(kid string) *rsa.PrivateKey {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.keys[kid]
}

// claims are a valid token's claims for audience aud; a case changes what it tests.
func (is *issuer) claims(aud string) jwt.Claims {
	now := time.Now()
	return jwt.Claims{Issuer: is.srv.URL, Subject: "alice", Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)), Expiry: jwt.NewNumericDate(now.Add(time.Hour))}
}

// sign signs c with key kid of the issuer (RS256), or with key if it is not nil.
func (is *issuer) sign(kid string, c jwt.Claims, key *rsa.PrivateKey) string {
	is.t.Helper()
	if key == nil {
		key = is.key(kid)
	}
	return signWith(is.t, jose.SigningKey{Algorithm: jose.RS256, Key: key}, kid, c)
}

// signClient signs c with key kid as a token issued to the OAuth client clientID.
func (is *issuer) signClient(kid string, c jwt.Claims, clientID string) string {
	is.t.Helper()
	return signWith(is.t, jose.SigningKey{Algorithm: jose.RS256, Key: is.key(kid)}, kid, c, map[string]any{"client_id": clientID})
}

func signWith(t *testing.T, key jose.SigningKey, kid string, c jwt.Claims, extra ...any) string {
	t.Helper()
	signer, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	b := jwt.Signed(signer).Claims(c)
	for _, claims := range extra {
		b = b.Claims(claims)
	}
	raw, err := b.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestVerifierRefusesEveryBadToken(t *testing.T) {
	is := newIssuer(t, "k1")
	v := auth.NewVerifier(is.srv.URL, "order-system")
	ctx := context.Background()

	good := is.sign("k1", is.claims("order-system"), nil)
	id, err := v.Verify(ctx, good)
	if err != nil {
		t.Fatalf("a valid token was refused: %v", err)
	}
	if id.Subject != "alice" || id.Issuer != is.srv.URL {
		t.Errorf("identity = %+v, want alice of %s", id, is.srv.URL)
	}

	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&is.key("k1").PublicKey))})
	b64 := base64.RawURLEncoding.EncodeToString
	payload := must(json.Marshal(is.claims("order-system")))
	expired := is.claims("order-system")
	expired.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Minute))
	early := is.claims("order-system")
	early.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour))
	wrongIssuer := is.claims("order-system")
	wrongIssuer.Issuer = "https://issuer.invalid"
	noSubject := is.claims("order-system")
	noSubject.Subject = ""
	stranger := must(rsa.GenerateKey(rand.Reader, 2048))
	mallory := is.claims("order-system")
	mallory.Subject = "mallory"
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64(must(json.Marshal(mallory))) + "." + parts[2]

	for name, raw := range map[string]string{
		"alg none":                      b64([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`)) + "." + b64(payload) + ".",
		"HMAC made with the public key": signWith(t, jose.SigningKey{Algorithm: jose.HS256, Key: pubPEM}, "k1", is.claims("order-system")),
		"wrong issuer":                  is.sign("k1", wrongIssuer, nil),
		"wrong audience":                is.sign("k1", is.claims("another-api"), nil),
		"expired":                       is.sign("k1", expired, nil),
		"not yet valid":                 is.sign("k1", early, nil),
		"no subject":                    is.sign("k1", noSubject, nil),
		"unknown key id":                is.sign("k9", is.claims("order-system"), stranger),
		"signed by another key":         is.sign("k1", is.claims("order-system"), stranger),
		"payload changed after signing": tampered,
		"not a JWT":                     "not-a-token",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(ctx, raw)
			var invalid *auth.TokenError
			if !errors.As(err, &invalid) {
				t.Fatalf("Verify = %v, want a *auth.TokenError", err)
			}
		})
	}
}

func TestVerifierTakesRotatedKeysWithoutRestart(t *testing.T) {
	is := newIssuer(t, "k1")
	v := auth.NewVerifier(is.srv.URL, "order-system")
	ctx := context.Background()
	old := is.sign("k1", is.claims("order-system"), nil)
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}

	// The provider rotates: k2 signs from now on, k1 is still published for the tokens it
	// signed; then k1 is retired.
	is.addKey("k2")
	rotated := is.sign("k2", is.claims("order-system"), nil)
	if _, err := v.Verify(ctx, rotated); err != nil {
		t.Fatalf("a token signed with the new key was refused: %v", err)
	}
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatalf("a token of the old key, still published, was refused: %v", err)
	}
	is.dropKey("k1")
	is.addKey("k3") // a token naming k3 makes the verifier fetch the set again
	if _, err := v.Verify(ctx, is.sign("k3", is.claims("order-system"), nil)); err != nil {
		t.Fatal(err)
	}
	var invalid *auth.TokenError
	if _, err := v.Verify(ctx, old); !errors.As(err, &invalid) {
		t.Fatalf("a token of a retired key: Verify = %v, want a *auth.TokenError", err)
	}
}

func TestVerifierWaitsForItsProvider(t *testing.T) {
	is := newIssuer(t, "k1")
	token := is.sign("k1", is.claims("order-system"), nil)
	url := is.srv.URL
	is.srv.Close()
	v := auth.NewVerifier(url, "order-system")
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, auth.ErrProviderUnavailable) {
		t.Fatalf("Verify with the provider down = %v, want ErrProviderUnavailable", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestVerifierDoesNotFetchKeysForEveryForgery(t *testing.T) {
	is := newIssuer(t, "k1")
	v := auth.NewVerifier(is.srv.URL, "order-system")
	ctx := context.Background()
	if _, err := v.Verify(ctx, is.sign("k1", is.claims("order-system"), nil)); err != nil {
		t.Fatal(err)
	}
	stranger := must(rsa.GenerateKey(rand.Reader, 2048))
	for i := range 50 {
		// A forged signature under the known key id, and a key id nobody published.
		for _, raw := range []string{is.sign("k1", is.claims("order-system"), stranger), is.sign(fmt.Sprintf("forged-%d", i), is.claims("order-system"), stranger)} {
			var invalid *auth.TokenError
			if _, err := v.Verify(ctx, raw); !errors.As(err, &invalid) {
				t.Fatalf("a forged token: Verify = %v, want a *auth.TokenError", err)
			}
		}
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	// One fetch for k1, one for the first unknown key id; then quiet.
	if is.fetches > 2 {
		t.Errorf("100 forged tokens made %d fetches of the JWKS, want at most 2", is.fetches)
	}
}

func TestVerifierSaysWhenTheKeysCannotBeFetched(t *testing.T) {
	is := newIssuer(t, "k1")
	v := auth.NewVerifier(is.srv.URL, "order-system")
	ctx := context.Background()
	if _, err := v.Verify(ctx, is.sign("k1", is.claims("order-system"), nil)); err != nil {
		t.Fatal(err)
	}
	// The provider rotated, then went away: a token of the new key cannot be checked, which
	// is the provider's outage (come back later), not a bad token.
	is.addKey("k2")
	token := is.sign("k2", is.claims("order-system"), nil)
	is.srv.Close()
	if _, err := v.Verify(ctx, token); !errors.Is(err, auth.ErrProviderUnavailable) {
		t.Fatalf("Verify = %v, want ErrProviderUnavailable", err)
	}
}
