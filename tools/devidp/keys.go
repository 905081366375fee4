package main

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// keyRing holds the provider's signing key and the key it replaced. Rotating makes a new
// key sign from then on and keeps the previous one published, so that tokens it signed stay
// valid until they expire; the key before it leaves the set.
type keyRing struct {
	mu       sync.Mutex
	next     int
	current  *signingKey
	previous *signingKey
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

// publicKey is a signing key as the JWKS publishes it.
type publicKey struct{ *signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

func newKeyRing() (*keyRing, error) {
	r := &keyRing{}
	return r, r.rotate()
}

// rotate makes a new key the signing key.
func (r *keyRing) rotate() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	r.previous, r.current = r.current, &signingKey{id: fmt.Sprintf("key-%d", r.next), key: key}
	return nil
}

func (r *keyRing) signing() *signingKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// published are the keys the JWKS lists: the signing key and the one it replaced.
func (r *keyRing) published() []op.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := []op.Key{publicKey{r.current}}
	if r.previous != nil {
		keys = append(keys, publicKey{r.previous})
	}
	return keys
}
