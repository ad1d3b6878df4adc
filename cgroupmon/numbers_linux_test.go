package cgroupmon

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

func TestCPUCapacityAllows(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name    string
		c       cpuCapacity
		cpu, dt time.Duration
		want    bool
	}{
		{"unknown allows any", cpuCapacity{}, 10 * time.Second, ms, true},
		{"2 CPUs, 200%", cpuCapacity{cpus: 2}, 40 * ms, 20 * ms, true},
		{"2 CPUs, 260%", cpuCapacity{cpus: 2}, 52 * ms, 20 * ms, false},
		{"quota 50ms/100ms over 20ms may run 20ms", cpuCapacity{cpus: 2, quota: 50 * ms, period: 100 * ms}, 20 * ms, 20 * ms, true},
		{"quota 50ms/100ms over 1s gives at most 550ms", cpuCapacity{cpus: 2, quota: 50 * ms, period: 100 * ms}, 600 * ms, time.Second, false},
		{"burst adds", cpuCapacity{cpus: 2, quota: 50 * ms, burst: 100 * ms, period: 100 * ms}, 600 * ms, time.Second, true},
	} {
		assert.Equal(t, c.want, c.c.allows(c.cpu, c.dt), c.name)
	}
}

// TestDroppedSampleCountsInTheNext feeds addLocked a reading whose CPU
// time exceeds what 2 CPUs give over its interval: it is dropped and
// counted, and its time counts in the next interval's percentage.
func TestDroppedSampleCountsInTheNext(t *testing.T) {
	r := newRun(Spec{}, sourceTable{}, metrics.BackendCgroup2)
	r.capacity = cpuCapacity{cpus: 2}
	t0 := time.Now()
	r.seen.lastT = t0
	ms := time.Millisecond
	r.addLocked(t0.Add(20*ms), reading{cpu: 52 * ms}) // 260%
	assert.Equal(t, 1, r.seen.dropped)
	assert.Equal(t, 0, r.seen.n)
	r.addLocked(t0.Add(40*ms), reading{cpu: 70 * ms}) // 175% over 40 ms
	assert.Equal(t, 1, r.seen.n)
	assert.InDelta(t, 175, r.seen.peakPct, 0.01)
	var u metrics.Usage
	r.sampledUsageLocked(&u)
	d, ok := u.CPUSamplesDropped.Get()
	assert.True(t, ok)
	assert.Equal(t, 1, d)
}

// hog keeps every CPU busy with a goroutine each until the returned
// function is called.
func hog(t *testing.T) (stop func()) {
	t.Helper()
	var quit atomic.Bool
	var wg sync.WaitGroup
	for range onlineCPUs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			for x := 0; !quit.Load(); x++ {
			}
		}()
	}
	return func() { quit.Store(true); wg.Wait() }
}

// TestPeakCPUUnderLoad runs a 2-thread burn beside a busy loop on every
// CPU, sampled every 20 ms: the scheduler's tick-grained charging then
// makes intervals whose CPU time exceeds the wall time times the CPUs.
// The peak stays within what the CPUs can give; such intervals are
// dropped and counted.
func TestPeakCPUUnderLoad(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs, Interval: 20 * time.Millisecond})
		stop := hog(t)
		ex := mustRun(t, m, Spec{Command: []string{wl(t, "burn"), "2", "600"}})
		stop()
		require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
		peak, ok := ex.Usage.CPUPeakPercent.Get()
		require.True(t, ok, ex.Usage.CPUPeakPercent.Reason())
		dropped, ok := ex.Usage.CPUSamplesDropped.Get()
		require.True(t, ok, ex.Usage.CPUSamplesDropped.Reason())
		t.Logf("peak %.0f%% over %d samples, %d dropped, on %d CPUs", peak, ex.Usage.CPUSamples.Value(), dropped, onlineCPUs())
		assert.LessOrEqual(t, peak, float64(onlineCPUs())*100, "peak CPU above what the CPUs can give")
	})
}

