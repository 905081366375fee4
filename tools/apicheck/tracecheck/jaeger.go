package tracecheck

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Jaeger reads traces from the query API of a Jaeger (v1 or v2), the one its UI uses: a
// Store.
type Jaeger struct {
	URL string // the query service's base URL, e.g. http://127.0.0.1:16686

	mu   sync.Mutex
	errs []string
}

// jaegerTrace is the part of the query API's answer for one trace that the checks read.
type jaegerTrace struct {
	Data []struct {
		Spans []struct {
			SpanID        string `json:"spanID"`
			OperationName string `json:"operationName"`
			References    []struct {
				RefType string `json:"refType"`
				SpanID  string `json:"spanID"`
			} `json:"references"`
			Tags []struct {
				Key   string `json:"key"`
				Value any    `json:"value"`
			} `json:"tags"`
			ProcessID string `json:"processID"`
		} `json:"spans"`
		Processes map[string]struct {
			ServiceName string `json:"serviceName"`
		} `json:"processes"`
	} `json:"data"`
}

// Ready waits up to timeout until the query API answers.
func (j *Jaeger) Ready(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var services struct{ Data []string }
		_, err := j.get(ctx, "/api/services", &services)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Jaeger's query API at %s did not answer within %s: %w", j.URL, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Trace reads trace id: none yet is a 404, which is no spans. A span without a status tag is
// UNSET, as OTLP has it.
func (j *Jaeger) Trace(id string) []Span {
	var tr jaegerTrace
	status, err := j.get(context.Background(), "/api/traces/"+id, &tr)
	if status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		j.fail(err)
		return nil
	}
	var spans []Span
	for _, d := range tr.Data {
		for _, s := range d.Spans {
			sp := Span{Service: d.Processes[s.ProcessID].ServiceName, Name: s.OperationName, ID: s.SpanID, Status: "UNSET"}
			for _, ref := range s.References {
				if ref.RefType == "CHILD_OF" {
					sp.Parent = ref.SpanID
				}
			}
			for _, tag := range s.Tags {
				switch v := fmt.Sprint(tag.Value); tag.Key {
				case "span.kind":
					sp.Kind = strings.ToUpper(v)
				case "otel.status_code":
					sp.Status = v
				}
			}
			spans = append(spans, sp)
		}
	}
	return spans
}

// TraceIDs names the services Jaeger has seen: its API lists traces per service only.
func (j *Jaeger) TraceIDs() []string {
	var services struct{ Data []string }
	if _, err := j.get(context.Background(), "/api/services", &services); err != nil {
		return []string{err.Error()}
	}
	return []string{"services seen: " + strings.Join(services.Data, ", ")}
}

// Errors returns what went wrong reading traces.
func (j *Jaeger) Errors() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.errs...)
}

func (j *Jaeger) fail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.errs = append(j.errs, err.Error())
}

// get decodes the JSON answer of a GET of path into v, and returns the status.
func (j *Jaeger) get(ctx context.Context, path string, v any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(j.URL, "/")+path, nil)
	if err != nil {
		return 0, err
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		return r.StatusCode, fmt.Errorf("GET %s: %s", path, r.Status)
	}
	return r.StatusCode, json.NewDecoder(r.Body).Decode(v)
}
