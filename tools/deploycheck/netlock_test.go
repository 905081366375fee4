package deploycheck_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The network lock's holder is a process of its own that outlives its script on purpose (a
// killed run keeps the lock until its down command cleans up). A script killed while it still
// waited for the lock must not leave one behind, though: nobody would ever release it. This
// runs scripts/netlock.sh against a lock file of the test's own.
func TestNetLockFreedWhenTheWaiterDies(t *testing.T) {
	dir := t.TempDir()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "lock")
	t.Cleanup(func() { stopHolders(t, lock) })
	script := `
. scripts/lib.sh
. scripts/netlock.sh
holders() { netlock_holders | grep -o '(pid' | wc -l; }
netlock_take "$D/a.pid" || exit 1
bash -c '. scripts/lib.sh; . scripts/netlock.sh; netlock_take "$D/b.pid"; sleep 60' &
waiter=$!
for _ in $(seq 100); do [ "$(holders)" -eq 2 ] && break; sleep 0.1; done
[ "$(holders)" -eq 2 ] || { echo "the second script never waited for the lock"; exit 1; }
kill "$waiter"; wait "$waiter"
netlock_release "$D/a.pid"
if ! NET_LOCK_WAIT=5 netlock_take "$D/c.pid"; then echo "the lock stayed taken after its waiter died"; exit 1; fi
netlock_release "$D/c.pid"
[ ! -e "$D/b.pid" ] || { echo "the dead waiter's holder wrote $(cat "$D/b.pid")"; exit 1; }
netlock_take "$D/a.pid" || exit 1
NET_LOCK_WAIT=1 netlock_take "$D/d.pid" && { echo "took a held lock"; exit 1; }
netlock_release "$D/a.pid"
echo done
`
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "NET_LOCK="+lock, "D="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "done\n") {
		t.Fatalf("netlock: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "it is held by: flock (pid ") {
		t.Errorf("a take that timed out does not say who holds the lock:\n%s", out)
	}
}

// stopHolders stops what a failed run left holding or waiting for the test's lock: each
// flock process lslocks names for it, and the holder it started.
func stopHolders(t *testing.T, lock string) {
	out, err := exec.Command("lslocks", "-n", "-o", "PID,PATH").Output()
	if err != nil {
		t.Logf("lslocks: %v", err)
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 2 || fields[1] != lock {
			continue
		}
		exec.Command("pkill", "-P", fields[0]).Run()
		exec.Command("kill", fields[0]).Run()
	}
}
