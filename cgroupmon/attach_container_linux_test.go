package cgroupmon

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgmon/cgmon/metrics"
)

// The ids of the fixture trees under testdata/cgroups/containers, one per
// layout (sha256 of the layout's name).
var containerFixtures = []struct {
	layout, id, dir string
}{
	{"docker-systemd", "6de102c1cecc011032305908295668eedad74d736c6d216e4c42f416ae84988f",
		"system.slice/docker-6de102c1cecc011032305908295668eedad74d736c6d216e4c42f416ae84988f.scope"},
	{"docker-cgroupfs", "fb081ee28007cf7662db5e3558f574e6698bfcc3250c545dac4ac4700025ddf4",
		"docker/fb081ee28007cf7662db5e3558f574e6698bfcc3250c545dac4ac4700025ddf4"},
	{"kubepods-containerd-systemd", "0691c9c8a855d58f9c19d6ee52955af75fa59094ab50f3cf796634bf9bdeb532",
		"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice/cri-containerd-0691c9c8a855d58f9c19d6ee52955af75fa59094ab50f3cf796634bf9bdeb532.scope"},
	{"kubepods-crio-systemd", "e9c0997fbaeee0331e8c124554af380926139fdaa38e889d76133ad1266b21c4",
		"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice/crio-e9c0997fbaeee0331e8c124554af380926139fdaa38e889d76133ad1266b21c4.scope"},
	{"kubepods-containerd-cgroupfs", "05b8bf954833d0fab48df9946150750c39c5f43bbced7b3134d2cffc12e0466f",
		"kubepods/burstable/pod0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/05b8bf954833d0fab48df9946150750c39c5f43bbced7b3134d2cffc12e0466f"},
	{"podman-systemd", "50441b5e7a2a26d2b8c70e8675122e3db74c157955230f1da5be639ee5e97267",
		"machine.slice/libpod-50441b5e7a2a26d2b8c70e8675122e3db74c157955230f1da5be639ee5e97267.scope"},
	{"podman-cgroupfs", "53524afa757bb9c4b03c7d93dbb7028703f61cb1c5085dd3028933f3525f1358",
		"libpod_parent/libpod-53524afa757bb9c4b03c7d93dbb7028703f61cb1c5085dd3028933f3525f1358"},
}

func containerFixture(t *testing.T, layout string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "testdata", "cgroups", "containers", layout))
	require.NoError(t, err)
	return dir
}

// TestFindContainerCgroupLayouts finds each runtime's container cgroup by
// its full id, a 12-digit prefix (docker ps), a 4-digit one, and the
// Kubernetes form "containerd://<id>". The conmon cgroups beside a Podman
// or CRI-O container share its id and must not make it ambiguous, and the
// pause container of a pod is a container of its own.
func TestFindContainerCgroupLayouts(t *testing.T) {
	for _, f := range containerFixtures {
		t.Run(f.layout, func(t *testing.T) {
			mount := containerFixture(t, f.layout)
			for _, q := range []string{f.id, f.id[:12], f.id[:4], "containerd://" + f.id} {
				dir, id, err := findContainerCgroup(mount, q)
				require.NoError(t, err, "id %s", q)
				assert.Equal(t, filepath.Join(mount, f.dir), dir, "id %s", q)
				assert.Equal(t, f.id, id)
			}
		})
	}
}

// TestContainerIDOf: the names each layout gives a container's cgroup,
// and near misses that are not a container's.
func TestContainerIDOf(t *testing.T) {
	id := strings.Repeat("3f2a", 16)
	for _, c := range []struct {
		parent, name string
		kube, ok     bool
	}{
		{"system.slice", "docker-" + id + ".scope", false, true},
		{"docker", id, false, true},
		{"burstable", id, true, true},
		{"pod1", "cri-containerd-" + id + ".scope", true, true},
		{"pod1", "crio-" + id + ".scope", true, true},
		{"pod1", "crio-" + id, true, true},
		{"machine.slice", "libpod-" + id + ".scope", false, true},
		{"libpod_parent", "libpod-" + id, false, true},
		{"system.slice", id, false, false},                                // a bare id outside docker/ and kubepods
		{"pod1", "crio-conmon-" + id + ".scope", true, false},             // CRI-O's conmon
		{"machine.slice", "libpod-conmon-" + id + ".scope", false, false}, // Podman's conmon
		{"system.slice", "docker-" + id[:63] + ".scope", false, false},    // 63 digits
		{"system.slice", "docker-" + strings.ToUpper(id) + ".scope", false, false},
		{"system.slice", "docker.service", false, false},
		{"system.slice", "docker-" + id + ".scope.bak", false, false},
	} {
		got, ok := containerIDOf(c.parent, c.name, c.kube)
		assert.Equal(t, c.ok, ok, "%s/%s", c.parent, c.name)
		if c.ok {
			assert.Equal(t, id, got, "%s/%s", c.parent, c.name)
		}
	}
}

