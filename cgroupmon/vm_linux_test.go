package cgroupmon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

// The tests in this file need a real cgroup v2 host with controllers; they
// run in the VM scenarios of internal/vmtest (make vmtest). Where the
// scenario promises a feature, its absence fails the test.

// fullV2 reports whether this scenario is a pure cgroup v2 host with every
// controller, and skips the test elsewhere (saying why).
func fullV2(t *testing.T) string {
	t.Helper()
	switch scenario {
	case "v2-6.1", "v2-5.10", "v2-rootless":
		return scenario
	}
	t.Skipf("needs a cgroup v2 host with controllers (make vmtest); scenario %q", scenario)
	return ""
}

func newV2Monitor(t *testing.T) *Monitor {
	t.Helper()
	m := newMonitor(t, Options{Interval: 50 * time.Millisecond})
	require.Equal(t, metrics.BackendCgroup2, m.Backend(), "scenario %s must give the cgroup2 backend: %s", scenario, m.probe.RootReason)
	for _, c := range []string{"cpu", "memory", "pids"} {
		require.True(t, m.hasController(c), "controller %s not enabled in %s", c, m.rootPath())
	}
	return m
}

func TestVMMemoryPeakCatchesShortSpike(t *testing.T) {
	sc := fullV2(t)
	m := newV2Monitor(t)
	// 48 MiB held for 10 ms: shorter than one 50 ms interval.
	ex := mustRun(t, m, Spec{Command: []string{wl(t, "alloc"), "48", "10"}})
	require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
	peak, ok := ex.Usage.MemoryPeak.Get()
	if sc == "v2-5.10" {
		// No memory.peak before 5.19: sampled and labelled as such, and a
		// spike between two samples may be missed: that is the point.
		if ok {
			assert.Equal(t, metrics.SourceSampledMemoryCurrent, ex.Usage.MemoryPeak.Source())
		} else {
			assert.Contains(t, ex.Usage.MemoryPeak.Reason(), "memory.peak is missing")
		}
		return
	}
	require.True(t, ok, ex.Usage.MemoryPeak.Reason())
	assert.Equal(t, metrics.SourceCgroupMemoryPeak, ex.Usage.MemoryPeak.Source())
	assert.InEpsilon(t, float64(48<<20), float64(peak), 0.10)
}

func TestVMMemoryPeakSampledOn510(t *testing.T) {
	if fullV2(t) != "v2-5.10" {
		t.Skip("the sampled fallback is for kernels without memory.peak (v2-5.10)")
	}
	m := newV2Monitor(t)
	ex := mustRun(t, m, Spec{Command: []string{wl(t, "alloc"), "48", "600"}})
	peak, ok := ex.Usage.MemoryPeak.Get()
	require.True(t, ok, ex.Usage.MemoryPeak.Reason())
	assert.Equal(t, metrics.SourceSampledMemoryCurrent, ex.Usage.MemoryPeak.Source(), "a lower bound, labelled")
	assert.InEpsilon(t, float64(48<<20), float64(peak), 0.15)
	assert.Equal(t, metrics.SourceSampledPidsCurrent, ex.Usage.PidsPeak.Source())
}

func TestVMMemoryMaxIsOOM(t *testing.T) {
	fullV2(t)
	m := newV2Monitor(t)
	limit, swap := int64(32<<20), int64(32<<20)
	ex := mustRun(t, m, Spec{
		Command: []string{wl(t, "alloc"), "96", "100"},
		Limits:  &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &swap}},
	})
	assert.Equal(t, metrics.StatusOOM, ex.Status, ex.Reason)
	assert.True(t, ex.OOMKilled)
	assert.Contains(t, ex.Reason, "oom_kill")
}

func TestVMTimeoutIsNotOOM(t *testing.T) {
	fullV2(t)
	m := newV2Monitor(t)
	limit := int64(256 << 20)
	ex := mustRun(t, m, Spec{
		Command: []string{wl(t, "stubborn")},
		Limits:  &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}},
		Timeout: 300 * time.Millisecond,
	})
	assert.Equal(t, metrics.StatusTimeout, ex.Status)
	assert.False(t, ex.OOMKilled, "a timeout kill is never called oom")
}

func TestVMPidsMaxContainsForkBomb(t *testing.T) {
	sc := fullV2(t)
	m := newV2Monitor(t)
	max := int64(16)
	var out bytes.Buffer
	ex := mustRun(t, m, Spec{
		Command: []string{wl(t, "forkbomb"), "200"},
		Limits:  &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &max}},
		Stdout:  &out,
	})
	failed, err := strconv.Atoi(strings.TrimSpace(out.String()))
	require.NoError(t, err, "forkbomb printed %q", out.String())
	assert.GreaterOrEqual(t, failed, 200-16, "pids.max must refuse forks")
	peak, ok := ex.Usage.PidsPeak.Get()
	require.True(t, ok, ex.Usage.PidsPeak.Reason())
	assert.LessOrEqual(t, peak, uint64(16))
	if sc != "v2-5.10" {
		assert.Equal(t, metrics.SourceCgroupPidsPeak, ex.Usage.PidsPeak.Source())
		assert.Equal(t, uint64(16), peak, "the bomb reaches the limit")
	}
}