// TestPSIWait runs a CPU burn alone and beside a busy loop on every CPU:
// beside it, the burn's cgroup reports a wait for a CPU (cpu.pressure)
// of a good share of the wall time, and more than alone.
func TestPSIWait(t *testing.T) {
	m := newMonitor(t, Options{})
	if m.root == nil {
		t.Skipf("no cgroup for executions here, so no cgroup's pressure to read: %s", m.probe.RootReason)
	}
	if !m.probe.Features.PSI {
		t.Skip("no pressure stall information (cpu.pressure) in the cgroups here: the kernel lacks CONFIG_PSI or it is off")
	}
	run := func() (wait, wall time.Duration) {
		// Two threads: where the cpu controller shares the CPUs between
		// cgroups (a pure v2 host), the burn's leaf gets about its half
		// of them beside the hog, and two threads then wait for one.
		ex := mustRun(t, m, Spec{Command: []string{wl(t, "burn"), "2", "500"}})
		require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
		w, ok := ex.Usage.CPUWait.Get()
		require.True(t, ok, ex.Usage.CPUWait.Reason())
		assert.Equal(t, metrics.SourceCgroupCPUPressure, ex.Usage.CPUWait.Source())
		return w, ex.Usage.WallTime.Value()
	}
	alone, wallAlone := run()
	stop := hog(t)
	busy, wallBusy := run()
	stop()
	t.Logf("waited %v of %v alone, %v of %v beside a hog", alone, wallAlone, busy, wallBusy)
	// "Alone" means alone only on a host that is not busy already: where
	// the run alone waited half its wall time (another engineer's qemu on
	// the same cores), that is what PSI is for, and no comparison holds.
	if alone < wallAlone/2 {
		assert.Greater(t, busy, alone, "beside a hog the burn waited no longer than alone")
	} else {
		t.Logf("the host was busy: the run alone waited %v of %v; not compared", alone, wallAlone)
	}
	assert.Greater(t, float64(busy), 0.10*float64(wallBusy), "beside a hog on every CPU the burn waited under 10%% of the wall time")
}

// TestVMMemoryMakeup runs, on cgroup v2 with the memory controller, a
// program that writes 100 MiB to a tmpfs and one that only allocates: the
// first's charge is mostly shmem, still charged at the end, while what
// its processes held is small; the second's is anonymous memory.
func TestVMMemoryMakeup(t *testing.T) {
	fullV2(t)
	m := newV2Monitor(t)
	// A tmpfs: the guests' /tmp is one; elsewhere mount one (root).
	dir := t.TempDir()
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(dir, &st))
	if st.Type != unix.TMPFS_MAGIC {
		require.NoError(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=200m"))
		t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	}

	ex := mustRun(t, m, Spec{Command: []string{"/bin/sh", "-c", "dd if=/dev/zero of=" + dir + "/f bs=1M count=100 2>/dev/null"}})
	require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
	u := ex.Usage
	peak, ok := u.MemoryPeak.Get()
	require.True(t, ok, u.MemoryPeak.Reason())
	shmem, ok := u.MemoryShmemAtEnd.Get()
	require.True(t, ok, u.MemoryShmemAtEnd.Reason())
	file, ok := u.MemoryFileAtEnd.Get()
	require.True(t, ok, u.MemoryFileAtEnd.Reason())
	_, ok = u.MemoryKernelAtEnd.Get()
	require.True(t, ok, u.MemoryKernelAtEnd.Reason())
	t.Logf("tmpfs writer: peak %d MiB, file %d MiB, shmem %d MiB, anon %v, largest process %v (%s)", peak>>20, file>>20, shmem>>20, u.MemoryAnonPeak.Value()>>20, u.MemoryProcessPeak.Value()>>20, u.MemoryProcessPeak.Reason())
	if u.MemoryPeak.Source() == metrics.SourceCgroupMemoryPeak {
		assert.GreaterOrEqual(t, peak, uint64(100<<20))
	} else {
		// Before 5.19 the peak is memory.current as sampled: a lower
		// bound that may miss the end of the write.
		assert.GreaterOrEqual(t, peak, uint64(50<<20), "sampled peak (source %s)", u.MemoryPeak.Source())
	}
	assert.GreaterOrEqual(t, shmem, uint64(95<<20), "the tmpfs file stays charged to the cgroup")
	assert.GreaterOrEqual(t, file, shmem, "shmem is part of file")
	if v, ok := u.MemoryProcessPeak.Get(); ok {
		assert.Less(t, v, uint64(40<<20), "dd with 1 MiB blocks held far less than it wrote")
	} else {
		assert.Contains(t, u.MemoryProcessPeak.Reason(), "cgmon's own peak")
	}
	if v, ok := u.MemoryAnonPeak.Get(); ok {
		assert.Equal(t, metrics.SourceSampledMemoryAnon, u.MemoryAnonPeak.Source())
		assert.Less(t, v, uint64(40<<20))
	}

	ex = mustRun(t, m, Spec{Command: []string{wl(t, "alloc"), "160", "400"}})
	require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
	u = ex.Usage
	anon, ok := u.MemoryAnonPeak.Get()
	require.True(t, ok, u.MemoryAnonPeak.Reason())
	proc, ok := u.MemoryProcessPeak.Get()
	require.True(t, ok, u.MemoryProcessPeak.Reason())
	file, ok = u.MemoryFileAtEnd.Get()
	require.True(t, ok, u.MemoryFileAtEnd.Reason())
	t.Logf("allocator: peak %d MiB, anon %d MiB, largest process %d MiB, file %d MiB", u.MemoryPeak.Value()>>20, anon>>20, proc>>20, file>>20)
	assert.GreaterOrEqual(t, anon, uint64(150<<20), "160 MiB held for 400 ms, sampled every 50 ms")
	assert.GreaterOrEqual(t, proc, uint64(160<<20))
	assert.Less(t, file, uint64(20<<20))
}
