package system_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/order-system/order-system/tools/apicheck/tracecheck"
	"github.com/order-system/order-system/tools/localrun"
)

// jaegerConfig runs Jaeger v2 (an OpenTelemetry Collector) with only what the test needs:
// OTLP over HTTP in, memory storage, the query API; every address on loopback, at ports the
// test picked, and no telemetry port of its own.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
extensions:
  jaeger_storage:
    backends:
      memstore: {memory: {max_traces: 10000}}
  jaeger_query:
    storage: {traces: memstore}
    http: {endpoint: "%s"}
    grpc: {endpoint: "%s"}
receivers:
  otlp:
    protocols:
      http: {endpoint: "%s"}
exporters:
  jaeger_storage_exporter: {trace_storage: memstore}
`

// startJaeger starts a Jaeger of the test's own, storing in memory, from the binary JAEGER_BIN
// names, and returns its query API (where the test reads the traces back, as its UI does)
// with the OTLP endpoint the services export to. The test fails when there is no binary:
// make system builds it.
func startJaeger(t *testing.T) (*tracecheck.Jaeger, string) {
	t.Helper()
	bin := os.Getenv("JAEGER_BIN")
	if bin == "" {
		t.Fatal("JAEGER_BIN is not set: run make system, which builds Jaeger (scripts/build-jaeger.sh) and sets it")
	}
	queryAddr, grpcAddr, otlpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(config, fmt.Appendf(nil, jaegerConfig, queryAddr, grpcAddr, otlpAddr), 0o644); err != nil {
		t.Fatal(err)
	}
	proc, err := localrun.Start(localrun.Spec{Name: "jaeger", Program: bin, Args: []string{"--config", config},
		Log: filepath.Join(dir, "jaeger.log"),
		// Killed with the test binary too, should it die without its cleanups (a panic, a timeout).
		DieWithCaller: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Kill()
		if t.Failed() {
			t.Logf("jaeger's log:\n%s", proc.Tail(200))
		}
	})
	j := &tracecheck.Jaeger{URL: "http://" + queryAddr}
	if err := j.Ready(context.Background(), 30*time.Second); err != nil {
		t.Fatalf("%v; its log:\n%s", err, proc.Tail(200))
	}
	return j, "http://" + otlpAddr
}
