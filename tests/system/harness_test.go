package system_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/tools/apicheck"
	"github.com/order-system/order-system/tools/localrun"
)

// binaries holds the four service binaries, built once per test run.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// contract checks every exchange of the tests against the OpenAPI documents: the tests'
// own requests to the services, and the services' calls to billing's internal API.
var contract *apicheck.Checker

func TestMain(m *testing.M) {
	flag.Parse()
	stopOwnServersBeforeTimeout()
	var err error
	contract, err = apicheck.Load(context.Background(), "../../api/openapi.yaml", "../../api/billing-internal.yaml")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stopOwnServers(code == 0)
	r := contract.Report()
	fmt.Printf("api contract: %d exchanges checked, %d violations, operations not exercised: %q\n", r.Checked, len(r.Violations), r.Uncovered)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "order-system-bin-")
		if buildErr != nil {
			return
		}
		buildErr = localrun.Build(context.Background(), binDir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// system is one isolated installation: its own database, its own broker vhost, its own ports.
type system struct {
	t     *testing.T
	bin   string
	dbURL string // superuser connection to the test database
	amqp  string
	db    *sql.DB
	env   map[string]string // extra environment for every service
	// svcEnv is extra environment for one service (by its name without the replica
	// number), after env.
	svcEnv map[string]map[string]string
	logDir string
	mu     sync.Mutex
	procs  map[string]*proc
	client *http.Client
	// toBilling is a checking proxy in front of billing for the user and order services.
	toBilling *httptest.Server
}

type proc struct {
	*localrun.Process
	addr string
}

// newSystem prepares a database and a vhost on the machine's servers; services start with
// start().
func newSystem(t *testing.T, env map[string]string) *system {
	t.Helper()
	return newSystemOn(t, dbtest.Machine(), env)
}

// newSystemOn is newSystem on the given servers.
func newSystemOn(t *testing.T, servers dbtest.Servers, env map[string]string) *system {
	t.Helper()
	bin := build(t)
	url := servers.NewDatabase(t, "users")
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, svc := range localrun.Services {
		if svc.Schema == "users" {
			continue // NewDatabase made it
		}
		if _, err := db.Exec("CREATE SCHEMA " + svc.Schema); err != nil {
			t.Fatal(err)
		}
	}
	s := &system{t: t, bin: bin, logDir: t.TempDir(), dbURL: url, amqp: servers.NewVhost(t), db: db, env: env, procs: map[string]*proc{}}
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: contract.Transport(&http.Transport{MaxIdleConnsPerHost: 256}, s.contractViolation)}
	t.Cleanup(s.stopAll)
	return s
}

func freeAddr(t *testing.T) string {
	port, err := localrun.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

func (s *system) serviceDB(name string) string {
	svc, err := localrun.Find(name)
	if err != nil {
		s.t.Fatal(err)
	}
	return svc.DatabaseURL(s.dbURL)
}

// start runs a service (name may be "order2" for a second order instance) and waits until
// it is ready. A restarted service keeps its address.
func (s *system) start(name string) *proc {
	s.t.Helper()
	svc := strings.TrimRight(name, "0123456789")
	database := s.serviceDB(svc)
	s.mu.Lock()
	addr := freeAddr(s.t)
	if old, ok := s.procs[name]; ok {
		addr = old.addr
	}
	env := append(environWithout("OTEL_"),
		"HTTP_ADDR="+addr, "DATABASE_URL="+database, "AMQP_URL="+s.amqp, "LOG_LEVEL=debug", "SHUTDOWN_TIMEOUT=10s")
	if _, ok := s.procs["billing"]; ok {
		env = append(env, "BILLING_URL="+s.billingProxy())
	}
	for k, v := range s.env {
		env = append(env, k+"="+v)
	}
	for k, v := range s.svcEnv[svc] {
		env = append(env, k+"="+v)
	}
	s.mu.Unlock()
	p, err := localrun.Start(localrun.Spec{Name: name, Program: filepath.Join(s.bin, svc), Env: env, Log: filepath.Join(s.logDir, name+".log")})
	if err != nil {
		s.t.Fatal(err)
	}
	started := &proc{Process: p, addr: addr}
	s.mu.Lock()
	s.procs[name] = started
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx, "http://"+addr+"/readyz"); err != nil {
		s.t.Fatal(err)
	}
	return started
}

// contractViolation fails the test for an exchange that breaks the OpenAPI documents. The
// fault and chaos tests break the database and the broker on purpose, and a 500 is what the
// document promises for an unexpected failure: there it is logged, not failed on (its body
// is still checked).
func (s *system) contractViolation(problem string) {
	if strings.Contains(problem, ": 500 internal:") && (strings.HasPrefix(s.t.Name(), "TestFault") || strings.HasPrefix(s.t.Name(), "TestChaos")) {
		s.t.Logf("api contract, under faults: %s", problem)
		return
	}
	s.t.Errorf("api contract: %s", problem)
}

