package cgroupmon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgmon/cgmon/internal/workload"
	"github.com/cgmon/cgmon/metrics"
)

func wl(t *testing.T, name string) string {
	t.Helper()
	p, err := workload.Path(name)
	require.NoError(t, err, "building the C workloads needs cc (apt-get install gcc libc6-dev)")
	return p
}

// newMonitor returns a Monitor on the host's default root, closed (and its
// cgroups checked gone) at the end of the test.
func newMonitor(t *testing.T, opts Options) *Monitor {
	t.Helper()
	m, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, m.Close())
		if m.rootPath() != "" {
			assertNoLeaves(t, m.rootPath())
		}
	})
	return m
}

// assertNoLeaves fails when an execution cgroup of this process is left.
func assertNoLeaves(t *testing.T, root string) {
	t.Helper()
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	require.NoError(t, err)
	suffix := "-" + strconv.Itoa(os.Getpid()) + "-"
	for _, e := range ents {
		if e.IsDir() && strings.Contains(e.Name(), suffix) {
			t.Errorf("cgroup %s left behind", filepath.Join(root, e.Name()))
		}
	}
}

// forEachBackend runs f with the backend auto picks here and with procfs.
// The procfs backend runs as a subreaper, as the CLI does: without one, an
// orphan is re-parented to init and cannot be followed.
func forEachBackend(t *testing.T, f func(t *testing.T, backend BackendChoice)) {
	for _, b := range []BackendChoice{BackendAuto, BackendProcfs} {
		t.Run(string(b), func(t *testing.T) { f(t, b) })
	}
}

func mustRun(t *testing.T, m *Monitor, s Spec) metrics.Execution {
	t.Helper()
	ex, err := m.Run(context.Background(), s)
	require.NoError(t, err)
	assertLabelled(t, ex)
	return ex
}

// assertLabelled checks the rule: every metric has a source or a reason.
func assertLabelled(t *testing.T, ex metrics.Execution) {
	t.Helper()
	for _, f := range ex.Usage.Fields() {
		if f.Valid {
			assert.NotEmpty(t, f.Source, "%s has a value but no source", f.Name)
		} else {
			assert.NotEmpty(t, f.Reason, "%s is absent without a reason", f.Name)
		}
	}
}

func TestExitCodesPassThrough(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs})
		for _, tc := range []struct {
			cmd    string
			code   int
			status metrics.Status
			signal int
		}{
			{"exit 0", 0, metrics.StatusSuccess, 0},
			{"exit 3", 3, metrics.StatusError, 0},
			{"exit 255", 255, metrics.StatusError, 0},
			{"kill -TERM $$", -1, metrics.StatusSignaled, int(syscall.SIGTERM)},
		} {
			t.Run(tc.cmd, func(t *testing.T) {
				ex := mustRun(t, m, Spec{Command: []string{"/bin/sh", "-c", tc.cmd}, Language: "sh"})
				assert.Equal(t, tc.status, ex.Status)
				assert.Equal(t, tc.code, ex.ExitCode)
				assert.Equal(t, tc.signal, ex.Signal)
				assert.False(t, ex.TimedOut)
				assert.False(t, ex.OOMKilled)
				assert.Equal(t, m.Backend(), ex.Backend)
			})
		}
	})
}

func TestFailedToStart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs})
		ex, err := m.Run(context.Background(), Spec{Command: []string{"/nonexistent/cgmon-no-such-command"}})
		require.ErrorIs(t, err, ErrStart)
		assert.ErrorIs(t, err, os.ErrNotExist)
		assert.Equal(t, metrics.StatusFailedToStart, ex.Status)
		assert.Equal(t, -1, ex.ExitCode)
		assertLabelled(t, ex)

		ex, err = m.Run(context.Background(), Spec{Command: []string{"cgmon-no-such-command-in-path"}})
		require.ErrorIs(t, err, ErrStart)
		assert.ErrorIs(t, err, exec.ErrNotFound)
		assert.Equal(t, metrics.StatusFailedToStart, ex.Status)

		notExec := filepath.Join(t.TempDir(), "script")
		require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644))
		ex, err = m.Run(context.Background(), Spec{Command: []string{notExec}})
		require.ErrorIs(t, err, ErrStart)
		assert.ErrorIs(t, err, os.ErrPermission)
		assert.Equal(t, metrics.StatusFailedToStart, ex.Status)
	})
}

