// Package lifecycle runs a service's long-lived parts side by side and stops them in order:
// first the inputs (HTTP server, consumers), which finish what they accepted, then the
// background workers (outbox relay, reconciler), so that work accepted before the stop is
// still flushed.
package lifecycle

import (
	"context"
	"fmt"
	"sync"
)

// Group runs functions until the first one fails or the parent context ends.
type Group struct {
	front, back             context.Context
	cancelFront, cancelBack context.CancelCauseFunc
	frontWG, backWG         sync.WaitGroup

	mu  sync.Mutex
	err error // the first failure
}

// NewGroup returns a group stopped by ctx.
func NewGroup(ctx context.Context) *Group {
	g := &Group{}
	g.front, g.cancelFront = context.WithCancelCause(ctx)
	// Background work outlives the stop signal until the inputs are done.
	g.back, g.cancelBack = context.WithCancelCause(context.WithoutCancel(ctx))
	return g
}

// Go runs an input in its own goroutine: its context ends on the stop signal. A non-nil
// error stops the whole group.
func (g *Group) Go(name string, fn func(ctx context.Context) error) {
	g.frontWG.Go(func() {
		if err := fn(g.front); err != nil {
			g.fail(fmt.Errorf("%s: %w", name, err))
		}
	})
}

// Background runs a worker whose context ends only after every input returned.
func (g *Group) Background(name string, fn func(ctx context.Context) error) {
	g.backWG.Go(func() {
		if err := fn(g.back); err != nil {
			g.fail(fmt.Errorf("%s: %w", name, err))
		}
	})
}

func (g *Group) fail(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.mu.Unlock()
	g.cancelFront(err)
	g.cancelBack(err)
}

// Wait waits for the inputs, then stops and waits for the workers, and reports the first
// failure, if any. A plain stop (the parent context ended) is not a failure.
func (g *Group) Wait() error {
	g.frontWG.Wait()
	g.cancelBack(context.Canceled)
	g.backWG.Wait()
	g.cancelFront(nil)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
