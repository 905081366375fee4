package system_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// jaeger is a Jaeger of the test's own, storing in memory: the services export their spans
// to its OTLP receiver, and the test reads the traces back from its query API, the one its
// UI uses.
type jaeger struct {
	query string // the query service's base URL

	mu   sync.Mutex
	errs []string
}

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

// startJaeger starts the Jaeger binary JAEGER_BIN names and returns it with the OTLP endpoint
// the services export to. The test fails when there is none: make system builds it.
func startJaeger(t *testing.T) (*jaeger, string) {
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
	logPath := filepath.Join(dir, "jaeger.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", config)
	cmd.Stdout, cmd.Stderr = log, log
	// Killed with the test binary too, should it die without its cleanups (a panic, a timeout).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("jaeger's log:\n%s", out)
		}
	})
	j := &jaeger{query: "http://" + queryAddr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r, err := http.Get(j.query + "/api/services"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logPath)
			t.Fatalf("jaeger's query API did not answer within 30 s; its log:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return j, "http://" + otlpAddr
}

// jaegerTrace is the part of the query API's answer for one trace that the test reads.
type jaegerTrace struct {
	Data []struct {
		Spans []struct {
			SpanID        string `json:"spanID"`
			OperationName string `json:"operationName"`
			References    []struct {
				RefType string `json:"refType"`
				SpanID  string `json:"spanID"`
			} `json:"references"`
			Tags      []jaegerTag `json:"tags"`
			ProcessID string      `json:"processID"`
		} `json:"spans"`
		Processes map[string]struct {
			ServiceName string `json:"serviceName"`
		} `json:"processes"`
	} `json:"data"`
}

type jaegerTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// trace reads trace id from the query API: none yet is a 404, which is no spans.
func (j *jaeger) trace(id string) []span {
	var tr jaegerTrace
	status, err := j.get("/api/traces/"+id, &tr)
	if status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		j.fail(err)
		return nil
	}
	var spans []span
	for _, d := range tr.Data {
		for _, s := range d.Spans {
			sp := span{service: d.Processes[s.ProcessID].ServiceName, name: s.OperationName, id: s.SpanID, status: "UNSET"}
			for _, ref := range s.References {
				if ref.RefType == "CHILD_OF" {
					sp.parent = ref.SpanID
				}
			}
			for _, tag := range s.Tags {
				switch v := fmt.Sprint(tag.Value); tag.Key {
				case "span.kind":
					sp.kind = strings.ToUpper(v)
				case "otel.status_code":
					sp.status = v
				}
			}
			spans = append(spans, sp)
		}
	}
	return spans
}

// traceIDs names the services Jaeger has seen: its API lists traces per service only.
func (j *jaeger) traceIDs() []string {
	var services struct{ Data []string }
	if _, err := j.get("/api/services", &services); err != nil {
		return []string{err.Error()}
	}
	return []string{"services seen: " + strings.Join(services.Data, ", ")}
}

func (j *jaeger) errors() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.errs...)
}

func (j *jaeger) fail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.errs = append(j.errs, err.Error())
}

// get decodes the JSON answer of a GET of path into v, and returns the status.
func (j *jaeger) get(path string, v any) (int, error) {
	r, err := http.Get(j.query + path)
	if err != nil {
		return 0, err
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		return r.StatusCode, fmt.Errorf("GET %s: %s", path, r.Status)
	}
	return r.StatusCode, json.NewDecoder(r.Body).Decode(v)
}
