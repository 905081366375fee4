package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/order-system/order-system/tools/localrun"
)

// A Prometheus of a test's own, for a fault test that watches an alert of
// deploy/prometheus/rules.yml fire and resolve: the rules file as it is, every instance of the
// system scraped as the job of its service, as in production, only scraped and evaluated every
// second so that the alert's own thresholds are all the test waits for. Like the other
// servers, it is never the machine's: its port is free, its data is under the run's servers
// directory (kept when a test fails), and it is stopped in the test's cleanup, or by the
// timeout watchdog (stopOwnServersBeforeTimeout) when the binary is about to be killed.
type prometheus struct {
	*localrun.Process
	url  string
	once sync.Once
}

// prometheuses holds the Prometheus servers not yet stopped, for the timeout watchdog.
var prometheuses = struct {
	sync.Mutex
	servers map[*prometheus]bool
}{servers: map[*prometheus]bool{}}

// startPrometheus starts a Prometheus scraping every service instance of s that runs now,
// with its data under dir, and waits until it is ready.
func startPrometheus(t *testing.T, s *system, dir string) *prometheus {
	t.Helper()
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Fatal("the Prometheus server is not on PATH: install it with `bash scripts/install-tools.sh promtool` (make fault does)")
	}
	// A rule file that is not there is no error to Prometheus (a glob that matches nothing).
	rules, err := filepath.Abs("../../deploy/prometheus/rules.yml")
	if err == nil {
		_, err = os.Stat(rules)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir, err = os.MkdirTemp(dir, "prometheus-")
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(prometheusConfig(s, rules)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	prometheuses.Lock()
	proc, err := localrun.Start(localrun.Spec{Name: "prometheus", Program: "prometheus",
		Args: []string{"--config.file=" + config, "--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr},
		Log:  filepath.Join(dir, "prometheus.log"),
		// Killed with the test binary too, should it die without its cleanups (a panic, a
		// timeout shorter than the watchdog's).
		DieWithCaller: true})
	if err != nil {
		prometheuses.Unlock()
		t.Fatal(err)
	}
	p := &prometheus{Process: proc, url: "http://" + addr}
	prometheuses.servers[p] = true
	prometheuses.Unlock()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("last lines of prometheus:\n%s", p.Tail(25))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx, p.url+"/-/ready"); err != nil {
		t.Fatal(err)
	}
	return p
}

// prometheusConfig scrapes every instance of s as the job of its service (order2 is an
// instance of the job order).
func prometheusConfig(s *system, rules string) string {
	s.mu.Lock()
	jobs := map[string][]string{}
	for name, p := range s.procs {
		svc := strings.TrimRight(name, "0123456789")
		jobs[svc] = append(jobs[svc], fmt.Sprintf("'%s'", p.addr))
	}
	s.mu.Unlock()
	var b strings.Builder
	b.WriteString("global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n")
	fmt.Fprintf(&b, "rule_files: ['%s']\nscrape_configs:\n", rules)
	for svc, targets := range jobs {
		sort.Strings(targets)
		fmt.Fprintf(&b, "  - {job_name: %s, static_configs: [{targets: [%s]}]}\n", svc, strings.Join(targets, ", "))
	}
	return b.String()
}

// stop ends Prometheus (SIGTERM, then SIGKILL after 10 s), once.
func (p *prometheus) stop() {
	p.once.Do(func() {
		p.Stop(10 * time.Second)
		prometheuses.Lock()
		delete(prometheuses.servers, p)
		prometheuses.Unlock()
	})
}

// stopPrometheuses stops every Prometheus still running, for the timeout watchdog.
func stopPrometheuses() {
	prometheuses.Lock()
	list := make([]*prometheus, 0, len(prometheuses.servers))
	for p := range prometheuses.servers {
		list = append(list, p)
	}
	prometheuses.Unlock()
	for _, p := range list {
		p.stop()
	}
}

// alert is one alert of /api/v1/alerts: pending or firing (a resolved alert is not listed).
type alert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt time.Time         `json:"activeAt"`
}

// alerts returns the alerts named name, by their job label.
func (p *prometheus) alerts(t *testing.T, name string) map[string]alert {
	t.Helper()
	var body struct {
		Data struct{ Alerts []alert } `json:"data"`
	}
	p.get(t, "/api/v1/alerts", &body)
	byJob := map[string]alert{}
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] == name {
			byJob[a.Labels["job"]] = a
		}
	}
	return byJob
}

// targetsDown returns the scrape targets that are not up, as job/instance: error.
func (p *prometheus) targetsDown(t *testing.T) []string {
	t.Helper()
	var body struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/targets", &body)
	var down []string
	for _, target := range body.Data.ActiveTargets {
		if target.Health != "up" {
			down = append(down, fmt.Sprintf("%s/%s: %s %s", target.Labels["job"], target.Labels["instance"], target.Health, target.LastError))
		}
	}
	if len(body.Data.ActiveTargets) == 0 {
		down = append(down, "no target at all")
	}
	return down
}

// get decodes the JSON answer of Prometheus's API at path into v, failing the test when
// there is none.
func (p *prometheus) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(p.url + path)
	if err != nil {
		if p.Exited() {
			t.Fatalf("prometheus has exited:\n%s", p.Tail(25))
		}
		t.Fatalf("prometheus %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("prometheus %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("prometheus %s: %v", path, err)
	}
}

// poll calls cond every second until it holds or timeout has passed, and reports whether it
// held: Prometheus evaluates every second, and an alert takes minutes.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Second)
	}
	return true
}
