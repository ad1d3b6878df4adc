package cgroupmon

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgmon/cgmon/metrics"
)

// TestVMSystemdRootless runs as an unprivileged user on a systemd host
// with no pre-made delegation (the systemd-rootless VM scenario): cgmon
// must get its own scope from the user manager and nest executions in it.
func TestVMSystemdRootless(t *testing.T) {
	if scenario != "systemd-rootless" {
		t.Skipf("needs a systemd host and an unprivileged user (make vmtest, scenario systemd-rootless); scenario %q", scenario)
	}
	require.NotZero(t, os.Getuid(), "the scenario runs the tests unprivileged")
	p, err := ProbeHost(Options{})
	require.NoError(t, err)
	if p.Path == PathOwnCgroup {
		// An earlier test's monitor already got this process its scope
		// (one per process): it must be cgmon's, under the user manager.
		assert.Regexp(t, `/user@1000\.service/.*/cgmon-\d+-\d+\.scope$`, p.OwnCgroup)
	} else {
		require.True(t, p.UserManager.Reachable, "user manager: %s", p.UserManager.Reason)
		assert.Equal(t, PathScopePossible, p.Path, p.RootReason)
	}

	m := newMonitor(t, Options{})
	if p.Path != PathOwnCgroup {
		assert.Equal(t, PathScope, m.probe.Path, m.probe.RootReason)
	}
	assert.Equal(t, metrics.BackendCgroup2, m.Backend())
	assert.Contains(t, m.rootPath(), "/user@", "the scope is under the user manager")
	assert.Contains(t, filepath.Base(m.rootPath()), "cgmon-")
	for _, c := range []string{"cpu", "memory", "pids"} {
		assert.True(t, m.hasController(c), "%s is delegated to users by Debian", c)
	}

	ex := mustRun(t, m, Spec{Command: []string{wl(t, "alloc"), "64", "200"}})
	require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
	peak, ok := ex.Usage.MemoryPeak.Get()
	require.True(t, ok, ex.Usage.MemoryPeak.Reason())
	assert.Equal(t, metrics.SourceCgroupMemoryPeak, ex.Usage.MemoryPeak.Source())
	assert.InEpsilon(t, float64(64<<20), float64(peak), 0.02)

	limit, swap := int64(32<<20), int64(32<<20)
	ex = mustRun(t, m, Spec{
		Command: []string{wl(t, "alloc"), "96", "100"},
		Limits:  &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &swap}},
	})
	assert.Equal(t, metrics.StatusOOM, ex.Status, ex.Reason)

	marker := filepath.Join(t.TempDir(), "ran")
	weight := uint16(500)
	_, err = m.Start(context.Background(), Spec{
		Command: []string{"/bin/sh", "-c", "touch " + marker},
		Limits:  &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: &weight}},
	})
	require.ErrorIs(t, err, ErrControllerUnavailable, "io is not delegated to users")
	assert.Contains(t, err.Error(), "io")
	assert.NoFileExists(t, marker)
}
