package cgroupmon

import (
	"github.com/cgmon/cgmon/metrics"
)

// Handle is a started (or attached) execution.
type Handle struct{ r *run }

// ID returns the execution's id.
func (h *Handle) ID() string { return h.r.spec.ID }

// Pid returns the main process's pid, or the attached pid; 0 for an
// attached cgroup and for a command that did not start.
func (h *Handle) Pid() int {
	if h.r.attached {
		return h.r.targetPID
	}
	if h.r.cmd == nil || h.r.cmd.Process == nil {
		return 0
	}
	return h.r.cmd.Process.Pid
}

// CgroupPath returns the execution's cgroup directory, empty for procfs.
// Once the execution has ended and its record is final, the directory is
// empty and is removed at the sampler's next tick, or by Monitor.Close.
func (h *Handle) CgroupPath() string {
	if h.r.leaf == nil {
		return ""
	}
	return h.r.leaf.path
}

// Usage returns a live snapshot of what the execution has used so far, from
// the sampler (the final record reads the kernel's counters instead).
func (h *Handle) Usage() metrics.Usage { return h.r.liveUsage() }

// Wait waits for the execution to end and returns its record; the error is
// non-nil only for a failed start (ErrStart) or when measuring failed.
func (h *Handle) Wait() (metrics.Execution, error) {
	<-h.r.done
	return h.r.result()
}

// Done is closed when the execution has ended and its record is final.
func (h *Handle) Done() <-chan struct{} { return h.r.done }

// Kill kills every process of a started execution now; it ends with
// status canceled. Killing an ended execution does nothing. On an attached
// target (Attach) Kill kills nothing: it stops the watch, and the record
// says canceled while the target goes on running.
func (h *Handle) Kill() error {
	h.r.kill(metrics.StatusCanceled)
	return nil
}

// sampleNow takes a sample at once (ResourceMonitor.UpdateMonitoring).
func (h *Handle) sampleNow() { h.r.tick() }
