package cgroupmon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// fixtureLeaf opens a leaf over regular files copied from the 6.1 kernel
// sample, for measuring the tick's own cost (pread + parse + bookkeeping).
func fixtureLeaf(b testing.TB) *leaf {
	dir := b.TempDir()
	for _, f := range []string{"cpu.stat", "memory.current", "cgroup.events", "cgroup.procs", "pids.current"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "kernel", "linux-6.1", f))
		require.NoError(b, err)
		require.NoError(b, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
	l := &leaf{path: dir, memory: true, pidsCtl: true}
	open := func(f string) int {
		fd, err := unix.Open(filepath.Join(dir, f), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(b, err)
		return fd
	}
	l.cpuStat, l.memCurrent, l.pidsCurr = open("cpu.stat"), open("memory.current"), open("pids.current")
	l.events, l.procs = open("cgroup.events"), open("cgroup.procs")
	b.Cleanup(l.closeFDs)
	return l
}

// BenchmarkSamplerTick is the sampler's cost per execution per tick.
func BenchmarkSamplerTick(b *testing.B) {
	b.Run("fixture-files", func(b *testing.B) {
		r := &run{leaf: fixtureLeaf(b), start: time.Now()}
		r.lastT = r.start
		now := r.start
		b.ReportAllocs()
		for b.Loop() {
			now = now.Add(time.Millisecond)
			r.tick(now)
		}
		if r.tickErr != nil {
			b.Fatal(r.tickErr)
		}
	})
	b.Run("host-cgroup2", func(b *testing.B) {
		p, err := ProbeHost(Options{})
		require.NoError(b, err)
		if p.Root == "" {
			b.Skipf("no writable cgroup v2 here: %s", p.RootReason)
		}
		m, err := New(Options{})
		require.NoError(b, err)
		defer m.Close()
		l, err := createLeaf(m.root, "bench-tick", &cgroup2.Resources{}, m.hasController("memory"), m.hasController("pids"), m.hasController("io"))
		require.NoError(b, err)
		defer l.remove()
		r := &run{leaf: l, start: time.Now()}
		r.lastT = r.start
		now := r.start
		b.ReportAllocs()
		for b.Loop() {
			now = now.Add(time.Millisecond)
			r.tick(now)
		}
		if r.tickErr != nil {
			b.Fatal(r.tickErr)
		}
	})
}

// BenchmarkRunTrue compares a library run of /bin/true with a bare
// exec.Command("/bin/true").Run(), in the same process and run.
func BenchmarkRunTrue(b *testing.B) {
	b.Run("exec.Command", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cgmon", func(b *testing.B) {
		m, err := New(Options{})
		require.NoError(b, err)
		defer m.Close()
		ctx := context.Background()
		for b.Loop() {
			if _, err := m.Run(ctx, Spec{Command: []string{"/bin/true"}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