func TestBadSpecChangesNothing(t *testing.T) {
	m := newMonitor(t, Options{})
	marker := filepath.Join(t.TempDir(), "ran")
	cmd := []string{"/bin/sh", "-c", "touch " + marker}
	for _, id := range []string{"a/b", "..", "x..y", "nul\x00", strings.Repeat("x", 201)} {
		_, err := m.Start(context.Background(), Spec{ID: id, Command: cmd})
		assert.ErrorIs(t, err, ErrInvalidSpec, "id %q", id)
	}
	_, err := m.Start(context.Background(), Spec{Command: nil})
	assert.ErrorIs(t, err, ErrInvalidSpec)
	_, err = m.Start(context.Background(), Spec{Command: cmd, Timeout: -time.Second})
	assert.ErrorIs(t, err, ErrInvalidSpec)
	assert.NoFileExists(t, marker, "a rejected spec must not run")
}

func TestLimitWithoutControllerIsAnError(t *testing.T) {
	m := newMonitor(t, Options{})
	marker := filepath.Join(t.TempDir(), "ran")
	limit := int64(64 << 20)
	_, err := m.Start(context.Background(), Spec{
		Command: []string{"/bin/sh", "-c", "touch " + marker},
		Limits:  &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}},
	})
	if m.hasController("memory") {
		require.NoError(t, err, "memory is enabled here: the limit must apply")
		return
	}
	require.ErrorIs(t, err, ErrControllerUnavailable)
	assert.Contains(t, err.Error(), "memory")
	assert.NoFileExists(t, marker)
}

func TestCPUOfTwoThreads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs})
		ex := mustRun(t, m, Spec{Command: []string{wl(t, "burn"), "2", "500"}, Language: "c"})
		require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
		cpu, ok := ex.Usage.CPUTotal.Get()
		require.True(t, ok, ex.Usage.CPUTotal.Reason())
		// 2 x 500 ms of the threads' own CPU plus exec and exit. Under the
		// VM suite's emulation exec alone costs tens of milliseconds, and
		// a guest without steal-time accounting charges whatever ran when
		// the host took its vCPU away: on a busy host, up to a few
		// hundred milliseconds more.
		hi := 0.05
		if scenario != "" {
			hi = 0.3
		}
		assert.GreaterOrEqual(t, cpu.Seconds(), 0.95, "2 threads x 500 ms, source %s", ex.Usage.CPUTotal.Source())
		assert.LessOrEqual(t, cpu.Seconds(), 1.0+hi, "2 threads x 500 ms, source %s", ex.Usage.CPUTotal.Source())
		user, _ := ex.Usage.CPUUser.Get()
		sys, _ := ex.Usage.CPUSystem.Get()
		assert.InDelta(t, cpu.Seconds(), (user + sys).Seconds(), 0.02)
		peak, ok := ex.Usage.CPUPeakPercent.Get()
		require.True(t, ok, ex.Usage.CPUPeakPercent.Reason())
		avg := ex.Usage.CPUAveragePercent.Value()
		t.Logf("cpu %.3fs over %v: average %.0f%%, peak %.0f%% over %d samples", cpu.Seconds(), ex.Duration(), avg, peak, ex.Usage.CPUSamples.Value())
		// Two busy threads read about 200% on an idle 2-core machine. Other
		// test packages share the cores, so the bound is relative: the peak
		// interval is at least the average one and at most all the CPUs.
		// (With fewer than three samples the sampled intervals may miss
		// the run's busiest part: a 0.5 s run under emulation.)
		if ex.Usage.CPUSamples.Value() >= 3 {
			assert.GreaterOrEqual(t, peak, avg*0.9, "peak CPU below the average")
		}
		// An interval whose CPU time exceeds what the CPUs give is dropped
		// (cpu.stat and /proc/PID/stat charge a running task at the
		// scheduler's tick), never reported.
		assert.LessOrEqual(t, peak, float64(onlineCPUs())*100, "peak CPU above what the CPUs can give (source %s)", ex.Usage.CPUPeakPercent.Source())
		assert.Greater(t, avg, 0.0)
		assert.Greater(t, ex.Usage.CPUSamples.Value(), 0)
	})
}

func TestSequentialChildrenAddUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs})
		burn := wl(t, "burn")
		script := "for i in $(seq 50); do " + burn + " 1 10 || exit 1; done"
		h, err := m.Start(context.Background(), Spec{Command: []string{"/bin/sh", "-c", script}})
		require.NoError(t, err)
		ex, err := h.Wait()
		require.NoError(t, err)
		require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
		cpu, ok := ex.Usage.CPUTotal.Get()
		require.True(t, ok)
		// 50 x 10 ms of the children's own CPU, at least.
		assert.GreaterOrEqual(t, cpu.Seconds(), 0.5*0.95)
		// And all of it: the shell waited for every child, so its rusage
		// (RUSAGE of the process and its waited descendants) is the truth
		// that the cgroup's cpu.stat must match. Fork/exec costs vary
		// (under emulation they dominate), so no absolute upper bound.
		ru := h.r.cmd.ProcessState
		want := ru.UserTime() + ru.SystemTime()
		assert.InEpsilon(t, want.Seconds(), cpu.Seconds(), 0.10, "source %s", ex.Usage.CPUTotal.Source())
	})
}

func TestLeftoverDaemonIsKilled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		// A double-forked daemon leaves the tree: only a cgroup or the
		// subreaper (as the CLI has it) brings it back; where auto finds
		// no cgroup (scenarios none, container-unprivileged) it needs the
		// subreaper too.
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs || !hasCgroupRoot(t)})
		var out bytes.Buffer
		ex := mustRun(t, m, Spec{Command: []string{wl(t, "daemon"), "30000"}, Stdout: &out})
		require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
		pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
		require.NoError(t, err, "daemon printed %q", out.String())
		assert.Equal(t, 1, ex.LeftoverProcessesKilled)
		assertGone(t, pid)
	})
}

func TestWaitAllCountsTheDaemon(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		// A double-forked daemon leaves the tree: only a cgroup or the
		// subreaper (as the CLI has it) brings it back; where auto finds
		// no cgroup (scenarios none, container-unprivileged) it needs the
		// subreaper too.
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs || !hasCgroupRoot(t)})
		var out bytes.Buffer
		ex := mustRun(t, m, Spec{Command: []string{wl(t, "daemon"), "100", "300"}, Stdout: &out, WaitAll: true})
		require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
		assert.Equal(t, 0, ex.LeftoverProcessesKilled)
		cpu, ok := ex.Usage.CPUTotal.Get()
		require.True(t, ok, ex.Usage.CPUTotal.Reason())
		assert.GreaterOrEqual(t, cpu.Seconds(), 0.3*0.95, "the daemon's 300 ms of CPU (source %s)", ex.Usage.CPUTotal.Source())
		assert.GreaterOrEqual(t, ex.Duration(), 350*time.Millisecond, "wait-all waits for the daemon")
	})
}

func TestMemoryPeak64MiB(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs})
		ex := mustRun(t, m, Spec{Command: []string{wl(t, "alloc"), "64", "300"}})
		require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
		peak, ok := ex.Usage.MemoryPeak.Get()
		require.True(t, ok, ex.Usage.MemoryPeak.Reason())
		assert.InEpsilon(t, float64(64<<20), float64(peak), 0.10, "source %s", ex.Usage.MemoryPeak.Source())
		if !m.hasController("memory") {
			assert.Contains(t, []metrics.Source{metrics.SourceRusageMaxRSS, metrics.SourceProcVmHWM, metrics.SourceSampledProcRSS}, ex.Usage.MemoryPeak.Source())
		}
	})
}

func TestTimeoutKillsStubbornTree(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs, Interval: 50 * time.Millisecond})
		start := time.Now()
		ex := mustRun(t, m, Spec{Command: []string{wl(t, "stubborn")}, Timeout: 300 * time.Millisecond})
		took := time.Since(start)
		assert.Equal(t, metrics.StatusTimeout, ex.Status)
		assert.True(t, ex.TimedOut)
		assert.False(t, ex.OOMKilled, "a timeout kill is never an OOM")
		// A grace far below any SIGTERM-then-wait scheme's seconds; under
		// the VM suite's emulation on a busy host, starting and killing
		// take several times longer.
		grace := time.Second
		if scenario != "" {
			grace = 3 * time.Second
		}
		assert.Less(t, took, 300*time.Millisecond+50*time.Millisecond+grace, "kill within one interval plus a grace")
	})
}

