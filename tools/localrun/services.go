// Package localrun starts order-system's services on this machine: the one implementation
// behind make run (and so make e2e and make bench, through scripts/run.sh and the localrun
// command) and behind the system tests' harness (and so make fault and make chaos). It knows
// the four services (their names, schemas and ports), builds them, and starts, watches and
// stops processes.
package localrun

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Service is one of the four services as it runs here.
type Service struct {
	// Name is the service's name, its binary's and its folder's: services/<name>/cmd/<name>.
	Name string
	// Schema is its schema in the one database the services share here.
	Schema string
	// Port is where its first instance listens under make run.
	Port int
}

// Services lists the four in the order they start: billing and notification first, since
// the others call or feed them.
var Services = []Service{
	{Name: "billing", Schema: "billing", Port: 8082},
	{Name: "notification", Schema: "notifications", Port: 8084},
	{Name: "user", Schema: "users", Port: 8081},
	{Name: "order", Schema: "orders", Port: 8083},
}

// Find returns the service of that name.
func Find(name string) (Service, error) {
	for _, s := range Services {
		if s.Name == name {
			return s, nil
		}
	}
	return Service{}, fmt.Errorf("no service %q: want billing, notification, user or order", name)
}

// Instance names instance i (from 1) of the service: the first keeps the service's name, the
// others are <name>.<i>, as make run's pid and log files are named.
func (s Service) Instance(i int) string {
	if i == 1 {
		return s.Name
	}
	return s.Name + "." + strconv.Itoa(i)
}

// Addr is where instance i (from 1) listens under make run: the service's port plus 100 for
// each instance after the first, on loopback.
func (s Service) Addr(i int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port+100*(i-1)))
}

// DatabaseURL is the database URL base with the service's schema as its search path. The
// URL is edited as text, not parsed: a URL that lists several hosts (a failover pair) is not
// one net/url accepts.
func (s Service) DatabaseURL(base string) string {
	if i := strings.Index(base, "search_path="); i >= 0 {
		rest := base[i+len("search_path="):]
		if j := strings.IndexByte(rest, '&'); j >= 0 {
			return base[:i] + "search_path=" + s.Schema + rest[j:]
		}
		return base[:i] + "search_path=" + s.Schema
	}
	if strings.Contains(base, "?") {
		return base + "&search_path=" + s.Schema
	}
	return base + "?search_path=" + s.Schema
}

// Build compiles the four services into dir, from the workspace the caller runs in.
func Build(ctx context.Context, dir string) error {
	for _, s := range Services {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, s.Name),
			"github.com/order-system/order-system/services/"+s.Name+"/cmd/"+s.Name)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", s.Name, err, out)
		}
	}
	return nil
}
