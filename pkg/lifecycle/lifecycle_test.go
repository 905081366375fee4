package lifecycle_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/order-system/order-system/pkg/lifecycle"
)

func TestWorkersStopAfterInputs(t *testing.T) {
	t.Parallel()
	ctx, stop := context.WithCancel(context.Background())
	g := lifecycle.NewGroup(ctx)
	var inputDone, workerSawInputDone atomic.Bool
	g.Go("input", func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // finishing accepted work
		inputDone.Store(true)
		return nil
	})
	g.Background("worker", func(ctx context.Context) error {
		<-ctx.Done()
		workerSawInputDone.Store(inputDone.Load())
		return nil
	})
	stop()
	if err := g.Wait(); err != nil {
		t.Fatalf("Wait = %v, want nil after a plain stop", err)
	}
	if !workerSawInputDone.Load() {
		t.Fatal("the worker was stopped before the input finished")
	}
}

func TestFailureStopsEverything(t *testing.T) {
	t.Parallel()
	g := lifecycle.NewGroup(context.Background())
	boom := errors.New("boom")
	g.Go("input", func(ctx context.Context) error { <-ctx.Done(); return nil })
	g.Background("worker", func(ctx context.Context) error { return boom })
	if err := g.Wait(); !errors.Is(err, boom) {
		t.Fatalf("Wait = %v, want the worker's failure", err)
	}
}

func TestSignalIsAPlainStop(t *testing.T) {
	t.Parallel()
	ctx, stop := context.WithCancelCause(context.Background())
	g := lifecycle.NewGroup(ctx)
	g.Go("input", func(ctx context.Context) error { <-ctx.Done(); return nil })
	stop(errors.New("terminated signal received"))
	if err := g.Wait(); err != nil {
		t.Fatalf("Wait = %v, want nil: being asked to stop is not a failure", err)
	}
}