func TestCancelKillsTree(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs})
		ctx, cancel := context.WithCancel(context.Background())
		h, err := m.Start(ctx, Spec{Command: []string{wl(t, "stubborn")}})
		require.NoError(t, err)
		time.Sleep(50 * time.Millisecond)
		cancel()
		ex, err := h.Wait()
		require.NoError(t, err)
		assert.Equal(t, metrics.StatusCanceled, ex.Status)
		assert.False(t, ex.TimedOut)
	})
}

func TestLiveUsage(t *testing.T) {
	m := newMonitor(t, Options{Interval: 20 * time.Millisecond})
	h, err := m.Start(context.Background(), Spec{Command: []string{wl(t, "burn"), "1", "300"}, KeepSamples: true})
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	u := h.Usage()
	assert.True(t, u.WallTime.Valid())
	assert.Greater(t, u.CPUSamples.Value(), 0)
	ex, err := h.Wait()
	require.NoError(t, err)
	assert.NotEmpty(t, ex.Samples)
	for i := 1; i < len(ex.Samples); i++ {
		assert.GreaterOrEqual(t, ex.Samples[i].CPU, ex.Samples[i-1].CPU, "cumulative CPU never decreases")
	}
}

func TestSinkReceivesEveryExecution(t *testing.T) {
	c := metrics.NewCollector()
	m := newMonitor(t, Options{Sink: c})
	mustRun(t, m, Spec{Command: []string{"/bin/true"}, Language: "sh"})
	mustRun(t, m, Spec{Command: []string{"/bin/false"}, Language: "sh"})
	s := c.Summary()
	assert.Equal(t, 2, int(s.TotalExecutions))
	assert.Equal(t, 1, int(s.SuccessCount))
}

// assertGone fails unless pid is gone (or a zombie awaiting its reaper).
func assertGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d survived its execution", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEndedCgroupIsRemoved: the record is handed over first; the emptied
// cgroup goes at the sampler's next tick, or at Close, whichever is first.
func TestEndedCgroupIsRemoved(t *testing.T) {
	t.Run("next tick", func(t *testing.T) {
		m := newMonitor(t, Options{Interval: 20 * time.Millisecond})
		if m.rootPath() == "" {
			t.Skip("no cgroup v2 root on this host: executions get no cgroup")
		}
		h, err := m.Start(context.Background(), Spec{Command: []string{"/bin/true"}})
		require.NoError(t, err)
		dir := h.CgroupPath()
		require.NotEmpty(t, dir)
		_, err = h.Wait()
		require.NoError(t, err)
		assert.Eventually(t, func() bool {
			_, err := os.Stat(dir)
			return errors.Is(err, os.ErrNotExist)
		}, 2*time.Second, 5*time.Millisecond, "%s not removed by the sampler", dir)
	})
	t.Run("close", func(t *testing.T) {
		m, err := New(Options{Interval: time.Hour})
		require.NoError(t, err)
		if m.rootPath() == "" {
			require.NoError(t, m.Close())
			t.Skip("no cgroup v2 root on this host: executions get no cgroup")
		}
		h, err := m.Start(context.Background(), Spec{Command: []string{"/bin/true"}})
		require.NoError(t, err)
		dir := h.CgroupPath()
		_, err = h.Wait()
		require.NoError(t, err)
		procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		require.NoError(t, err, "an hour-long interval: the cgroup waits for Close")
		assert.Empty(t, procs, "the cgroup of an ended execution is empty")
		require.NoError(t, m.Close())
		_, err = os.Stat(dir)
		assert.ErrorIs(t, err, os.ErrNotExist)
		assertNoLeaves(t, m.rootPath())
	})
}

