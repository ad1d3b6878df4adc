package cgroupmon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIntervalFloor: an interval below MinInterval (1 ms) would keep a
// CPU busy sampling; New refuses it, and makes nothing.
func TestIntervalFloor(t *testing.T) {
	for _, d := range []time.Duration{time.Nanosecond, 999 * time.Microsecond, -time.Second} {
		m, err := New(Options{Interval: d, Backend: BackendProcfs})
		if !errors.Is(err, ErrInvalidSpec) {
			if m != nil {
				_ = m.Close()
			}
			t.Errorf("New with interval %v: %v, want ErrInvalidSpec", d, err)
			continue
		}
		assert.Contains(t, err.Error(), "1ms", "the error names the floor")
	}
	m := newMonitor(t, Options{Interval: MinInterval, Backend: BackendProcfs})
	assert.Equal(t, MinInterval, m.opts.Interval)
	m = newMonitor(t, Options{Backend: BackendProcfs})
	assert.Equal(t, DefaultInterval, m.opts.Interval, "0 is the default")
}

// TestForgingIDsRefused: Start and Attach refuse an id that would forge
// a line of a report, before anything runs or is watched.
func TestForgingIDsRefused(t *testing.T) {
	m := newMonitor(t, Options{})
	marker := filepath.Join(t.TempDir(), "ran")
	for _, id := range []string{"x\nStatus: success", "x\x1b]0;title\x07", "x\u009b2J"} {
		_, err := m.Start(context.Background(), Spec{ID: id, Command: []string{"/bin/sh", "-c", "touch " + marker}})
		assert.ErrorIs(t, err, ErrInvalidSpec, "Start with id %q", id)
		_, err = m.Attach(context.Background(), Target{ID: id, PID: os.Getpid(), Duration: time.Millisecond})
		assert.ErrorIs(t, err, ErrInvalidSpec, "Attach with id %q", id)
	}
	assert.NoFileExists(t, marker, "a refused id must not run")
}

// TestDefaultIDsOfRuns: runs and watches given no id get ids of the
// generated form, all different, also from two monitors of one process.
func TestDefaultIDsOfRuns(t *testing.T) {
	a := newMonitor(t, Options{})
	b := newMonitor(t, Options{Backend: BackendProcfs})
	seen := map[string]bool{}
	for i, m := range []*Monitor{a, b, a, b} {
		ex, err := m.Run(context.Background(), Spec{Command: []string{"/bin/true"}})
		require.NoError(t, err)
		assert.Regexp(t, defaultIDForm, ex.ID)
		assert.True(t, strings.HasPrefix(ex.ID, "exec-"), ex.ID)
		assert.False(t, seen[ex.ID], "run %d got the id %s of an earlier run", i, ex.ID)
		seen[ex.ID] = true
	}
	h, err := a.Attach(context.Background(), Target{PID: os.Getpid(), Duration: time.Millisecond})
	require.NoError(t, err)
	ex, err := h.Wait()
	require.NoError(t, err)
	assert.Regexp(t, defaultIDForm, ex.ID)
	assert.True(t, strings.HasPrefix(ex.ID, "attach-"), ex.ID)
}
