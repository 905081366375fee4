// Package auth signs the API's callers in. A Verifier checks the OAuth 2.0 bearer tokens an
// OpenID provider issued, a Guard admits a route's callers by them, and ServiceClient gives
// a service the credential it calls billing's internal API with.
//
// Tokens are verified by go-oidc: the provider's discovery document names its JWKS, whose
// keys are cached and fetched again when a token names a key id the cache does not hold, so
// keys the provider rotates are taken without a restart. Only asymmetric signatures are
// accepted, and the issuer, the audience, the expiry and the not-before time are checked.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
)

// asymmetric are the signature algorithms a token may use: a provider's public keys can
// never check an HMAC, and "none" is no signature at all.
var asymmetric = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512, oidc.EdDSA,
}

// Identity is whom a verified token speaks for: a user, or a service by its client id.
type Identity struct {
	Issuer  string
	Subject string
}

// userNamespace is the UUID namespace of the user ids derived from identities. It is part of
// the data: changing it would give every signed-in person a new, empty user.
var userNamespace = uuid.MustParse("6f1c2a4e-52b9-4d0e-9f51-3c9a0e7d2b18")

// UserID is the id of the user bound to the identity: a UUID (version 5) of the issuer and
// the subject. Every service derives it from the token alone, so each can check that a
// caller acts on their own user without asking the user service, and one identity can
// never have two users.
func (i Identity) UserID() uuid.UUID {
	return uuid.NewSHA1(userNamespace, []byte(i.Issuer+"\n"+i.Subject))
}

// TokenError is a token that does not verify; Reason is told to the caller in the
// WWW-Authenticate header.
type TokenError struct {
	Reason string
	Err    error
}

func (e *TokenError) Error() string { return fmt.Sprintf("invalid token: %s: %v", e.Reason, e.Err) }
func (e *TokenError) Unwrap() error { return e.Err }

// ErrProviderUnavailable is returned while the provider's discovery document cannot be read:
// no token can be checked, and the caller should come back later.
var ErrProviderUnavailable = errors.New("identity provider unavailable")

// Verifier verifies the tokens one issuer signs for one audience.
type Verifier struct {
	issuer, audience string
	client           *http.Client

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier // nil until the discovery document was read
}

// NewVerifier returns a verifier of issuer's tokens for audience. It reads the provider's
// discovery document on the first Verify, not here, so that a service starts while its
// provider does not answer yet.
func NewVerifier(issuer, audience string) *Verifier {
	return &Verifier{issuer: issuer, audience: audience, client: &http.Client{Timeout: 5 * time.Second}}
}

// Verify checks the raw token and returns its identity: a *TokenError when it is not valid,
// ErrProviderUnavailable when the provider cannot be asked.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	verifier, err := v.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	token, err := verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, &TokenError{Reason: reason(err), Err: err}
	}
	if token.Subject == "" {
		return Identity{}, &TokenError{Reason: "the token has no subject", Err: errors.New("empty sub")}
	}
	return Identity{Issuer: token.Issuer, Subject: token.Subject}, nil
}

// discover reads the discovery document once; a failure is tried again on the next call.
func (v *Verifier) discover(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, nil
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, v.client), 5*time.Second)
	defer cancel()
	provider, err := oidc.NewProvider(ctx, v.issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
	}
	// The key set the provider builds fetches with v.client whatever the context of a later
	// Verify; go-oidc keeps only the client from the context it is given here.
	v.verifier = provider.Verifier(&oidc.Config{ClientID: v.audience, SupportedSigningAlgs: asymmetric})
	return v.verifier, nil
}

// reason says in a few words why go-oidc refused a token.
func reason(err error) string {
	var expired *oidc.TokenExpiredError
	switch {
	case errors.As(err, &expired):
		return "the token expired"
	default:
		return "the token is malformed, forged, or not issued for this API"
	}
}
