package cgroupmon

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestResourceMonitorMeasuresTheTarget: a target that allocates 100 MiB
// while this process allocates nothing; the original module would have
// reported its own interpreter.
func TestResourceMonitorMeasuresTheTarget(t *testing.T) {
	m := newMonitor(t, Options{Interval: 20 * time.Millisecond})
	cmd := exec.Command(wl(t, "alloc"), "100", "3000")
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	rm := NewResourceMonitor(m, Target{PID: cmd.Process.Pid})
	_, err := rm.ResourceUsage()
	require.ErrorIs(t, err, ErrNotMonitoring)
	require.NoError(t, rm.StartMonitoring(context.Background()))
	// Touching 100 MiB takes a while on a loaded machine: poll (this
	// process's own RSS, which the original module reported, never grows).
	var live ResourceUsage
	for deadline := time.Now().Add(2500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		require.NoError(t, rm.UpdateMonitoring())
		live, err = rm.ResourceUsage()
		require.NoError(t, err)
		if live.MemoryPeakMB != nil && *live.MemoryPeakMB >= 95 {
			break
		}
	}
	require.NotNil(t, live.MemoryPeakMB, live.Unavailable["memory_peak_mb"])
	assert.InEpsilon(t, 100, *live.MemoryPeakMB, 0.10, "the target's 100 MiB, not this process's memory")
	assert.Greater(t, live.CPUSamples, 0)

	ex, err := rm.StopMonitoring()
	require.NoError(t, err)
	final, err := rm.ResourceUsage()
	require.NoError(t, err)
	require.NotNil(t, final.MemoryPeakMB, final.Unavailable["memory_peak_mb"])
	assert.InEpsilon(t, 100, *final.MemoryPeakMB, 0.10, "source %s", final.Sources["memory_peak_mb"])
	assert.Greater(t, final.ExecutionTimeSeconds, 0.0)
	assert.Equal(t, ex.Usage.CPUSamples.Value(), final.CPUSamples)
}
