// Command otlpsink is an OTLP/HTTP trace endpoint that keeps nothing: it decodes every export,
// counts its spans and answers success, so that a benchmark pays the whole cost of exporting
// traces (encoding, sending) without a collector's. On SIGINT or SIGTERM it prints what it
// received and exits.
//
//	otlpsink -addr 127.0.0.1:4318
package main

import (
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4318", "address to listen on")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "otlpsink:", err)
		os.Exit(1)
	}
}

// sink counts what it was sent.
type sink struct {
	exports, spans, bad atomic.Int64
}

func run(addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &sink{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", s.export)
	srv := &http.Server{Addr: addr, Handler: mux}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Printf("otlpsink: %d spans in %d exports, %d exports unreadable\n", s.spans.Load(), s.exports.Load(), s.bad.Load())
	return nil
}

func (s *sink) export(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.reject(w, err)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		s.reject(w, err)
		return
	}
	var req collectorpb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		s.reject(w, err)
		return
	}
	n := 0
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	s.exports.Add(1)
	s.spans.Add(int64(n))
	resp, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(resp)
}

func (s *sink) reject(w http.ResponseWriter, err error) {
	s.bad.Add(1)
	http.Error(w, err.Error(), http.StatusBadRequest)
}
