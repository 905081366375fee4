// Command pause is the pod sandbox image of make cluster-up: a static program that holds the
// pod's namespaces and waits for SIGTERM. images.sh builds it outside the repository's
// modules, with the standard library only, so that no sandbox image is pulled from anywhere.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
