// Package auth signs the API's callers in. A Verifier checks the OAuth 2.0 bearer tokens an
// OpenID provider issued, a Guard admits a route's callers by them, and ServiceClient gives
// a service the credential it calls billing's internal API with.
//
// Tokens are verified by go-oidc: the provider's discovery document names its JWKS, whose
// keys are cached and fetched again when a token names a key id the cache does not hold (at
// most every 10 s, keySet), so keys the provider rotates are taken without a restart. Only
// asymmetric signatures are accepted, and the issuer, the audience, the expiry and the
// not-before time are checked.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
)

// asymmetric are the signature algorithms a token may use: a provider's public keys can
// never check an HMAC, and "none" is no signature at all.
var asymmetric = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512, oidc.EdDSA,
}

// asymmetricJOSE is asymmetric as go-jose names the algorithms.
var asymmetricJOSE = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(asymmetric))
	for i, alg := range asymmetric {
		out[i] = jose.SignatureAlgorithm(alg)
	}
	return out
}()

// retryDiscovery is how long a failed read of the discovery document is remembered: the
// requests meanwhile are answered at once, rather than each waiting for the provider again.
const retryDiscovery = time.Second

// Identity is whom a verified token speaks for: a user, or a service by its client id.
type Identity struct {
	Issuer  string
	Subject string
	// ClientID is the OAuth client the token was issued to (client_id, or azp): for a
	// service's own token, the service.
	ClientID string
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
	failedAt time.Time             // of the last failed read
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
	fetch := &fetchFailure{}
	token, err := verifier.Verify(context.WithValue(ctx, fetchFailureKey{}, fetch), raw)
	if fetch.err != nil { // the token names a key the provider could not be asked about
		return Identity{}, fmt.Errorf("%w: %w", ErrProviderUnavailable, fetch.err)
	}
	if err != nil {
		return Identity{}, &TokenError{Reason: reason(err), Err: err}
	}
	if token.Subject == "" {
		return Identity{}, &TokenError{Reason: "the token has no subject", Err: errors.New("empty sub")}
	}
	var client struct {
		ClientID string `json:"client_id"`
		AZP      string `json:"azp"`
	}
	if err := token.Claims(&client); err != nil {
		return Identity{}, &TokenError{Reason: reason(err), Err: err}
	}
	id := Identity{Issuer: token.Issuer, Subject: token.Subject, ClientID: client.ClientID}
	if id.ClientID == "" {
		id.ClientID = client.AZP
	}
	return id, nil
}

// discover reads the discovery document once; a failure is tried again on the next call.
func (v *Verifier) discover(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, nil
	}
	if time.Since(v.failedAt) < retryDiscovery {
		return nil, fmt.Errorf("%w: the discovery document could not be read a moment ago", ErrProviderUnavailable)
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, v.client), 5*time.Second)
	defer cancel()
	provider, err := oidc.NewProvider(ctx, v.issuer)
	var doc struct {
		JWKS string `json:"jwks_uri"`
	}
	if err == nil {
		err = provider.Claims(&doc)
	}
	if err == nil && doc.JWKS == "" {
		err = errors.New("the discovery document names no jwks_uri")
	}
	if err != nil {
		v.failedAt = time.Now()
		return nil, fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
	}
	keys := &keySet{url: doc.JWKS, client: v.client}
	v.verifier = oidc.NewVerifier(v.issuer, keys, &oidc.Config{ClientID: v.audience, SupportedSigningAlgs: asymmetric})
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
