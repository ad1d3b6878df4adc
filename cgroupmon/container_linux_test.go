package cgroupmon

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgmon/cgmon/metrics"
)

// dockerMountinfo is a real container's mountinfo (Docker 24 on a systemd
// host): cgroup2 mounted read-only at the namespace's root.
func dockerMountinfo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "kernel", "container-docker", "proc-self-mountinfo"))
	require.NoError(t, err)
	return string(b)
}

// TestParseMountinfoReadOnly: the mount's own "ro" is seen, not the
// superblock's options, which stay rw for a read-only bind of cgroup2.
func TestParseMountinfoReadOnly(t *testing.T) {
	mounts, err := parseMountinfo([]byte(dockerMountinfo(t)))
	require.NoError(t, err)
	byPoint := map[string]mount{}
	for _, m := range mounts {
		byPoint[m.MountPoint] = m
	}
	cg := byPoint["/sys/fs/cgroup"]
	assert.Equal(t, mount{MountPoint: "/sys/fs/cgroup", FSType: "cgroup2", Source: "cgroup", SuperOptions: "rw,nsdelegate,memory_recursiveprot", Root: "/", ReadOnly: true}, cg)
	assert.False(t, byPoint["/proc"].ReadOnly)
	assert.True(t, byPoint["/sys"].ReadOnly)
	assert.False(t, byPoint["/dev/mqueue"].ReadOnly, "rw,nosuid,...: no ro among the options")
}

// containerHost is a fixture of cgmon inside a container: the namespace
// root's files (cgroup.type, which the real root lacks), the processes it
// holds, and the engine's marker file under /proc/self/root.
func containerHost(t *testing.T, mountinfo string, procs string, marker, content string) fakeHost {
	t.Helper()
	h := newFakeHost(t, "linux-6.1", mountinfo, "6.1.0-56-amd64", "/", "cpu io memory pids", "")
	require.NoError(t, os.WriteFile(filepath.Join(h.mount, "cgroup.type"), []byte("domain\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(h.mount, "cgroup.procs"), []byte(procs), 0o644))
	if marker != "" {
		p := filepath.Join(h.proc, "self", "root", marker)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return h
}

// TestProbeUnprivilegedDocker: a Docker container that is not privileged
// gives a read-only cgroup2 at its namespace's root. The probe names the
// container and the three signs, falls back to procfs, gives the remedy,
// and New with MoveOthers refuses (nothing can be moved) and makes nothing.
func TestProbeUnprivilegedDocker(t *testing.T) {
	h := containerHost(t, dockerMountinfo(t), "1\n7\n", ".dockerenv", "")
	opts := Options{ProcRoot: h.proc, CgroupMount: h.mount}
	p, err := ProbeHost(opts)
	require.NoError(t, err)
	require.NotNil(t, p.Container)
	c := p.Container
	assert.Equal(t, "docker", c.Runtime)
	assert.True(t, c.NamespaceRoot)
	assert.True(t, c.ReadOnly)
	assert.Len(t, c.Signals, 3, "%q", c.Signals)
	assert.Contains(t, strings.Join(c.Signals, "\n"), "/.dockerenv")
	assert.Equal(t, PathProcfs, p.Path)
	assert.Equal(t, metrics.BackendProcfs, p.Backend)
	assert.Contains(t, p.RootReason, "read-only")
	assert.Nil(t, p.InternalProcesses, "nothing can be enabled on a read-only mount")
	require.Len(t, p.Gaps, 1, "one gap, the container's, not the user manager's: %+v", p.Gaps)
	for _, want := range []string{"--cgroupns=private", "--privileged", "--systemd=always", "--move-others"} {
		assert.Contains(t, p.Gaps[0].Remedy, want)
	}
	assert.Contains(t, p.Gaps[0].What, "this Docker container")

	opts.MoveOthers = true
	_, err = New(opts)
	require.ErrorIs(t, err, ErrNotDelegated)
	assert.Contains(t, err.Error(), "read-only")
	_, err = os.Stat(filepath.Join(h.mount, "init"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "nothing was made")

	opts.Backend = BackendProcfs // no cgroup wanted: nothing to move, no error
	q, err := moveOthersIfAsked(opts, p)
	require.NoError(t, err)
	assert.Same(t, p, q)
}

// TestProbePrivilegedPodman: a writable namespace root holding the
// container's processes. The probe says which controllers they keep off
// and the remedy (never the echo into subtree_control, which the kernel
// refuses there); with MoveOthers it describes the host after the move:
// every controller, memory.peak exact.
func TestProbePrivilegedPodman(t *testing.T) {
	id := strings.Repeat("ab", 32)
	mi := "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
	h := containerHost(t, mi, "1\n7\n9\n", "run/.containerenv", "engine=\"podman-4.3.1\"\nname=\"judge\"\nid=\""+id+"\"\nrootless=0\n")
	p, err := ProbeHost(Options{ProcRoot: h.proc, CgroupMount: h.mount})
	require.NoError(t, err)
	require.NotNil(t, p.Container)
	assert.Equal(t, "podman", p.Container.Runtime)
	assert.Equal(t, id, p.Container.ID)
	assert.True(t, p.Container.NamespaceRoot)
	assert.False(t, p.Container.ReadOnly)
	assert.Equal(t, PathSharedRoot, p.Path)
	assert.Equal(t, metrics.BackendHybrid, p.Backend, "no memory controller below a root holding processes")
	ip := p.InternalProcesses
	require.NotNil(t, ip)
	assert.Equal(t, filepath.Clean(h.mount), ip.Cgroup)
	assert.Equal(t, 3, ip.Processes)
	assert.Equal(t, []string{"cpu", "io", "memory", "pids"}, ip.Controllers)
	assert.Equal(t, filepath.Join(h.mount, "init"), ip.Sibling)
	assert.False(t, ip.Move)
	require.Len(t, p.Gaps, 1, "one gap for the four controllers: %+v", p.Gaps)
	assert.Contains(t, p.Gaps[0].What, "no internal processes")
	assert.Contains(t, p.Gaps[0].Remedy, "--move-others")
	assert.NotContains(t, p.Gaps[0].Remedy, "echo +")

	q, err := ProbeHost(Options{ProcRoot: h.proc, CgroupMount: h.mount, MoveOthers: true})
	require.NoError(t, err)
	require.NotNil(t, q.InternalProcesses)
	assert.True(t, q.InternalProcesses.Move)
	assert.Equal(t, []string{"cpu", "io", "memory", "pids"}, q.Available)
	assert.Equal(t, metrics.BackendCgroup2, q.Backend)
	assert.Equal(t, metrics.SourceCgroupMemoryPeak, q.Sources[metrics.MetricMemoryPeak].first())
	assert.Empty(t, q.Gaps)
}

// TestProbeRealRootHoldingProcesses: the hierarchy's real root (no
// cgroup.type) is exempt from the no-internal-processes rule: processes in
// it keep nothing off, and nothing says to move them.
func TestProbeRealRootHoldingProcesses(t *testing.T) {
	h := newFakeHost(t, "linux-6.1", "25 23 0:22 / /sys/fs/cgroup rw,relatime - cgroup2 cg rw\n", "6.1.0", "/", "cpu io memory pids", "")
	p, err := ProbeHost(Options{ProcRoot: h.proc, CgroupMount: h.mount})
	require.NoError(t, err)
	assert.Nil(t, p.InternalProcesses)
	assert.Nil(t, p.Container, "no sign of a container")
}
