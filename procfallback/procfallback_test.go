//go:build linux

package procfallback_test

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgmon/cgmon/internal/workload"
	"github.com/cgmon/cgmon/metrics"
	"github.com/cgmon/cgmon/procfallback"
)

// TestMeasureATreeTheCallerStarted is the package example done for real: a
// shell whose child burns 300 ms of CPU and holds 24 MiB, measured through
// the public API only.
func TestMeasureATreeTheCallerStarted(t *testing.T) {
	burn, err := workload.Path("burn")
	require.NoError(t, err)
	alloc, err := workload.Path("alloc")
	require.NoError(t, err)
	cmd := exec.Command("sh", "-c", burn+" 1 300; "+alloc+" 24 300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var before, after syscall.Rusage // the kernel's own account of our waited-for children: the oracle
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before))
	require.NoError(t, cmd.Start())
	fs, err := procfallback.NewFS("")
	require.NoError(t, err)
	tree := fs.NewTree(cmd.Process.Pid, procfallback.TreeOptions{})
	defer tree.Close()

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	sawChild := false
	for running := true; running; {
		select {
		case err := <-done:
			require.NoError(t, err)
			running = false
		case <-time.After(20 * time.Millisecond):
			s, err := tree.Sample()
			require.NoError(t, err)
			sawChild = sawChild || s.Procs >= 2
		}
	}
	require.NoError(t, tree.Exited(cmd.ProcessState))
	tot := tree.Totals()
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after))
	kernelCPU := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())

	assert.True(t, sawChild, "the shell's child was found by sampling")
	cpu, ok := tot.CPUTotal.Get()
	require.True(t, ok, tot.CPUTotal.Reason())
	assert.Equal(t, metrics.SourceRusage, tot.CPUTotal.Source(), "the reaped shell's rusage includes its waited-for children")
	// The same rusage, split and rounded by the kernel at two waits: equal
	// to the tick here, within 2% under emulation (the VM suite).
	assert.InDelta(t, kernelCPU.Seconds(), cpu.Seconds(), max(0.005, 0.02*kernelCPU.Seconds()), "the shell and both children, as the kernel accounts them")
	assert.Greater(t, cpu.Seconds(), 0.1, "burn ran for 300 ms")
	peak, ok := tot.MaxRSS.Get()
	require.True(t, ok, tot.MaxRSS.Reason())
	assert.InDelta(t, 24<<20, float64(peak), 4<<20, "rusage maxrss of the shell covers its largest child")
}

// TestFacadeErrors: the public sentinels are the same values that every
// layer wraps, so errors.Is works from outside.
func TestFacadeErrors(t *testing.T) {
	_, err := procfallback.NewFS(t.TempDir())
	require.Error(t, err)
	assert.True(t, errors.Is(err, procfallback.ErrUnavailable), "a directory without self/ is no proc filesystem: %v", err)

	fs, err := procfallback.NewFS("")
	require.NoError(t, err)
	tree := fs.NewTree(1<<22+1, procfallback.TreeOptions{}) // beyond pid_max: no such process
	require.NoError(t, tree.Close())
	_, err = tree.Sample()
	assert.ErrorIs(t, err, procfallback.ErrClosed)
}
