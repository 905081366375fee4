package auth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// ServiceTransport returns base with this service's credential on every request: a token got
// with the OAuth 2.0 client credentials grant (the provider gives service clients the
// internal audience), cached and renewed before it expires. A request the server answers 401
// is sent once more with a new token: the provider may have rotated its keys or restarted
// since the cached one was issued. With sign-in off it returns base. A token that cannot be
// got fails the request as a transport error would.
func ServiceTransport(cfg Config, base http.RoundTripper) http.RoundTripper {
	if !cfg.On() {
		return base
	}
	return &serviceTransport{tokens: &serviceTokens{cfg: cfg, client: &http.Client{Timeout: 5 * time.Second}}, base: base}
}

type serviceTransport struct {
	tokens *serviceTokens
	base   http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *serviceTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.send(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	t.tokens.forget()
	again := req.Clone(req.Context())
	if req.Body != nil {
		if again.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return t.send(again)
}

// send sends a copy of req with the current token (a RoundTripper must not change req).
func (t *serviceTransport) send(req *http.Request) (*http.Response, error) {
	token, err := t.tokens.token()
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	out := req.Clone(req.Context())
	token.SetAuthHeader(out)
	return t.base.RoundTrip(out)
}

// serviceTokens finds the provider's token endpoint in its discovery document on first use,
// as Verifier does, so that a service starts while the provider does not answer yet. A
// failure is remembered for retryDiscovery: the calls meanwhile fail at once instead of each
// waiting for the provider.
type serviceTokens struct {
	cfg    Config
	client *http.Client // for the provider: base carries spans and request ids for billing

	mu       sync.Mutex
	tokenURL string             // empty until the discovery document was read
	source   oauth2.TokenSource // caches the token until shortly before it expires
	failedAt time.Time
}

func (s *serviceTokens) token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.failedAt) < retryDiscovery {
		return nil, fmt.Errorf("%w: no token a moment ago", ErrProviderUnavailable)
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, s.client)
	if s.tokenURL == "" {
		provider, err := oidc.NewProvider(oidc.ClientContext(ctx, s.client), s.cfg.Issuer)
		if err != nil {
			s.failedAt = time.Now()
			return nil, fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
		}
		s.tokenURL = provider.Endpoint().TokenURL
	}
	if s.source == nil {
		cc := clientcredentials.Config{ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, TokenURL: s.tokenURL}
		s.source = cc.TokenSource(ctx)
	}
	token, err := s.source.Token()
	if err != nil {
		s.failedAt = time.Now()
	}
	return token, err
}

// forget drops the cached token, so that the next request gets a new one.
func (s *serviceTokens) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.source = nil
}
