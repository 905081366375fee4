package deploycheck_test

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// TestMain packages the library chart into each subchart first (deploy/helm/dependencies.sh,
// as make deploy-check does through make helm-deps), so that the tests render the library as
// it is in the tree, never a package left over from an older one. Without helm the tests that
// need it skip.
func TestMain(m *testing.M) {
	if _, err := exec.LookPath("helm"); err == nil {
		cmd := exec.Command("bash", "../../deploy/helm/dependencies.sh")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "deploy/helm/dependencies.sh: %v\n", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
