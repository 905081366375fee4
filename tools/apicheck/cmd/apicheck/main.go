// Command apicheck is a reverse proxy that checks the traffic passing through it against the
// OpenAPI documents (see package apicheck). On SIGTERM or SIGINT it prints what it saw and
// exits 1 if any exchange broke a document or, with -require-all, if an operation was never
// exercised.
//
//	apicheck -listen 127.0.0.1:8090 -upstream http://127.0.0.1:8000 api/openapi.yaml
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/order-system/order-system/tools/apicheck"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:8000", "where requests go")
	requireAll := flag.Bool("require-all", false, "fail unless every operation was exercised")
	flag.Parse()
	if err := run(*listen, *upstream, *requireAll, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "apicheck:", err)
		os.Exit(1)
	}
}

func run(listen, upstream string, requireAll bool, docs []string) error {
	if len(docs) == 0 {
		return errors.New("name at least one OpenAPI document")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	checker, err := apicheck.Load(ctx, docs...)
	if err != nil {
		return err
	}
	target, err := url.Parse(upstream)
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: checker.Proxy(target, nil), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(discard{}, "", 0)} // dropped connections are the proxy's answer to an unreachable upstream
	go srv.Serve(ln)
	fmt.Printf("apicheck: checking %v on %s → %s\n", docs, listen, upstream)
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)

	r := checker.Report()
	fmt.Printf("apicheck: %d exchanges checked, %d violations\n", r.Checked, len(r.Violations))
	for _, s := range r.Statuses {
		fmt.Println("  " + s)
	}
	for _, v := range r.Violations {
		fmt.Println("VIOLATION " + v)
	}
	for _, op := range r.Uncovered {
		fmt.Println("NOT EXERCISED " + op)
	}
	switch {
	case len(r.Violations) > 0:
		return fmt.Errorf("%d exchanges do not match the documents", len(r.Violations))
	case requireAll && len(r.Uncovered) > 0:
		return fmt.Errorf("%d operations were never exercised", len(r.Uncovered))
	case r.Checked == 0:
		return errors.New("no traffic went through the proxy")
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
