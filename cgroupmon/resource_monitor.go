package cgroupmon

import (
	"context"
	"errors"
	"sync"

	"github.com/cgmon/cgmon/metrics"
)

// ResourceMonitor is the original module's ResourceMonitor over an attached
// target: it samples the target (never this process) in the background on
// the Monitor's ticker, and UpdateMonitoring takes a sample at once.
type ResourceMonitor struct {
	m      *Monitor
	target Target

	mu  sync.Mutex
	h   *Handle
	end *metrics.Execution
}

// NewResourceMonitor returns a ResourceMonitor of target on m.
func NewResourceMonitor(m *Monitor, target Target) *ResourceMonitor {
	return &ResourceMonitor{m: m, target: target}
}

// ErrNotMonitoring is returned when StartMonitoring was not called, or it failed.
var ErrNotMonitoring = errors.New("resource monitor not started")

// StartMonitoring attaches to the target and starts sampling it.
func (rm *ResourceMonitor) StartMonitoring(ctx context.Context) error {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if rm.h != nil {
		return errors.New("resource monitor already started")
	}
	h, err := rm.m.Attach(ctx, rm.target)
	if err != nil {
		return err
	}
	rm.h = h
	return nil
}

// UpdateMonitoring takes a sample now, without waiting for the ticker. A
// sample less than 10 ms after the previous one updates memory only.
func (rm *ResourceMonitor) UpdateMonitoring() error {
	rm.mu.Lock()
	h := rm.h
	rm.mu.Unlock()
	if h == nil {
		return ErrNotMonitoring
	}
	h.sampleNow()
	return nil
}

// StopMonitoring stops watching (the target is not touched) and returns
// the final record.
func (rm *ResourceMonitor) StopMonitoring() (metrics.Execution, error) {
	rm.mu.Lock()
	h := rm.h
	rm.mu.Unlock()
	if h == nil {
		return metrics.Execution{}, ErrNotMonitoring
	}
	_ = h.Kill() // stops the watch only
	ex, err := h.Wait()
	rm.mu.Lock()
	rm.end = &ex
	rm.mu.Unlock()
	return ex, err
}

// ResourceUsage is the original module's get_resource_usage(), with the
// same JSON names. A figure that could not be measured is null, and its
// reason is in Unavailable; MB means MiB.
type ResourceUsage struct {
	// ExecutionTimeSeconds is the wall time so far, or of the whole watch.
	ExecutionTimeSeconds float64 `json:"execution_time_seconds"`
	// MemoryStartMB is the memory in use at the first sample, in MiB.
	MemoryStartMB *float64 `json:"memory_start_mb"`
	// MemoryPeakMB is the highest memory use, in MiB.
	MemoryPeakMB *float64 `json:"memory_peak_mb"`
	// CPUSamples is the number of samples that measured CPU.
	CPUSamples int `json:"cpu_samples"`
	// CPUAveragePercent is the CPU time over the wall time, in percent of
	// one CPU.
	CPUAveragePercent *float64 `json:"cpu_average_percent"`
	// CPUPeakPercent is the highest CPU percentage over one interval.
	CPUPeakPercent *float64 `json:"cpu_peak_percent"`
	// Sources names the source of each figure present, by JSON name.
	Sources map[string]metrics.Source `json:"sources"`
	// Unavailable gives the reason of each figure that is null.
	Unavailable map[string]string `json:"unavailable,omitempty"`
}

// ResourceUsage returns the usage so far (live), or the final one after
// StopMonitoring or the target's end.
func (rm *ResourceMonitor) ResourceUsage() (ResourceUsage, error) {
	rm.mu.Lock()
	h, end := rm.h, rm.end
	rm.mu.Unlock()
	if h == nil {
		return ResourceUsage{}, ErrNotMonitoring
	}
	u := h.Usage()
	if end != nil {
		u = end.Usage
	}
	out := ResourceUsage{Sources: map[string]metrics.Source{}, Unavailable: map[string]string{}}
	out.ExecutionTimeSeconds = u.WallTime.Value().Seconds()
	out.CPUSamples = u.CPUSamples.Value()
	mb := func(name string, m metrics.Measure[uint64]) *float64 {
		if v, ok := m.Get(); ok {
			out.Sources[name] = m.Source()
			f := float64(v) / (1 << 20)
			return &f
		}
		out.Unavailable[name] = m.Reason()
		return nil
	}
	pct := func(name string, m metrics.Measure[float64]) *float64 {
		if v, ok := m.Get(); ok {
			out.Sources[name] = m.Source()
			return &v
		}
		out.Unavailable[name] = m.Reason()
		return nil
	}
	out.MemoryStartMB = mb("memory_start_mb", u.MemoryStart)
	out.MemoryPeakMB = mb("memory_peak_mb", u.MemoryPeak)
	out.CPUAveragePercent = pct("cpu_average_percent", u.CPUAveragePercent)
	out.CPUPeakPercent = pct("cpu_peak_percent", u.CPUPeakPercent)
	out.Sources["execution_time_seconds"] = u.WallTime.Source()
	return out, nil
}
