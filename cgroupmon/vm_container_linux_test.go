package cgroupmon

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgmon/cgmon/metrics"
)

// The container scenarios of internal/vmtest (make vmtest): these tests run
// inside a container as Docker and Podman make one on a cgroup v2 host,
// where clone3 is answered ENOSYS by seccomp.
const (
	containerUnprivileged = "container-unprivileged"
	containerPrivileged   = "container-privileged"
	// vmContainerID is the container's id in both (vmtest.ContainerID).
	vmContainerID = "c9e7a1f0d2b34c5e8f6a7b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
)

// TestVMInsideContainer is cgmon inside the VM's containers: where the
// cgroup mount is read-only it falls back to procfs and says why; where
// it is writable but the namespace root holds the container's processes,
// executions get no controllers until Options.MoveOthers moves them, and
// then their numbers and limits are exact.
func TestVMInsideContainer(t *testing.T) {
	switch scenario {
	case containerUnprivileged:
		testUnprivilegedContainer(t)
	case containerPrivileged:
		testPrivilegedContainer(t)
	default:
		t.Skipf("runs inside the VM's containers (make vmtest, scenarios %s and %s); scenario %q", containerUnprivileged, containerPrivileged, scenario)
	}
}

// procfsPeak are the sources of a memory peak measured without a memory
// controller.
var procfsPeak = []metrics.Source{metrics.SourceRusageMaxRSS, metrics.SourceProcVmHWM, metrics.SourceSampledProcRSS}