// TestSharedRootRemovedByAnotherMonitor: monitors on the default root
// share it, and the last one out removes it. A monitor whose neighbour
// closed between its New and its next Start (parallel `cgmon run`s) makes
// the root again instead of failing.
func TestSharedRootRemovedByAnotherMonitor(t *testing.T) {
	b := newMonitor(t, Options{})
	if b.root == nil || !b.root.shared {
		// A monitor that moved itself into its own delegated cgroup
		// (rootless, path (a)) is alone there: nothing is shared.
		t.Skip("this host gives no shared cgroup root: " + b.Probe().RootReason)
	}
	a, err := New(Options{})
	require.NoError(t, err)
	require.NoError(t, a.Close())
	// The last monitor out (a, while b had no execution) removes the
	// shared root, unless other processes' monitors (go test runs
	// packages in parallel) have leaves there: then it must be kept.
	ents, err := os.ReadDir(b.rootPath())
	if !errors.Is(err, os.ErrNotExist) {
		require.NoError(t, err)
		others := 0
		for _, e := range ents {
			if e.IsDir() {
				others++
			}
		}
		require.NotZero(t, others, "the shared root was left empty by the last monitor out")
		t.Logf("the shared root holds %d other monitors' cgroups: kept", others)
	}
	ex, err := b.Run(context.Background(), Spec{Command: []string{"/bin/true"}})
	require.NoError(t, err)
	assert.Equal(t, metrics.StatusSuccess, ex.Status)
}

// TestSelfPeakIsOwnHWM: the vfork guard's threshold is this process's own
// VmHWM, which is what its vfork-started children inherit, and not
// getrusage's maxrss, which also holds what this process inherited when it
// was started (go test starts test binaries with os/exec, that is vfork).
func TestSelfPeakIsOwnHWM(t *testing.T) {
	m := newMonitor(t, Options{})
	before := m.self.readHWM()
	require.NotZero(t, before, "VmHWM of /proc/self/status")
	got := m.self.bytes()
	after := m.self.readHWM()
	assert.GreaterOrEqual(t, got, before)
	assert.LessOrEqual(t, got, after)
	t.Logf("VmHWM %d KiB, getrusage maxrss %d KiB, inherited %d KiB", got/1024, rusageMaxRSS()/1024, m.self.inherited/1024)
}

// TestSelfPeakReadsVmHWM: the guard reads VmHWM through the one parser of
// /proc/PID/status (proctree's), and anything it cannot read is 0, which
// makes bytes() fall back to getrusage's upper bound.
func TestSelfPeakReadsVmHWM(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"Name:\tx\nVmPeak:\t  99 kB\nVmHWM:\t   15176 kB\nVmRSS:\t 1 kB\n", 15176 << 10},
		{"Name:\tx\nVmHWM: 0 kB\n", 0},
		{"Name:\tx\nVmRSS:\t 1 kB\n", 0},    // no VmHWM (a kernel thread)
		{"Name:\tx\nVmHWM:\t15176 MB\n", 0}, // not kB
		{"Name:\tx\nVmHWM:\t kB\n", 0},      // no number
		{"Name:\tx\nVmHWM:\t12", 0},         // truncated
	} {
		root := t.TempDir()
		require.NoError(t, os.Mkdir(filepath.Join(root, "self"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, "self", "status"), []byte(c.in), 0o644))
		s := newSelfPeak(root)
		assert.Equal(t, c.want, s.readHWM(), "%q", c.in)
		s.close()
	}
	s := newSelfPeak("/proc")
	defer s.close()
	assert.NotZero(t, s.readHWM(), "this process's own status")
}

// TestPendingCgroupsAreBounded: with an interval so long that no tick
// comes, ended executions' cgroups wait for removal, but no more than
// sampler.maxPending of them; Close removes the rest.
func TestPendingCgroupsAreBounded(t *testing.T) {
	m := newMonitor(t, Options{Interval: time.Hour})
	if m.rootPath() == "" {
		t.Skip("no cgroup v2 root on this host: executions get no cgroup")
	}
	// The bound is 1024; a small one shows the same in a fifteenth of
	// the runs (1044 runs took 100 s of the VM suite's emulation).
	const bound = 48
	m.sampler.maxPending = bound
	for i := 0; i < bound+20; i++ {
		_, err := m.Run(context.Background(), Spec{Command: []string{"/bin/true"}})
		require.NoError(t, err)
	}
	ents, err := os.ReadDir(m.rootPath())
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		if e.IsDir() && strings.Contains(e.Name(), "-"+strconv.Itoa(os.Getpid())+"-") {
			n++
		}
	}
	assert.Equal(t, bound, n, "ended executions' cgroups waiting for a tick")
}

// hasCgroupRoot reports whether a default Monitor gets a cgroup root here.
func hasCgroupRoot(t *testing.T) bool {
	t.Helper()
	p, err := ProbeHost(Options{})
	require.NoError(t, err)
	return p.Root != "" || p.Path == PathScopePossible
}
