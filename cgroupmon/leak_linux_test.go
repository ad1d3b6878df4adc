package cgroupmon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgmon/cgmon/metrics"
)

// countGoroutines counts goroutines other than os/signal's loop, which
// the first signal.Notify (the subreaper's SIGCHLD) starts for good.
func countGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.TrimSpace(g) != "" && !strings.Contains(g, "os/signal.loop") && !strings.Contains(g, "os/signal.signal_recv") {
			n++
		}
	}
	return n
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// childrenOfSelf lists this process's live children.
func childrenOfSelf(t *testing.T) []string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/children")
	require.NoError(t, err)
	var out []string
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err == nil {
			out = append(out, strings.Fields(string(b))...)
		}
	}
	return out
}

// Test500RunsLeaveNothing runs 500 mixed executions (200 in the VM suite), 8 at a time, and checks
// that no cgroup, fd, goroutine or process of cgmon's is left.
func Test500RunsLeaveNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		stubborn := wl(t, "stubborn")
		runtime.GC()
		fds, goroutines := countFDs(t), countGoroutines()
		m, err := New(Options{Backend: backend, Subreaper: backend == BackendProcfs, Interval: 10 * time.Millisecond})
		require.NoError(t, err)
		specs := []Spec{
			{Command: []string{"/bin/true"}},
			{Command: []string{"/bin/sh", "-c", "exit 7"}},
			{Command: []string{stubborn}, Timeout: 20 * time.Millisecond},
			{Command: []string{"/nonexistent/cgmon-no-such-command"}},
		}
		want := []metrics.Status{metrics.StatusSuccess, metrics.StatusError, metrics.StatusTimeout, metrics.StatusFailedToStart}
		// 500 here; 200 in the VM suite, where emulation makes each start
		// about ten times dearer: still fifty of each kind, interleaved
		// eight at a time. (make soak runs thousands.)
		n := 500
		if scenario != "" {
			n = 200
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				s := specs[i%4]
				s.ID = fmt.Sprintf("leak-%d", i)
				ex, err := m.Run(context.Background(), s)
				if err != nil && ex.Status != metrics.StatusFailedToStart {
					errs <- fmt.Errorf("run %d: %w", i, err)
					return
				}
				if ex.Status != want[i%4] {
					errs <- fmt.Errorf("run %d: status %s, want %s (%s)", i, ex.Status, want[i%4], ex.Reason)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		root := m.rootPath()
		require.NoError(t, m.Close())
		if root != "" {
			assertNoLeaves(t, root)
		}
		assert.Empty(t, childrenOfSelf(t), "processes left")
		// Goroutines of exec and the sampler end shortly after Close.
		deadline := time.Now().Add(2 * time.Second)
		for countGoroutines() > goroutines && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		assert.LessOrEqual(t, countGoroutines(), goroutines, "goroutines left")
		assert.Equal(t, fds, countFDs(t), "file descriptors left")
	})
}

func TestGatedStart(t *testing.T) {
	m := newMonitor(t, Options{})
	if m.rootPath() == "" {
		t.Skipf("no writable cgroup v2 here: %s", m.probe.RootReason)
	}
	m.forceGated = true
	ex := mustRun(t, m, Spec{Command: []string{wl(t, "burn"), "1", "200"}})
	require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
	cpu, ok := ex.Usage.CPUTotal.Get()
	require.True(t, ok)
	// Every instruction of the workload ran inside the cgroup: its thread
	// burnt 200 ms by its own clock, so the cgroup holds at least that; a
	// start outside the cgroup would show as less, never more. Above it,
	// the exec and the last chunk of the spin loop: a few ms natively; in
	// the VM suite also what the guest charges while the host has taken
	// its vCPU away (no steal-time accounting under emulation), up to a
	// few hundred ms on a busy host.
	hi := 0.25
	if scenario != "" {
		hi = 0.5
	}
	assert.GreaterOrEqual(t, cpu.Seconds(), 0.199, "source %s", ex.Usage.CPUTotal.Source())
	assert.LessOrEqual(t, cpu.Seconds(), hi, "source %s", ex.Usage.CPUTotal.Source())
	ex = mustRun(t, m, Spec{Command: []string{"/bin/sh", "-c", "exit 5"}})
	assert.Equal(t, 5, ex.ExitCode)
}
