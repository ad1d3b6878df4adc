package cgroupmon

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgmon/cgmon/metrics"
)

// scenario is the VM scenario the tests run in ("" on a development or CI
// host); see internal/vmtest.
var scenario = os.Getenv("CGMON_VM_SCENARIO")

// fakeHost is a fixture host under t.TempDir(): a proc root and a cgroup v2
// mount whose root files come from the real kernel samples.
type fakeHost struct {
	proc, mount string
}

const hybridMountinfo = `22 1 0:20 / /proc rw,relatime - proc proc rw
25 23 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
27 25 0:24 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
28 25 0:25 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

// newFakeHost builds a host: kernel is the sample directory (linux-6.1 or
// linux-5.10), ownCgroup the /proc/self/cgroup v2 path, controllers the
// mount root's cgroup.controllers and subtree_control.
func newFakeHost(t *testing.T, kernel, mountinfo, release, ownCgroup, controllers, subtree string) fakeHost {
	t.Helper()
	d := t.TempDir()
	h := fakeHost{proc: filepath.Join(d, "proc"), mount: filepath.Join(d, "cgroup")}
	write := func(p, s string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
	}
	write(filepath.Join(h.proc, "self", "mountinfo"), mountinfo)
	write(filepath.Join(h.proc, "self", "cgroup"), "0::"+ownCgroup+"\n")
	write(filepath.Join(h.proc, "sys", "kernel", "osrelease"), release+"\n")
	require.NoError(t, os.MkdirAll(h.mount, 0o755))
	write(filepath.Join(h.mount, "cgroup.controllers"), controllers+"\n")
	write(filepath.Join(h.mount, "cgroup.subtree_control"), subtree+"\n")
	write(filepath.Join(h.mount, "cgroup.procs"), "1\n")
	if kernel != "" {
		src := filepath.Join("..", "testdata", "kernel", kernel)
		for _, f := range []string{"cpu.pressure", "cgroup.kill", "memory.peak"} {
			if b, err := os.ReadFile(filepath.Join(src, f)); err == nil {
				write(filepath.Join(h.mount, f), string(b))
			}
		}
	}
	if ownCgroup != "/" {
		own := filepath.Join(h.mount, ownCgroup)
		write(filepath.Join(own, "cgroup.procs"), strconv.Itoa(os.Getpid())+"\n")
		write(filepath.Join(own, "cgroup.controllers"), subtree+"\n")
		write(filepath.Join(own, "cgroup.subtree_control"), "\n")
	}
	return h
}

func TestProbeFixtures(t *testing.T) {
	unified := "25 23 0:22 / /sys/fs/cgroup rw,relatime - cgroup2 cg rw\n"
	for _, tc := range []struct {
		name, kernel, mountinfo, release, own, ctrl, subtree string
		mode                                                 Mode
		backend                                              metrics.Backend
		selfMove                                             bool
		memory, pids                                         metrics.Source
		gaps                                                 int
	}{
		{
			name: "unified-6.1-delegated", kernel: "linux-6.1", mountinfo: unified, release: "6.1.0-56-amd64",
			own: "/user.slice/job", ctrl: "cpuset cpu io memory hugetlb pids rdma", subtree: "cpu io memory pids",
			mode: ModeUnified, backend: metrics.BackendCgroup2, selfMove: true,
			memory: metrics.SourceCgroupMemoryPeak, pids: metrics.SourceCgroupPidsPeak,
		},
		{
			name: "unified-5.10-delegated", kernel: "linux-5.10", mountinfo: unified, release: "5.10.0-32-amd64",
			own: "/user.slice/job", ctrl: "cpuset cpu io memory hugetlb pids rdma", subtree: "cpu io memory pids",
			mode: ModeUnified, backend: metrics.BackendCgroup2, selfMove: true,
			memory: metrics.SourceSampledMemoryCurrent, pids: metrics.SourceSampledPidsCurrent, gaps: 2,
		},
		{
			name: "hybrid-like-dev-machine", mountinfo: hybridMountinfo, release: "6.18.44",
			own: "/", ctrl: "hugetlb", subtree: "",
			mode: ModeHybrid, backend: metrics.BackendHybrid,
			memory: metrics.SourceRusageMaxRSS, pids: metrics.SourceSampledProcTree, gaps: 3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, tc.kernel, tc.mountinfo, tc.release, tc.own, tc.ctrl, tc.subtree)
			p, err := ProbeHost(Options{ProcRoot: h.proc, CgroupMount: h.mount})
			require.NoError(t, err)
			assert.Equal(t, tc.mode, p.Mode)
			assert.Equal(t, h.mount, p.Mount)
			assert.Equal(t, tc.own, p.OwnCgroup)
			assert.Equal(t, tc.selfMove, p.SelfMove, p.RootReason)
			assert.Equal(t, tc.backend, p.Backend)
			assert.Equal(t, tc.memory, p.Sources[metrics.MetricMemoryPeak].first(), p.Sources[metrics.MetricMemoryPeak].Reason)
			assert.Equal(t, tc.pids, p.Sources[metrics.MetricPidsPeak].first())
			assert.Len(t, p.Gaps, tc.gaps, "%+v", p.Gaps)
			for _, g := range p.Gaps {
				assert.NotEmpty(t, g.Remedy, "gap %q has no remedy", g.What)
			}
			if tc.selfMove {
				assert.Equal(t, filepath.Join(h.mount, tc.own), p.Root)
			} else {
				assert.Equal(t, filepath.Join(h.mount, "cgmon"), p.Root)
			}
		})
	}
}

func TestProbeNoCgroups(t *testing.T) {
	h := newFakeHost(t, "", "22 1 0:20 / /proc rw,relatime - proc proc rw\n", "6.1.0", "/", "", "")
	p, err := ProbeHost(Options{ProcRoot: h.proc})
	require.NoError(t, err)
	assert.Equal(t, ModeNone, p.Mode)
	assert.Empty(t, p.Root)
	assert.Equal(t, metrics.BackendProcfs, p.Backend)
	assert.Equal(t, metrics.SourceRusage, p.Sources[metrics.MetricCPUTotal].first())
	assert.Equal(t, "", string(p.Sources[metrics.MetricCPUThrottled].first()))
	assert.NotEmpty(t, p.Sources[metrics.MetricCPUThrottled].Reason)
	require.NotEmpty(t, p.Gaps)
}

func TestProbeRootOutsideMount(t *testing.T) {
	h := newFakeHost(t, "linux-6.1", "25 23 0:22 / /sys/fs/cgroup rw - cgroup2 cg rw\n", "6.1.0", "/", "cpu memory", "cpu memory")
	p, err := ProbeHost(Options{ProcRoot: h.proc, CgroupMount: h.mount, CgroupRoot: t.TempDir()})
	require.NoError(t, err)
	assert.Empty(t, p.Root)
	assert.Contains(t, p.RootReason, "not inside")
	_, err = New(Options{ProcRoot: h.proc, CgroupMount: h.mount, CgroupRoot: t.TempDir()})
	assert.ErrorIs(t, err, ErrNotDelegated, "an explicit root that cannot be used is an error, not a silent fallback")
}

func TestProbeThisHost(t *testing.T) {
	p, err := ProbeHost(Options{})
	require.NoError(t, err)
	switch scenario {
	case "":
		// The development and CI machines: hybrid, v2 without controllers.
		if p.Mode != ModeHybrid {
			t.Skipf("this host is %s, not the hybrid development host this test describes", p.Mode)
		}
		assert.Equal(t, PathSharedRoot, p.Path, "as root, <mount>/cgmon")
		assert.Equal(t, "/sys/fs/cgroup/unified", p.Mount)
		assert.Equal(t, metrics.BackendHybrid, p.Backend)
		assert.NotContains(t, p.Available, "memory")
		assert.Equal(t, metrics.SourceCgroupCPUStat, p.Sources[metrics.MetricCPUTotal].first())
		assert.Equal(t, metrics.SourceRusageMaxRSS, p.Sources[metrics.MetricMemoryPeak].first())
	case "hybrid":
		assert.Equal(t, ModeHybrid, p.Mode)
		assert.Equal(t, metrics.BackendHybrid, p.Backend)
	case "none":
		assert.Equal(t, ModeNone, p.Mode)
		assert.Equal(t, metrics.BackendProcfs, p.Backend)
	case "v2-6.1", "v2-rootless":
		assert.Equal(t, ModeUnified, p.Mode)
		assert.True(t, p.Features.MemoryPeak)
		assert.True(t, p.Features.CgroupKill)
		assert.Equal(t, metrics.SourceCgroupMemoryPeak, p.Sources[metrics.MetricMemoryPeak].first())
	case "v2-5.10":
		assert.Equal(t, ModeUnified, p.Mode)
		assert.False(t, p.Features.MemoryPeak)
		assert.False(t, p.Features.CgroupKill)
		assert.Equal(t, metrics.SourceSampledMemoryCurrent, p.Sources[metrics.MetricMemoryPeak].first())
	case "container-unprivileged":
		// A read-only cgroup2 at the container's namespace root.
		assert.Equal(t, ModeUnified, p.Mode)
		assert.Equal(t, metrics.BackendProcfs, p.Backend)
		assert.Equal(t, metrics.SourceRusageMaxRSS, p.Sources[metrics.MetricMemoryPeak].first())
	case "container-privileged":
		// Writable, but the namespace root holds the container's
		// processes: cpu.stat, and memory from procfs.
		assert.Equal(t, ModeUnified, p.Mode)
		assert.Equal(t, metrics.BackendHybrid, p.Backend)
		assert.Equal(t, metrics.SourceRusageMaxRSS, p.Sources[metrics.MetricMemoryPeak].first())
	case "systemd-rootless":
		// The test binaries run as runner in a scope that runner's systemd
		// delegated (systemd-run --user --scope -p Delegate=yes): path (a),
		// with what Debian delegates to users.
		assert.Equal(t, ModeUnified, p.Mode)
		assert.Equal(t, PathOwnCgroup, p.Path, p.RootReason)
		assert.Contains(t, p.Root, "/user@1000.service/")
		assert.ElementsMatch(t, []string{"cpu", "memory", "pids"}, p.Available)
	default:
		t.Fatalf("scenario %q: this test does not say what its probe must find", scenario)
	}
	for _, m := range metrics.Metrics {
		c, ok := p.Sources[m]
		require.True(t, ok, "the source table has no row for %s", m)
		assert.NotEmpty(t, c.Reason, "%s has no reason", m)
	}
}