// billingProxy returns the URL of the checking proxy in front of billing, starting it on
// first use; s.mu is held. Billing keeps its address when it restarts, so the proxy follows.
func (s *system) billingProxy() string {
	if s.toBilling == nil {
		target, _ := url.Parse("http://" + s.procs["billing"].addr)
		s.toBilling = httptest.NewServer(contract.Proxy(target, s.contractViolation))
		s.t.Cleanup(s.toBilling.Close)
	}
	return s.toBilling.URL
}

// startAll starts the four services, billing first (the others call it).
func (s *system) startAll() {
	for _, name := range []string{"billing", "notification", "user", "order"} {
		s.start(name)
	}
}

func (s *system) url(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.procs[name].addr
}

// running reports whether the named service has a live process.
func (s *system) running(name string) bool {
	s.mu.Lock()
	p, ok := s.procs[name]
	s.mu.Unlock()
	if !ok {
		return false
	}
	return !p.Exited()
}

// pause and resume freeze and thaw a service (SIGSTOP, SIGCONT): it keeps its connections
// and answers nothing meanwhile, like a stalled process.
func (s *system) pause(name string)  { s.sendSignal(name, syscall.SIGSTOP) }
func (s *system) resume(name string) { s.sendSignal(name, syscall.SIGCONT) }

func (s *system) sendSignal(name string, sig syscall.Signal) {
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if err := p.Signal(sig); err != nil {
		s.t.Fatalf("signal %v to %s: %v", sig, name, err)
	}
}

// signal sends sig to a service and waits for it to exit.
func (s *system) signal(name string, sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	p.Signal(sig)
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		s.t.Fatalf("%s did not exit after %v", name, sig)
	}
}

func (s *system) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, p := range s.procs {
		p.Stop(15 * time.Second)
		if s.t.Failed() {
			s.t.Logf("last lines of %s:\n%s", name, p.Tail(25))
		}
	}
}

func (s *system) tail(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name].Tail(25)
}

// response is an HTTP answer with its body kept as bytes. Status 0 means there was no
// answer (a transport error or the context ended): Err says why.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	Err    error
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// call sends a request to a service; a transport error is returned as status 0.
func (s *system) call(method, url, body string, header ...string) response {
	return s.callContext(context.Background(), method, url, body, header...)
}

// callContext is call bounded by ctx: a request that outlives it has no answer (status 0).
func (s *system) callContext(ctx context.Context, method, url, body string, header ...string) response {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return response{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return response{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{Err: fmt.Errorf("read body: %w", err)}
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// newUser registers a user and deposits amount (a JSON number) into their account.
func (s *system) newUser(amount string) string {
	s.t.Helper()
	r := s.call("POST", s.url("user")+"/users", `{"name":"Test","email":"test@example.com"}`)
	if r.Status != 201 {
		s.t.Fatalf("create user: %d %s", r.Status, r.Body)
	}
	var u struct{ ID string }
	r.json(s.t, &u)
	if amount != "0" {
		if r := s.call("POST", s.url("billing")+"/billing/deposit", `{"userId":"`+u.ID+`","amount":`+amount+`}`); r.Status != 200 {
			s.t.Fatalf("deposit: %d %s", r.Status, r.Body)
		}
	}
	return u.ID
}

func orderBody(user, price string) string {
	return `{"userId":"` + user + `","email":"buyer@example.com","price":` + price + `}`
}

func (s *system) order(key, user, price string) response {
	if key == "" {
		return s.call("POST", s.url("order")+"/orders", orderBody(user, price))
	}
	return s.call("POST", s.url("order")+"/orders", orderBody(user, price), "Idempotency-Key", key)
}

// count runs a counting query against the test database.
func (s *system) count(query string, args ...any) int {
	s.t.Helper()
	var n int
	if err := s.db.QueryRow(query, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// verifyLedger runs `billing verify` against the test database and fails on any violation.
func (s *system) verifyLedger() {
	s.t.Helper()
	if err := s.ledgerViolations(); err != nil {
		s.t.Fatal(err)
	}
}

// ledgerViolations runs `billing verify` and returns what it reported, if anything.
func (s *system) ledgerViolations() error {
	cmd := exec.Command(filepath.Join(s.bin, "billing"), "verify")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+s.serviceDB("billing"), "AMQP_URL="+s.amqp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("billing verify: %w\n%s", err, out.String())
	}
	return nil
}

// ctxTimeout is a helper for tests that bound their load loops.
func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// environWithout is the test's environment less the variables whose names start with prefix:
// the services must not export traces to whatever collector the shell running the tests
// names, nor take its sampler or protocol; a test that wants tracing sets its own.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}
