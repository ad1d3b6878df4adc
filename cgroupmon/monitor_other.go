//go:build !linux

package cgroupmon

import (
	"context"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cgmon/cgmon/metrics"
)

// Monitor runs executions; on this operating system New always fails.
type Monitor struct{}

// Handle is a started execution.
type Handle struct{}

// New returns ErrNotSupported outside Linux.
func New(Options) (*Monitor, error) { return nil, ErrNotSupported }

// Probe returns nil outside Linux.
func (m *Monitor) Probe() *Probe { return nil }

// Backend returns the empty backend outside Linux.
func (m *Monitor) Backend() metrics.Backend { return "" }

// CheckLimits returns ErrNotSupported outside Linux.
func (m *Monitor) CheckLimits(*specs.LinuxResources) error { return ErrNotSupported }

// CheckRlimits returns ErrNotSupported outside Linux.
func (m *Monitor) CheckRlimits([]specs.POSIXRlimit) error { return ErrNotSupported }

// Start returns ErrNotSupported outside Linux.
func (m *Monitor) Start(context.Context, Spec) (*Handle, error) { return nil, ErrNotSupported }

// Run returns ErrNotSupported outside Linux.
func (m *Monitor) Run(context.Context, Spec) (metrics.Execution, error) {
	return metrics.Execution{}, ErrNotSupported
}

// Close does nothing outside Linux.
func (m *Monitor) Close() error { return nil }

// ID returns the empty string outside Linux.
func (h *Handle) ID() string { return "" }

// Pid returns -1 outside Linux.
func (h *Handle) Pid() int { return -1 }

// CgroupPath returns the empty string outside Linux.
func (h *Handle) CgroupPath() string { return "" }

// Usage returns an empty Usage outside Linux.
func (h *Handle) Usage() metrics.Usage { return metrics.Usage{} }

// Wait returns ErrNotSupported outside Linux.
func (h *Handle) Wait() (metrics.Execution, error) { return metrics.Execution{}, ErrNotSupported }

// Done returns a closed channel outside Linux.
func (h *Handle) Done() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// Kill returns ErrNotSupported outside Linux.
func (h *Handle) Kill() error { return ErrNotSupported }

// Attach returns ErrNotSupported outside Linux.
func (m *Monitor) Attach(context.Context, Target) (*Handle, error) { return nil, ErrNotSupported }

func (h *Handle) sampleNow() {}

// Reaped returns nothing outside Linux.
func (m *Monitor) Reaped() Reaped { return Reaped{} }

// Reap returns ErrNotSupported outside Linux.
func Reap(Options) (Reaped, error) { return Reaped{}, ErrNotSupported }

// FindStale returns ErrNotSupported outside Linux.
func FindStale(string) ([]StaleLeaf, error) { return nil, ErrNotSupported }
