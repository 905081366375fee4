package localrun_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/order-system/order-system/tools/localrun"
)

func TestDatabaseURLSetsTheServicesSchema(t *testing.T) {
	order, err := localrun.Find("order")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ base, want string }{
		{"postgres://u@127.0.0.1:5432/db", "postgres://u@127.0.0.1:5432/db?search_path=orders"},
		{"postgres://u@/db?host=/run/pg&sslmode=disable", "postgres://u@/db?host=/run/pg&sslmode=disable&search_path=orders"},
		{"postgres://u@h/db?search_path=users&sslmode=disable", "postgres://u@h/db?search_path=orders&sslmode=disable"},
		{"postgres://u@h/db?sslmode=disable&search_path=users", "postgres://u@h/db?sslmode=disable&search_path=orders"},
		// A failover pair: several hosts, which net/url would refuse.
		{"postgres://u@127.0.0.1:6001,127.0.0.1:6002/db?target_session_attrs=read-write&search_path=users",
			"postgres://u@127.0.0.1:6001,127.0.0.1:6002/db?target_session_attrs=read-write&search_path=orders"},
	}
	for _, tt := range tests {
		if got := order.DatabaseURL(tt.base); got != tt.want {
			t.Errorf("DatabaseURL(%s) = %s, want %s", tt.base, got, tt.want)
		}
	}
}

func TestInstancesAreNamedAndPlacedAsMakeRunDoes(t *testing.T) {
	billing, err := localrun.Find("billing")
	if err != nil {
		t.Fatal(err)
	}
	if billing.Instance(1) != "billing" || billing.Instance(3) != "billing.3" || billing.Addr(1) != "127.0.0.1:8082" || billing.Addr(3) != "127.0.0.1:8282" {
		t.Errorf("billing's instances: %s %s %s %s", billing.Instance(1), billing.Instance(3), billing.Addr(1), billing.Addr(3))
	}
	if _, err := localrun.Find("orders"); err == nil {
		t.Error("Find(orders) found a service")
	}
	var names []string
	for _, s := range localrun.Services {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "billing notification user order" {
		t.Errorf("start order %q: billing and notification must come before user and order, which call or feed them", got)
	}
}

// TestPidFileNamesTheProcessByItsStartTime: the pid file holds what scripts/lib.sh's pid_live
// compares, the pid and field 22 of its stat.
func TestPidFileNamesTheProcessByItsStartTime(t *testing.T) {
	dir := t.TempDir()
	p, err := localrun.Start(localrun.Spec{Name: "sleep", Program: "sleep", Args: []string{"30"}, Log: filepath.Join(dir, "log"), DieWithCaller: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	pidFile := filepath.Join(dir, "sleep.pid")
	if err := p.WritePidFile(pidFile); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(p.Pid()) + " " + strings.Fields(string(stat))[21] + "\n"
	if string(b) != want {
		t.Errorf("pid file %q, want %q", b, want)
	}
	p.Stop(5 * time.Second)
	if !p.Exited() {
		t.Error("still running after Stop")
	}
}

func TestWaitReadyReportsAnExitWithTheLog(t *testing.T) {
	dir := t.TempDir()
	p, err := localrun.Start(localrun.Spec{Name: "broken", Program: "sh", Args: []string{"-c", "echo no database here; exit 3"}, Log: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = p.WaitReady(ctx, "http://"+freeAddr(t)+"/readyz")
	if !errors.Is(err, localrun.ErrExited) || !strings.Contains(err.Error(), "no database here") {
		t.Errorf("WaitReady = %v, want ErrExited with the log's last line", err)
	}
}

func TestWaitReadyWaitsForA200(t *testing.T) {
	dir := t.TempDir()
	ready := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ready:
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	p, err := localrun.Start(localrun.Spec{Name: "sleep", Program: "sleep", Args: []string{"30"}, Log: filepath.Join(dir, "log"), DieWithCaller: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.WaitReady(short, srv.URL+"/readyz"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady while the answer is 503 = %v, want the deadline", err)
	}
	close(ready)
	if err := p.WaitReady(context.Background(), srv.URL+"/readyz"); err != nil {
		t.Fatalf("WaitReady once the answer is 200 = %v", err)
	}
}

func freeAddr(t *testing.T) string {
	port, err := localrun.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
