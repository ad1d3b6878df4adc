package cgroupmon

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgmon/cgmon/metrics"
)

// snapshotDir records the names and contents of a cgroup's files that a
// writer could change, to show that Attach wrote nothing.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		if e.IsDir() {
			out[e.Name()+"/"] = ""
			continue
		}
		switch e.Name() {
		case "cgroup.subtree_control", "cgroup.freeze", "cgroup.type", "memory.max", "pids.max", "cpu.max", "memory.oom.group":
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			out[e.Name()] = string(b)
		}
	}
	return out
}

// TestAttachCgroup starts a known workload in a cgroup by other means
// (exec.Cmd with UseCgroupFD), attaches to the cgroup and compares.
func TestAttachCgroup(t *testing.T) {
	m := newMonitor(t, Options{Interval: 20 * time.Millisecond})
	if m.probe.Mount == "" || m.rootPath() == "" {
		t.Skipf("no writable cgroup v2 here to make the workload's cgroup: %s", m.probe.RootReason)
	}
	dir := filepath.Join(m.rootPath(), "attach-target-"+strconv.Itoa(os.Getpid()))
	require.NoError(t, os.Mkdir(dir, 0o755))
	t.Cleanup(func() { _ = syscall.Rmdir(dir) })
	d, err := os.Open(dir)
	require.NoError(t, err)
	defer d.Close()

	cmd := exec.Command(wl(t, "burn"), "1", "400")
	if fullV2Scenario() {
		cmd = exec.Command("/bin/sh", "-c", wl(t, "alloc")+" 40 300 & "+wl(t, "burn")+" 1 400; wait")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(d.Fd())}
	if err := cmd.Start(); errors.Is(err, syscall.ENOSYS) {
		// clone3 is refused (a container's seccomp filter): start the
		// workload stopped at its exec, move it, then let it run.
		cmd = startStoppedIn(t, dir, cmd.Args...)
	} else {
		require.NoError(t, err)
	}
	before := snapshotDir(t, dir)
	h, err := m.Attach(context.Background(), Target{CgroupPath: dir, Language: "c"})
	require.NoError(t, err)
	require.NoError(t, cmd.Wait())
	ex, err := h.Wait()
	require.NoError(t, err)
	assertLabelled(t, ex)
	assert.Equal(t, metrics.StatusEnded, ex.Status, ex.Reason)
	assert.Equal(t, -1, ex.ExitCode)
	cpu, ok := ex.Usage.CPUTotal.Get()
	require.True(t, ok, ex.Usage.CPUTotal.Reason())
	// The workload's own account (it and its waited children): the cgroup's
	// cpu.stat must agree within 5%.
	want := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	assert.GreaterOrEqual(t, want.Seconds(), 0.4)
	assert.InEpsilon(t, want.Seconds(), cpu.Seconds(), 0.05, "source %s", ex.Usage.CPUTotal.Source())
	assert.Equal(t, metrics.SourceCgroupCPUStat, ex.Usage.CPUTotal.Source())
	if fullV2Scenario() && scenario != "v2-5.10" {
		peak, ok := ex.Usage.MemoryPeak.Get()
		require.True(t, ok, ex.Usage.MemoryPeak.Reason())
		assert.Equal(t, metrics.SourceCgroupMemoryPeak, ex.Usage.MemoryPeak.Source())
		assert.InEpsilon(t, float64(40<<20), float64(peak), 0.02+float64(1<<20)/float64(40<<20), "40 MiB plus the shell")
	}
	assert.Equal(t, before, snapshotDir(t, dir), "Attach must not write to the cgroup")
}

// startStoppedIn starts argv traced, so that it stops right after its exec
// before running any instruction, moves it into the cgroup dir and lets it
// run: what a test does where clone3 (CLONE_INTO_CGROUP) is refused.
func startStoppedIn(t *testing.T, dir string, argv ...string) *exec.Cmd {
	t.Helper()
	runtime.LockOSThread() // ptrace requests come from the tracer's thread
	defer runtime.UnlockOSThread()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	require.NoError(t, cmd.Start())
	var ws syscall.WaitStatus
	_, err := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WALL, nil)
	require.NoError(t, err)
	require.True(t, ws.Stopped(), "the traced child did not stop at its exec: %v", ws)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0))
	require.NoError(t, syscall.PtraceDetach(cmd.Process.Pid))
	return cmd
}

func fullV2Scenario() bool {
	return scenario == "v2-6.1" || scenario == "v2-5.10" || scenario == "v2-rootless"
}

// TestAttachPIDProcfs attaches to a process this test started (not in a
// cgroup of its own here) and reads its memory from procfs.
func TestAttachPIDProcfs(t *testing.T) {
	m := newMonitor(t, Options{Interval: 20 * time.Millisecond})
	cmd := exec.Command(wl(t, "alloc"), "64", "400")
	require.NoError(t, cmd.Start())
	h, err := m.Attach(context.Background(), Target{PID: cmd.Process.Pid})
	require.NoError(t, err)
	ex, err := h.Wait() // the pidfd turns readable at exit, before our reap
	require.NoError(t, err)
	require.NoError(t, cmd.Wait())
	assertLabelled(t, ex)
	assert.Equal(t, metrics.StatusEnded, ex.Status)
	peak, ok := ex.Usage.MemoryPeak.Get()
	require.True(t, ok, ex.Usage.MemoryPeak.Reason())
	assert.Contains(t, []metrics.Source{metrics.SourceProcVmHWM, metrics.SourceSampledProcRSS, metrics.SourceRusageMaxRSS}, ex.Usage.MemoryPeak.Source())
	assert.InEpsilon(t, float64(64<<20), float64(peak), 0.10)
}

func TestAttachStopsWithoutKilling(t *testing.T) {
	m := newMonitor(t, Options{})
	cmd := exec.Command("/bin/sleep", "5")
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	h, err := m.Attach(context.Background(), Target{PID: cmd.Process.Pid, Duration: 150 * time.Millisecond})
	require.NoError(t, err)
	ex, err := h.Wait()
	require.NoError(t, err)
	assert.Equal(t, metrics.StatusCanceled, ex.Status)
	assert.NoError(t, cmd.Process.Signal(syscall.Signal(0)), "the target must still run")
	require.NoError(t, h.Kill())
}

func TestAttachBadTargets(t *testing.T) {
	m := newMonitor(t, Options{})
	_, err := m.Attach(context.Background(), Target{})
	assert.ErrorIs(t, err, ErrInvalidSpec)
	_, err = m.Attach(context.Background(), Target{PID: 1, CgroupPath: "/x"})
	assert.ErrorIs(t, err, ErrInvalidSpec)
	if m.probe.Mount != "" {
		_, err = m.Attach(context.Background(), Target{CgroupPath: "../../etc"})
		assert.ErrorIs(t, err, ErrInvalidSpec)
	}
	_, err = m.Attach(context.Background(), Target{PID: 1 << 30})
	assert.Error(t, err)
}
