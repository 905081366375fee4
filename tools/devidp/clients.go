package main

import (
	"crypto/subtle"
	"fmt"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// client is an OAuth 2.0 client of the provider: a public one that signs people in with the
// authorization code grant and PKCE, or a service that gets tokens with its secret (client
// credentials).
type client struct {
	id       string
	secret   string   // empty for a public client
	audience []string // of the access tokens it gets
}

// callbackURL is where the provider sends a public client's code. Nothing listens there: the
// token command reads the code from the redirect instead of following it.
const callbackURL = "http://127.0.0.1/callback"

func (c *client) public() bool { return c.secret == "" }

// checkSecret compares in constant time, so that the answer's timing says nothing of the secret.
func (c *client) checkSecret(secret string) error {
	if c.public() || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		return fmt.Errorf("client %s: wrong credentials", c.id)
	}
	return nil
}

func (c *client) GetID() string                    { return c.id }
func (c *client) RedirectURIs() []string           { return []string{callbackURL} }
func (c *client) PostLogoutRedirectURIs() []string { return nil }
func (c *client) ApplicationType() op.ApplicationType {
	if c.public() {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}
func (c *client) AuthMethod() oidc.AuthMethod {
	if c.public() {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType {
	if c.public() {
		return []oidc.GrantType{oidc.GrantTypeCode}
	}
	return []oidc.GrantType{oidc.GrantTypeClientCredentials}
}
func (c *client) LoginURL(authRequestID string) string {
	return "/login?authRequestID=" + authRequestID
}
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration      { return time.Hour }
func (c *client) DevMode() bool                       { return false }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}
func (c *client) IsScopeAllowed(string) bool           { return false }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }

// parseServiceClients reads "id:secret,id:secret".
func parseServiceClients(s string, audience string) ([]*client, error) {
	var out []*client
	for _, pair := range strings.Split(s, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		id, secret, ok := strings.Cut(pair, ":")
		if !ok || id == "" || len(secret) < 16 {
			return nil, fmt.Errorf("service client %q: want id:secret with a secret of 16 characters or more", id)
		}
		out = append(out, &client{id: id, secret: secret, audience: []string{audience}})
	}
	return out, nil
}
