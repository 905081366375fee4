// Package browser runs headless Chromium for the checks of pages as people see them (the API
// reference at /docs, the dashboard console): the DOM once the page's scripts have run, and
// screenshots.
//
// The browser resolves no host name but the page's, so it reaches nothing else (and none of
// its own services), and it starts from a new profile each time.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Chromium is a headless Chromium that reaches only Host.
type Chromium struct {
	Command string // "chromium"
	Host    string // the only host name the browser resolves
}

// run runs the browser headless on a new profile with the given arguments, and returns what
// it printed; its chatter on stderr (D-Bus, GPU) is shown only when it fails.
func (c Chromium) run(ctx context.Context, args ...string) (string, error) {
	profile, err := os.MkdirTemp("", "chromium-profile-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile,
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE " + c.Host,
		// Page time, not wall time: it does not run while a request is pending, so a loaded
		// machine gets as far as an idle one.
		"--virtual-time-budget=10000",
	}, args...)
	cmd := exec.CommandContext(ctx, c.Command, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("no answer in 90 s")
		}
		return "", fmt.Errorf("%s %s: %w\n%s", c.Command, args[len(args)-1], err, tail(stderr.String(), 20))
	}
	return stdout.String(), nil
}

// DumpDOM returns the page's DOM as the browser serializes it once its scripts have run
// (within 10 s of page time).
func (c Chromium) DumpDOM(ctx context.Context, page string) (string, error) {
	dom, err := c.run(ctx, "--dump-dom", page)
	if err == nil && strings.TrimSpace(dom) == "" {
		err = fmt.Errorf("%s: the browser printed no DOM", page)
	}
	return dom, err
}

// Screenshot saves an image of the page (PNG) in a window of width × height pixels.
func (c Chromium) Screenshot(ctx context.Context, page, file string, width, height int) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return err
	}
	os.Remove(abs) // so that the check below sees this run's image
	if _, err := c.run(ctx, fmt.Sprintf("--window-size=%d,%d", width, height), "--screenshot="+abs, page); err != nil {
		return err
	}
	if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
		return fmt.Errorf("%s: no screenshot written", page)
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
