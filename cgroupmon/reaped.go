package cgroupmon

import (
	"fmt"
	"strings"
)

// StaleLeaf is an execution cgroup whose monitor is gone.
type StaleLeaf struct {
	// Path is the cgroup directory.
	Path string `json:"path"`
	// Owner is what the leaf's mark says of the monitor that made it,
	// e.g. "pid=4242 pidns=4026531836 started=2026-12-01T10:00:00Z" (the pid
	// in that pid namespace); empty where the kernel has no user xattrs
	// on cgroupfs and the leaf is known by its name.
	Owner string `json:"owner"`
	// Processes is how many processes it held, in it and below it, when it
	// was found.
	Processes int `json:"processes"`
}

// Reaped is what New (or Reap) found and removed under the execution
// root: the leaves of monitors that died.
type Reaped struct {
	// Root is the execution root that was looked at; empty when the
	// monitor has none (procfs).
	Root string `json:"root"`
	// Leaves are the stale leaves that were removed.
	Leaves []StaleLeaf `json:"leaves"`
	// ProcessesKilled is how many processes were killed in them.
	ProcessesKilled int `json:"processes_killed"`
	// Failed names the stale leaves that could not be reaped now, with
	// why; a later reaping tries again.
	Failed []string `json:"failed,omitempty"`
}

// String says what was reaped in one line, empty when nothing was stale.
func (r Reaped) String() string {
	if len(r.Leaves) == 0 && len(r.Failed) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "reaped %d stale cgroup(s) under %s left by a monitor that died (%d process(es) killed)", len(r.Leaves), r.Root, r.ProcessesKilled)
	if len(r.Failed) > 0 {
		fmt.Fprintf(&b, "; %d could not be reaped: %s", len(r.Failed), strings.Join(r.Failed, "; "))
	}
	return b.String()
}
