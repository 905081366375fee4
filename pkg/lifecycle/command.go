package lifecycle

import "fmt"

// Subcommands every service binary understands.
const (
	Serve       = "serve"       // the default: run the service
	Migrate     = "migrate"     // apply migrations and exit (Kubernetes runs it before the app); also down N, force V, version
	Healthcheck = "healthcheck" // probe a running instance's /readyz (containers have no curl)
)

// Command returns the subcommand named by args, Serve when there is none. extra lists the
// service's own subcommands besides the common ones.
func Command(args []string, extra ...string) (string, error) {
	if len(args) == 0 {
		return Serve, nil
	}
	for _, c := range append([]string{Serve, Migrate, Healthcheck}, extra...) {
		if args[0] == c {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown command %q", args[0])
}
