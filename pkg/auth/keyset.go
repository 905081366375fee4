package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// quietAfterMiss is how long the JWKS is not fetched again after a fetch that did not find
// the key a token named (or failed).
const quietAfterMiss = 10 * time.Second

// keySet is the provider's JWKS as go-oidc checks signatures with it (an oidc.KeySet),
// cached and fetched again only for a key id it does not hold. A fetch that finds the key is
// a rotation and may come at any time; after one that does not (a forged key id), the next
// waits quietAfterMiss. go-oidc's own remote key set fetches again after any signature that
// fails, so a stream of forged tokens would make every service hammer the provider.
type keySet struct {
	url    string
	client *http.Client

	fetching sync.Mutex // one fetch at a time; lookups of known keys do not wait for it

	mu    sync.Mutex
	keys  map[string]jose.JSONWebKey // by key id
	quiet time.Time                  // no fetch before then
}

// fetchFailure is where VerifySignature leaves, for the Verify that called it, why the key
// set could not be fetched: go-oidc passes on the error as text only.
type fetchFailure struct{ err error }

type fetchFailureKey struct{}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, asymmetricJOSE)
	if err != nil {
		return nil, err
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	if kid == "" {
		return nil, errors.New("the token names no key")
	}
	key, err := k.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	return jws.Verify(&key)
}

// key returns the key kid, fetching the set again if it is not cached, unless a recent fetch
// missed.
func (k *keySet) key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	if key, ok := k.cached(kid); ok {
		return key, nil
	}
	k.fetching.Lock()
	defer k.fetching.Unlock()
	if key, ok := k.cached(kid); ok { // fetched while this call waited
		return key, nil
	}
	k.mu.Lock()
	quiet := time.Now().Before(k.quiet)
	k.mu.Unlock()
	if quiet {
		return jose.JSONWebKey{}, fmt.Errorf("unknown key id %q", kid)
	}
	keys, err := k.fetch(ctx)
	_, found := keys[kid]
	k.mu.Lock()
	if err == nil {
		k.keys = keys
	}
	if !found {
		k.quiet = time.Now().Add(quietAfterMiss)
	}
	k.mu.Unlock()
	if err != nil {
		if f, ok := ctx.Value(fetchFailureKey{}).(*fetchFailure); ok {
			f.err = err
		}
		return jose.JSONWebKey{}, err
	}
	if !found {
		return jose.JSONWebKey{}, fmt.Errorf("unknown key id %q", kid)
	}
	return keys[kid], nil
}

func (k *keySet) cached(kid string) (jose.JSONWebKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.keys[kid]
	return key, ok
}

// fetch reads the JWKS; keys that are not for signatures are left out.
func (k *keySet) fetch(ctx context.Context) (map[string]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch the JWKS: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode the JWKS: %w", err)
	}
	keys := map[string]jose.JSONWebKey{}
	for _, key := range set.Keys {
		if key.KeyID != "" && key.IsPublic() && (key.Use == "" || key.Use == "sig") {
			keys[key.KeyID] = key
		}
	}
	return keys, nil
}
