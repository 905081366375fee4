package auth

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// ServiceTransport returns base with this service's credential on every request: a token got
// with the OAuth 2.0 client credentials grant (the provider gives service clients the
// internal audience), cached and renewed before it expires. With sign-in off it returns
// base. A token that cannot be got fails the request as a transport error would.
func ServiceTransport(cfg Config, base http.RoundTripper) http.RoundTripper {
	if !cfg.On() {
		return base
	}
	return &oauth2.Transport{Source: &serviceTokens{cfg: cfg, client: &http.Client{Timeout: 5 * time.Second}}, Base: base}
}

// serviceTokens finds the provider's token endpoint in its discovery document on first use,
// as Verifier does, so that a service starts while the provider does not answer yet.
type serviceTokens struct {
	cfg    Config
	client *http.Client // for the provider: base carries spans and request ids for billing

	mu     sync.Mutex
	source oauth2.TokenSource // nil until the discovery document was read
}

// Token implements oauth2.TokenSource.
func (s *serviceTokens) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, s.client)
	if s.source == nil {
		provider, err := oidc.NewProvider(oidc.ClientContext(ctx, s.client), s.cfg.Issuer)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
		}
		cc := clientcredentials.Config{ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, TokenURL: provider.Endpoint().TokenURL}
		s.source = cc.TokenSource(ctx) // caches the token until shortly before it expires
	}
	return s.source.Token()
}
