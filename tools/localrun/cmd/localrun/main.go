// Command localrun is the part of make run that knows the services (scripts/run.sh is the
// glue around it: the database, the gateway, Prometheus):
//
//	localrun list [-replicas n]      one line per instance: service, instance name, address
//	localrun build -o dir            the four services' binaries into dir
//	localrun start -service name -database url [-replicas n] [-bin dir] [-run-dir dir] [-timeout d]
//	                                 starts the service's instances in sessions of their own,
//	                                 their logs in <run-dir>/logs/<instance>.log and their pid
//	                                 files (pid and start time, for make stop) in
//	                                 <run-dir>/<instance>.pid, and waits until each is ready
//
// start passes its own environment on, so that what only one service may see (its client
// secret) is set for that call alone and never appears on a command line. When an instance
// does not become ready, start shows its last log lines and fails; the pid files it wrote
// let run.sh stop what was started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/order-system/order-system/tools/localrun"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "localrun:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("want list, build or start")
	}
	flags := flag.NewFlagSet("localrun "+args[0], flag.ContinueOnError)
	replicas := flags.Int("replicas", 1, "instances of each service, 1 to 9")
	switch args[0] {
	case "list":
		if err := parse(flags, args[1:], replicas); err != nil {
			return err
		}
		for _, s := range localrun.Services {
			for i := 1; i <= *replicas; i++ {
				fmt.Println(s.Name, s.Instance(i), s.Addr(i))
			}
		}
		return nil
	case "build":
		out := flags.String("o", "bin", "where the binaries go")
		if err := parse(flags, args[1:], replicas); err != nil {
			return err
		}
		return localrun.Build(context.Background(), *out)
	case "start":
		name := flags.String("service", "", "the service to start")
		database := flags.String("database", "", "its database URL; the service's schema is set as the search path")
		bin := flags.String("bin", "bin", "where its binary is")
		runDir := flags.String("run-dir", ".run", "where pid files and logs go")
		timeout := flags.Duration("timeout", time.Minute, "how long every instance has to become ready")
		if err := parse(flags, args[1:], replicas); err != nil {
			return err
		}
		svc, err := localrun.Find(*name)
		if err != nil {
			return err
		}
		if *database == "" {
			return errors.New("start: -database is required")
		}
		return start(svc, *replicas, svc.DatabaseURL(*database), *bin, *runDir, *timeout)
	default:
		return fmt.Errorf("%q: want list, build or start", args[0])
	}
}

func parse(flags *flag.FlagSet, args []string, replicas *int) error {
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	if *replicas < 1 || *replicas > 9 {
		return fmt.Errorf("-replicas must be 1 to 9, got %d", *replicas)
	}
	return nil
}

// start starts every instance first and then waits for them, so that they start together.
func start(svc localrun.Service, replicas int, database, bin, runDir string, timeout time.Duration) error {
	if err := os.MkdirAll(filepath.Join(runDir, "logs"), 0o755); err != nil {
		return err
	}
	procs := make([]*localrun.Process, 0, replicas)
	for i := 1; i <= replicas; i++ {
		name := svc.Instance(i)
		p, err := localrun.Start(localrun.Spec{
			Name: name, Program: filepath.Join(bin, svc.Name), Log: filepath.Join(runDir, "logs", name+".log"),
			Env: append(os.Environ(), "DATABASE_URL="+database, "HTTP_ADDR="+svc.Addr(i)), Detach: true,
		})
		if err != nil {
			return err
		}
		if err := p.WritePidFile(filepath.Join(runDir, name+".pid")); err != nil {
			p.Stop(10 * time.Second)
			return err
		}
		procs = append(procs, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i, p := range procs {
		if err := p.WaitReady(ctx, "http://"+svc.Addr(i+1)+"/readyz"); err != nil {
			return err // run.sh stops what it started, by the pid files
		}
	}
	return nil
}