// mkCgroups makes the directories (with a cgroup.procs each) under a new
// fixture mount and returns the mount.
func mkCgroups(t *testing.T, dirs ...string) string {
	t.Helper()
	mount := t.TempDir()
	for _, d := range dirs {
		p := filepath.Join(mount, d)
		require.NoError(t, os.MkdirAll(p, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(p, "cgroup.procs"), nil, 0o644))
	}
	return mount
}

// TestFindContainerCgroupErrors: an ambiguous prefix names its candidates,
// a missing id says where it looked, and a malformed id is refused before
// anything is read.
func TestFindContainerCgroupErrors(t *testing.T) {
	a := "abcd1" + strings.Repeat("0", 59)
	b := "abcd2" + strings.Repeat("0", 59)
	mount := mkCgroups(t, "system.slice/docker-"+a+".scope", "system.slice/docker-"+b+".scope", "system.slice/cron.service")

	_, _, err := findContainerCgroup(mount, "abcd")
	require.ErrorIs(t, err, ErrInvalidSpec)
	for _, want := range []string{"abcd", "2 container cgroups", a[:12] + " (/system.slice/docker-" + a + ".scope)", b[:12], "give more of the id"} {
		assert.Contains(t, err.Error(), want)
	}
	dir, id, err := findContainerCgroup(mount, "abcd2")
	require.NoError(t, err)
	assert.Equal(t, b, id)
	assert.Equal(t, filepath.Join(mount, "system.slice", "docker-"+b+".scope"), dir)

	_, _, err = findContainerCgroup(mount, "ffff")
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), "no container with id ffff (as a prefix) under "+mount)
	assert.Contains(t, err.Error(), "docker-<id>.scope")
	assert.Contains(t, err.Error(), "in 4 cgroups", "the walk counts what it looked at")

	for _, bad := range []string{"", "3F2A", "docker-abcd", "abcd.scope", "../abcd", strings.Repeat("a", 65), "docker://"} {
		_, _, err := findContainerCgroup(mount, bad)
		assert.ErrorIs(t, err, ErrInvalidSpec, "id %q", bad)
	}

	// The same full id at two places (a copy of the scope elsewhere) is
	// ambiguous too: which one is the container's cannot be told.
	twice := mkCgroups(t, "system.slice/docker-"+a+".scope", "docker/"+a)
	_, _, err = findContainerCgroup(twice, a)
	require.ErrorIs(t, err, ErrInvalidSpec)
	assert.Contains(t, err.Error(), "names 2 container cgroups")

	_, _, err = findContainerCgroup(filepath.Join(mount, "nonexistent"), "abcd")
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// TestFindContainerCgroupDepth: the walk stops containerWalkDepth levels
// below the mount, so a runaway tree costs a bounded walk.
func TestFindContainerCgroupDepth(t *testing.T) {
	id := strings.Repeat("5e", 32)
	deep := strings.Repeat("d/", containerWalkDepth-1)
	mount := mkCgroups(t, deep+"docker-"+id+".scope", "x/docker-"+strings.Repeat("6e", 32)+".scope")
	_, _, err := findContainerCgroup(mount, id[:8])
	require.NoError(t, err, "a container %d levels deep is found", containerWalkDepth)
	mount = mkCgroups(t, deep+"d/docker-"+id+".scope")
	_, _, err = findContainerCgroup(mount, id[:8])
	assert.ErrorIs(t, err, fs.ErrNotExist, "one level deeper is beyond the walk")
}

// TestAttachContainerByPrefix attaches to the Docker fixture's container
// by a prefix, as `cgmon watch --container` does: its cgroup is found,
// read and (unpopulated) ends the watch at once, with the record naming
// the container and taking its numbers from the cgroup's files.
func TestAttachContainerByPrefix(t *testing.T) {
	f := containerFixtures[0]
	mount := containerFixture(t, f.layout)
	m := newMonitor(t, Options{Backend: BackendProcfs, CgroupMount: mount})
	h, err := m.Attach(context.Background(), Target{ContainerID: f.id[:12]})
	require.NoError(t, err)
	ex, err := h.Wait()
	require.NoError(t, err)
	assert.Equal(t, metrics.StatusEnded, ex.Status, ex.Reason)
	assert.Equal(t, "container-"+f.id[:12], ex.ID)
	assert.Equal(t, []string{"container:" + f.id, "cgroup:" + filepath.Join(mount, f.dir)}, ex.Command)
	peak, ok := ex.Usage.MemoryPeak.Get()
	require.True(t, ok, ex.Usage.MemoryPeak.Reason())
	assert.Equal(t, uint64(34140160), peak, "the fixture's memory.peak")
	assert.Equal(t, metrics.SourceCgroupMemoryPeak, ex.Usage.MemoryPeak.Source())

	for _, bad := range []Target{
		{ContainerID: "6de1", PID: os.Getpid()},
		{ContainerID: "6de1", CgroupPath: "/"},
		{ContainerID: "not-hex"},
	} {
		_, err := m.Attach(context.Background(), bad)
		assert.ErrorIs(t, err, ErrInvalidSpec, "%+v", bad)
	}
	_, err = m.Attach(context.Background(), Target{ContainerID: "ffffff"})
	assert.ErrorIs(t, err, fs.ErrNotExist)
}
