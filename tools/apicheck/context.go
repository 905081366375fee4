package apicheck

import "context"

type bodyKey struct{}

// withBody keeps the request body, already read, for the response check of the proxy.
func withBody(ctx context.Context, body []byte) context.Context {
	return context.WithValue(ctx, bodyKey{}, body)
}
