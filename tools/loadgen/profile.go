package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/profile"

	"github.com/order-system/order-system/tools/loadgen/flame"
)

// profileFlag collects -cpu-profile name=URL pairs: a service whose Go CPU profiler serves
// URL/debug/pprof/profile (PPROF=true make run), to be profiled while orders are placed.
type profileFlag map[string]string

func (f profileFlag) String() string { return fmt.Sprint(map[string]string(f)) }

func (f profileFlag) Set(v string) error {
	name, url, ok := strings.Cut(v, "=")
	if !ok || name == "" || !strings.HasPrefix(url, "http") {
		return fmt.Errorf("want name=http://host:port, got %q", v)
	}
	if _, dup := f[name]; dup {
		return fmt.Errorf("%s named twice", name)
	}
	f[name] = strings.TrimRight(url, "/")
	return nil
}

// profiles are the CPU profiles being taken over the window orders are placed in: the same
// window as the CPU bill, so that the flame graphs show where the bill's seconds went.
type profiles struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// startProfiles asks each service for a CPU profile of the next d (whole seconds, as the
// profiler takes them), written as <prefix>-<name>.pprof and drawn as <prefix>-<name>-flame.svg.
func startProfiles(targets map[string]string, d time.Duration, prefix string) *profiles {
	p := &profiles{}
	secs := int(math.Ceil(d.Seconds()))
	for name, url := range targets {
		p.wg.Go(func() {
			if err := takeProfile(name, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", url, secs), prefix+"-"+name, secs); err != nil {
				p.mu.Lock()
				p.errs = append(p.errs, fmt.Errorf("%s's CPU profile: %w", name, err))
				p.mu.Unlock()
			}
		})
	}
	return p
}

// wait waits for every profile (each ends once its seconds have passed) and says which failed.
func (p *profiles) wait() error {
	p.wg.Wait()
	return errors.Join(p.errs...)
}

func takeProfile(name, url, file string, secs int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d (is the service started with PPROF=true?): %.200s", url, resp.StatusCode, body)
	}
	prof, err := profile.Parse(bytes.NewReader(body))
	if err != nil {
		return err
	}
	tree, err := flame.Tree(prof)
	if err != nil {
		return err
	}
	var svg bytes.Buffer
	title := fmt.Sprintf("%s: CPU profile while orders were placed", name)
	if err := flame.Write(&svg, tree, title, time.Duration(prof.DurationNanos)); err != nil {
		return err
	}
	if err := os.WriteFile(file+".pprof", body, 0o644); err != nil {
		return err
	}
	return os.WriteFile(file+"-flame.svg", svg.Bytes(), 0o644)
}
