// Package lifecycle runs a service's long-lived parts (HTTP server, consumers, relays) side
// by side and stops them all when one fails or the process is asked to stop.
package lifecycle

import (
	"context"
	"fmt"
	"sync"
)

// Group runs functions until the first one fails or the parent context ends.
type Group struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
}

// NewGroup returns a group whose functions receive a context derived from ctx.
func NewGroup(ctx context.Context) *Group {
	ctx, cancel := context.WithCancelCause(ctx)
	return &Group{ctx: ctx, cancel: cancel}
}

// Go runs fn in its own goroutine. A non-nil error stops the whole group.
func (g *Group) Go(name string, fn func(ctx context.Context) error) {
	g.wg.Go(func() {
		if err := fn(g.ctx); err != nil {
			g.cancel(fmt.Errorf("%s: %w", name, err))
		}
	})
}

// Wait waits for every function to return and reports the first failure, if any. A plain
// stop (the parent context ended) is not a failure.
func (g *Group) Wait() error {
	g.wg.Wait()
	err := context.Cause(g.ctx)
	g.cancel(nil)
	if err == context.Canceled {
		return nil
	}
	return err
}