func testUnprivilegedContainer(t *testing.T) {
	const mount = "/sys/fs/cgroup"
	p, err := ProbeHost(Options{})
	require.NoError(t, err)
	c := p.Container
	require.NotNil(t, c, "inside a container, and no sign of it seen")
	assert.Equal(t, "docker", c.Runtime)
	assert.True(t, c.NamespaceRoot, "%q", c.Signals)
	assert.True(t, c.ReadOnly, "%q", c.Signals)
	assert.Len(t, c.Signals, 3)
	assert.Equal(t, PathProcfs, p.Path)
	assert.Equal(t, metrics.BackendProcfs, p.Backend)
	require.Len(t, p.Gaps, 1, "%+v", p.Gaps)
	assert.Contains(t, p.Gaps[0].Remedy, "--cgroupns=private")

	m := newMonitor(t, Options{Subreaper: true, Interval: 50 * time.Millisecond})
	require.Equal(t, metrics.BackendProcfs, m.Backend())
	ex := mustRun(t, m, Spec{Command: []string{wl(t, "alloc"), "32", "300"}})
	require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
	peak, ok := ex.Usage.MemoryPeak.Get()
	require.True(t, ok, ex.Usage.MemoryPeak.Reason())
	assert.Contains(t, procfsPeak, ex.Usage.MemoryPeak.Source(), "labelled procfs")
	assert.GreaterOrEqual(t, peak, uint64(32<<20))
	assert.Equal(t, metrics.SourceRusage, ex.Usage.CPUTotal.Source())
	limit := int64(64 << 20)
	assert.ErrorIs(t, m.CheckLimits(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}), ErrControllerUnavailable)

	_, err = New(Options{MoveOthers: true})
	require.ErrorIs(t, err, ErrNotDelegated, "nothing can be moved on a read-only mount")
	assert.Contains(t, err.Error(), "read-only")
	_, err = os.Stat(filepath.Join(mount, othersLeaf))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func testPrivilegedContainer(t *testing.T) {
	const mount = "/sys/fs/cgroup"
	before := procsOf(t, mount)
	require.GreaterOrEqual(t, len(before), 3, "the container's init, its sleep and this test")
	p, err := ProbeHost(Options{})
	require.NoError(t, err)
	c := p.Container
	require.NotNil(t, c)
	assert.Equal(t, "podman", c.Runtime)
	assert.Equal(t, vmContainerID, c.ID)
	assert.True(t, c.NamespaceRoot)
	assert.False(t, c.ReadOnly)
	ip := p.InternalProcesses
	require.NotNil(t, ip, "the namespace root holds %v", before)
	assert.Equal(t, mount, ip.Cgroup)
	assert.Equal(t, []string{"cpu", "io", "memory", "pids"}, ip.Controllers)
	assert.Equal(t, mount+"/init", ip.Sibling)

	t.Run("without the opt-in", func(t *testing.T) {
		m := newMonitor(t, Options{Interval: 50 * time.Millisecond})
		require.Equal(t, metrics.BackendHybrid, m.Backend(), m.probe.RootReason)
		assert.False(t, m.hasController("memory"))
		limit := int64(64 << 20)
		assert.ErrorIs(t, m.CheckLimits(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}), ErrControllerUnavailable)
		h, err := m.Start(context.Background(), Spec{Command: []string{wl(t, "alloc"), "32", "300"}})
		require.NoError(t, err)
		assert.True(t, h.r.gated, "clone3 is ENOSYS here: the start must be the gated one")
		ex, err := h.Wait()
		require.NoError(t, err)
		assertLabelled(t, ex)
		require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
		assert.Contains(t, procfsPeak, ex.Usage.MemoryPeak.Source(), "no memory controller: labelled procfs")
		assert.Equal(t, metrics.SourceCgroupCPUStat, ex.Usage.CPUTotal.Source())

		// Never done without being asked.
		_, err = os.Stat(mount + "/init")
		assert.ErrorIs(t, err, fs.ErrNotExist)
		assert.Empty(t, strings.TrimSpace(readString(t, mount+"/cgroup.subtree_control")))
		assert.Contains(t, procsOf(t, mount), strconv.Itoa(os.Getpid()))
	})

	t.Run("with MoveOthers", func(t *testing.T) {
		t.Cleanup(func() { restoreNamespaceRoot(t, mount) })
		m, err := New(Options{MoveOthers: true, Interval: 50 * time.Millisecond})
		require.NoError(t, err)
		defer func() { require.NoError(t, m.Close()) }()
		mo := m.Probe().MovedOthers
		require.NotNil(t, mo)
		assert.Equal(t, mount, mo.From)
		assert.Equal(t, mount+"/init", mo.To)
		assert.GreaterOrEqual(t, mo.Processes, 3)
		assert.Empty(t, procsOf(t, mount), "the namespace root holds no process now")
		assert.Contains(t, procsOf(t, mount+"/init"), strconv.Itoa(os.Getpid()))
		require.Equal(t, metrics.BackendCgroup2, m.Backend(), m.probe.RootReason)
		for _, ctl := range []string{"cpu", "memory", "pids", "io"} {
			assert.True(t, m.hasController(ctl), "%s not enabled in %s", ctl, m.rootPath())
		}

		h, err := m.Start(context.Background(), Spec{Command: []string{wl(t, "alloc"), "48", "10"}})
		require.NoError(t, err)
		assert.True(t, h.r.gated, "clone3 is ENOSYS here: the start must be the gated one")
		ex, err := h.Wait()
		require.NoError(t, err)
		assertLabelled(t, ex)
		require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
		peak, ok := ex.Usage.MemoryPeak.Get()
		require.True(t, ok, ex.Usage.MemoryPeak.Reason())
		assert.Equal(t, metrics.SourceCgroupMemoryPeak, ex.Usage.MemoryPeak.Source())
		assert.InEpsilon(t, float64(48<<20), float64(peak), 0.10, "memory.peak of a 10 ms spike, exact as on a host")
		assert.Equal(t, metrics.SourceCgroupPidsPeak, ex.Usage.PidsPeak.Source())

		limit, swap := int64(32<<20), int64(32<<20)
		oom := mustRun(t, m, Spec{
			Command: []string{wl(t, "alloc"), "96", "100"},
			Limits:  &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &swap}},
		})
		assert.Equal(t, metrics.StatusOOM, oom.Status, oom.Reason)
		assert.True(t, oom.OOMKilled)

		// The arrangement stays: a monitor started later needs no flag.
		later, err := New(Options{})
		require.NoError(t, err)
		assert.Equal(t, metrics.BackendCgroup2, later.Backend(), later.probe.RootReason)
		assert.Nil(t, later.Probe().InternalProcesses)
		require.NoError(t, later.Close())
		require.NoError(t, m.Close())
		_, err = os.Stat(mount + "/init")
		assert.NoError(t, err, "init is not cgmon's: Close leaves it")
	})
}

// procsOf lists the processes of a cgroup.
func procsOf(t *testing.T, dir string) []string {
	t.Helper()
	return strings.Fields(readString(t, dir+"/cgroup.procs"))
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// restoreNamespaceRoot puts the container back as it was before
// MoveOthers, for the tests that follow: the controllers off again, the
// processes of init back in the root, init removed. cgmon itself never
// does this. The monitors must be closed (their shared root gone).
func restoreNamespaceRoot(t *testing.T, mount string) {
	t.Helper()
	var off []string
	for _, c := range strings.Fields(readString(t, mount+"/cgroup.subtree_control")) {
		off = append(off, "-"+c)
	}
	if len(off) > 0 {
		require.NoError(t, os.WriteFile(mount+"/cgroup.subtree_control", []byte(strings.Join(off, " ")), 0))
	}
	sibling := filepath.Join(mount, othersLeaf)
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, pid := range procsOf(t, sibling) {
			_ = os.WriteFile(mount+"/cgroup.procs", []byte(pid), 0)
		}
		err := os.Remove(sibling)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("putting the container back: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
