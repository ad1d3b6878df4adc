package cgroupmon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
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
	l := &leaf{path: dir, dir: -1, leafCaps: leafCaps{memory: true, pidsCtl: true}}
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
		r.seen.lastT = r.start
		b.ReportAllocs()
		for b.Loop() {
			r.tick()
		}
		if r.seen.err != nil {
			b.Fatal(r.seen.err)
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
		l, err := createLeaf(m.rootPath(), "bench-tick", nil, m.leafCaps())
		require.NoError(b, err)
		defer l.remove()
		r := &run{leaf: l, start: time.Now()}
		r.seen.lastT = r.start
		b.ReportAllocs()
		for b.Loop() {
			r.tick()
		}
		if r.seen.err != nil {
			b.Fatal(r.seen.err)
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
	// The kernel's part alone: make a cgroup, start the command in it with
	// clone3(CLONE_INTO_CGROUP), wait, remove the cgroup. No monitor that
	// gives each execution its own cgroup can be faster on this host.
	b.Run("kernel-floor", func(b *testing.B) {
		m, err := New(Options{})
		require.NoError(b, err)
		defer m.Close()
		if m.rootPath() == "" {
			b.Skip("no cgroup v2 root on this host")
		}
		p := filepath.Join(m.rootPath(), "bench-floor")
		for b.Loop() {
			require.NoError(b, os.Mkdir(p, 0o755))
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			require.NoError(b, err)
			c := exec.Command("/bin/true")
			c.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
			err = c.Run()
			unix.Close(fd)
			require.NoError(b, unix.Rmdir(p))
			require.NoError(b, err)
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
	// The same as another user (Spec.User): the credential switch in the
	// child and the hand-off to the no_new_privs starter.
	b.Run("cgmon-user", func(b *testing.B) {
		if os.Geteuid() != 0 {
			b.Skip("running as another user needs root")
		}
		m, err := New(Options{})
		require.NoError(b, err)
		defer m.Close()
		ctx := context.Background()
		u := &specs.User{UID: 65534, GID: 65534}
		for b.Loop() {
			if _, err := m.Run(ctx, Spec{Command: []string{"/bin/true"}, User: u}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRunTrueRatio measures the same two side by side: every
// iteration runs both, in alternating order, so that both see the same
// machine (these machines drift by 10% between two sub-benchmarks). It
// reports the median of each and their ratio, the number issue 2 targets.
func BenchmarkRunTrueRatio(b *testing.B) {
	m, err := New(Options{})
	require.NoError(b, err)
	defer m.Close()
	ctx := context.Background()
	bare := func() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
	cgmon := func() {
		if _, err := m.Run(ctx, Spec{Command: []string{"/bin/true"}}); err != nil {
			b.Fatal(err)
		}
	}
	var tb, tc []time.Duration
	timed := func(f func(), into *[]time.Duration) {
		t0 := time.Now()
		f()
		*into = append(*into, time.Since(t0))
	}
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			timed(bare, &tb)
			timed(cgmon, &tc)
		} else {
			timed(cgmon, &tc)
			timed(bare, &tb)
		}
		i++
	}
	mb, mc := median(tb), median(tc)
	b.ReportMetric(float64(mb.Microseconds()), "bare-µs")
	b.ReportMetric(float64(mc.Microseconds()), "cgmon-µs")
	b.ReportMetric(float64(mc)/float64(mb), "ratio")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkStarterHandOff is what forking on the Monitor's starter thread
// (the parent-death signal's thread) adds to a start: handing the work to
// the starter's goroutine, which waits on a channel locked to its thread,
// and getting its result back, against calling it in place.
func BenchmarkStarterHandOff(b *testing.B) {
	var n int
	work := func() error { n++; return nil }
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			_ = work()
		}
	})
	b.Run("starter", func(b *testing.B) {
		st := newStarter(false)
		defer st.stop()
		for b.Loop() {
			if err := st.do(work); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReapNothingStale is what New's reaping costs when nothing is
// stale: one readdir of a root holding only live leaves' names that are
// not leaves (here none) or, with live leaves, a mark read and a lock try
// each.
func BenchmarkReapNothingStale(b *testing.B) {
	m, err := New(Options{})
	require.NoError(b, err)
	defer m.Close()
	if m.rootPath() == "" {
		b.Skip("no cgroup v2 root on this host")
	}
	for _, live := range []int{0, 10} {
		b.Run(fmt.Sprintf("live-leaves-%d", live), func(b *testing.B) {
			var hs []*Handle
			for range live {
				h, err := m.Start(context.Background(), Spec{Command: []string{"sleep", "60"}})
				require.NoError(b, err)
				hs = append(hs, h)
			}
			defer func() {
				for _, h := range hs {
					_ = h.Kill()
					_, _ = h.Wait()
				}
			}()
			for b.Loop() {
				r := reapRoot(m.rootPath(), true)
				if len(r.Leaves) > 0 || len(r.Failed) > 0 {
					b.Fatalf("reaped %+v", r)
				}
			}
		})
	}
}