func TestVMCPUMaxThrottles(t *testing.T) {
	fullV2(t)
	m := newV2Monitor(t)
	quota, period := int64(50000), uint64(100000)
	ex := mustRun(t, m, Spec{
		Command: []string{wl(t, "burn"), "1", "400"},
		Limits:  &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}},
	})
	require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
	thr, ok := ex.Usage.CPUThrottled.Get()
	require.True(t, ok, ex.Usage.CPUThrottled.Reason())
	assert.Greater(t, thr, 100*time.Millisecond, "half a CPU must throttle a busy thread")
	avg, _ := ex.Usage.CPUAveragePercent.Get()
	assert.InDelta(t, 50, avg, 12, "average near 50%% under cpu.max 50000 100000")
}

func TestVMQuotaWithoutPeriod(t *testing.T) {
	fullV2(t)
	m := newV2Monitor(t)
	quota := int64(20000)
	h, err := m.Start(context.Background(), Spec{
		Command: []string{wl(t, "burn"), "1", "50"},
		Limits:  &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota}},
	})
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(h.CgroupPath(), "cpu.max"))
	require.NoError(t, err)
	assert.Equal(t, "20000 100000", strings.TrimSpace(string(b)), "containerd drops a quota without period; cgmon uses the default period")
	_, err = h.Wait()
	require.NoError(t, err)
}

func TestVMDaemonKilledWithExecution(t *testing.T) {
	fullV2(t)
	m := newV2Monitor(t)
	var out bytes.Buffer
	h, err := m.Start(context.Background(), Spec{Command: []string{wl(t, "daemon"), "30000"}, Stdout: &out})
	require.NoError(t, err)
	assert.False(t, h.r.gated, "CLONE_INTO_CGROUP must be used where the kernel has it (5.7+)")
	ex, err := h.Wait()
	require.NoError(t, err)
	assert.Equal(t, 1, ex.LeftoverProcessesKilled)
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	assertGone(t, pid)
}

// TestVMOperatorSharedRootSurvives: on a pure cgroup v2 host as root, an
// operator made the default root <mount>/cgmon and set memory.max in it;
// default monitors use it and never remove it or its setting (issue 11:
// one default `cgmon run` used to remove it).
func TestVMOperatorSharedRootSurvives(t *testing.T) {
	switch scenario {
	case "v2-6.1", "v2-5.10":
	default:
		t.Skipf("needs the shared root of a pure cgroup v2 host as root (make vmtest); scenario %q", scenario)
	}
	p, err := ProbeHost(Options{})
	require.NoError(t, err)
	require.Equal(t, PathSharedRoot, p.Path, p.RootReason)
	root := p.Root
	_, err = os.Stat(root)
	require.ErrorIs(t, err, os.ErrNotExist, "a monitor left the shared root behind")
	require.NoError(t, os.Mkdir(root, 0o755)) // the operator's
	defer os.Remove(root)
	setting := filepath.Join(root, "memory.max")
	require.NoError(t, os.WriteFile(setting, []byte("268435456"), 0))
	for range 2 {
		m, err := New(Options{})
		require.NoError(t, err)
		require.Equal(t, root, m.rootPath())
		ex := mustRun(t, m, Spec{Command: []string{"/bin/true"}})
		assert.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
		require.NoError(t, m.Close())
		require.DirExists(t, root, "the operator's root was removed")
		b, err := os.ReadFile(setting)
		require.NoError(t, err)
		assert.Equal(t, "268435456", strings.TrimSpace(string(b)), "the operator's memory.max")
	}
}

// TestVMMarksAndLocks: every kernel of the VM scenarios (5.10, 6.1) has
// user xattrs on cgroupfs (5.7) and honours flock on a cgroup directory:
// a leaf carries its mark and its monitor's lock, and the lock is free
// once the leaf's monitor has let go.
func TestVMMarksAndLocks(t *testing.T) {
	if scenario == "" {
		t.Skip("the VM kernels' marks and locks (make vmtest); this host's are used by the other tests")
	}
	root := testRoot(t)
	m := newMonitor(t, Options{CgroupRoot: root})
	k, err := readMark(root)
	require.NoError(t, err)
	require.Equal(t, markRoot, k.kind, "user.cgmon on the root New made: %+v", k)
	h, err := m.Start(context.Background(), Spec{Command: []string{"sleep", "30"}})
	require.NoError(t, err)
	leaf := h.CgroupPath()
	k, err = readMark(leaf)
	require.NoError(t, err)
	require.Equal(t, markLeaf, k.kind, "user.cgmon on the leaf: %+v", k)
	assert.Contains(t, k.owner, "pid="+strconv.Itoa(os.Getpid())+" ")
	fd, err := openDir(leaf)
	require.NoError(t, err)
	defer unix.Close(fd)
	held, err := lockFD(fd)
	require.NoError(t, err)
	assert.True(t, held, "the live monitor's lock on its leaf")
	require.NoError(t, h.Kill())
	_, err = h.Wait()
	require.NoError(t, err)
}
