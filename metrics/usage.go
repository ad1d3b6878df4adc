package metrics

import (
	"encoding/json"
	"time"
)

// Source names where a number came from: "<origin>:<file or field>", for
// example "cgroup2:memory.peak", "procfs:VmHWM", "rusage:maxrss",
// "sampled:memory.current".
type Source string

// The sources cgmon uses.
const (
	SourceMonotonic            Source = "clock:monotonic"
	SourceCgroupCPUStat        Source = "cgroup2:cpu.stat"
	SourceCgroupMemoryPeak     Source = "cgroup2:memory.peak"
	SourceSampledMemoryCurrent Source = "sampled:memory.current"
	SourceCgroupMemoryCurrent  Source = "cgroup2:memory.current"
	SourceCgroupPidsPeak       Source = "cgroup2:pids.peak"
	SourceSampledPidsCurrent   Source = "sampled:pids.current"
	SourceCgroupIOStat         Source = "cgroup2:io.stat"
	SourceRusage               Source = "rusage:utime+stime"
	SourceRusageMaxRSS         Source = "rusage:maxrss"
	SourceProcVmHWM            Source = "procfs:VmHWM"
	SourceProcRSS              Source = "procfs:VmRSS"
	SourceSampledProcRSS       Source = "sampled:procfs:rss"
	SourceSampledProcCPU       Source = "sampled:procfs:stat"
	SourceSampledProcTree      Source = "sampled:procfs:tree"
	SourceProcIO               Source = "procfs:io"
	SourceSampler              Source = "sampler"
)

// Number is the set of types a Measure can hold.
type Number interface {
	~int64 | ~uint64 | ~float64 | ~int
}

// Measure is one measured quantity: its value and source when it was
// measured, or the reason it could not be. The zero Measure is absent with no
// reason given, which producers must not leave behind.
type Measure[T Number] struct {
	value  T
	source Source
	reason string
	ok     bool
}

// Measured returns a present Measure.
func Measured[T Number](v T, src Source) Measure[T] {
	return Measure[T]{value: v, source: src, ok: true}
}

// Unavailable returns an absent Measure with the reason it is absent.
func Unavailable[T Number](reason string) Measure[T] {
	return Measure[T]{reason: reason}
}

// Get returns the value and whether it was measured.
func (m Measure[T]) Get() (T, bool) { return m.value, m.ok }

// Value returns the value, the zero value when absent.
func (m Measure[T]) Value() T { return m.value }

// Valid reports whether the quantity was measured.
func (m Measure[T]) Valid() bool { return m.ok }

// Source returns where the value came from; empty when absent.
func (m Measure[T]) Source() Source { return m.source }

// Reason returns why the value is absent; empty when present.
func (m Measure[T]) Reason() string { return m.reason }

type measureJSON[T Number] struct {
	Value  *T     `json:"value"`
	Source Source `json:"source,omitempty"`
	Reason string `json:"unavailable,omitempty"`
}

// MarshalJSON writes {"value": v, "source": s} or {"value": null,
// "unavailable": reason}.
func (m Measure[T]) MarshalJSON() ([]byte, error) {
	j := measureJSON[T]{Source: m.source, Reason: m.reason}
	if m.ok {
		v := m.value
		j.Value = &v
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Measure[T]) UnmarshalJSON(b []byte) error {
	var j measureJSON[T]
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = Measure[T]{source: j.Source, reason: j.Reason}
	if j.Value != nil {
		m.value, m.ok = *j.Value, true
	}
	return nil
}

// Usage is what an execution used. Every field is a Measure: present with
// its source, or absent with a reason.
type Usage struct {
	// WallTime is the time from start to the end of the execution.
	WallTime Measure[time.Duration] `json:"wall_time_ns"`
	// CPUUser, CPUSystem and CPUTotal are CPU times of every process of
	// the execution.
	CPUUser   Measure[time.Duration] `json:"cpu_user_ns"`
	CPUSystem Measure[time.Duration] `json:"cpu_system_ns"`
	CPUTotal  Measure[time.Duration] `json:"cpu_total_ns"`
	// CPUSamples is the number of sampler ticks that measured CPU.
	CPUSamples Measure[int] `json:"cpu_samples"`
	// CPUAveragePercent is CPUTotal over WallTime, in percent of one CPU.
	CPUAveragePercent Measure[float64] `json:"cpu_average_percent"`
	// CPUPeakPercent is the highest per-interval CPU percentage sampled.
	CPUPeakPercent Measure[float64] `json:"cpu_peak_percent"`
	// MemoryStart is the memory in use at the first sample, in bytes.
	MemoryStart Measure[uint64] `json:"memory_start_bytes"`
	// MemoryPeak is the highest memory use, in bytes.
	MemoryPeak Measure[uint64] `json:"memory_peak_bytes"`
	// PidsPeak is the highest number of processes (tasks) at once.
	PidsPeak Measure[uint64] `json:"pids_peak"`
	// IORead and IOWrite are bytes read from and written to block devices
	// (cgroup) or storage (procfs).
	IORead  Measure[uint64] `json:"io_read_bytes"`
	IOWrite Measure[uint64] `json:"io_write_bytes"`
	// CPUThrottled is the time the execution was throttled by cpu.max.
	CPUThrottled Measure[time.Duration] `json:"cpu_throttled_ns"`
}

// Field is one named Measure of a Usage, for reports that list them.
type Field struct {
	// Name is the metric's snake_case name, e.g. "memory_peak".
	Name   string
	Valid  bool
	Source Source
	Reason string
}

// Fields lists every metric of u with its source or reason, in a stable order.
func (u *Usage) Fields() []Field {
	return []Field{
		field("execution_time", u.WallTime),
		field("cpu_user", u.CPUUser),
		field("cpu_system", u.CPUSystem),
		field("cpu_total", u.CPUTotal),
		field("cpu_samples", u.CPUSamples),
		field("cpu_average_percent", u.CPUAveragePercent),
		field("cpu_peak_percent", u.CPUPeakPercent),
		field("memory_start", u.MemoryStart),
		field("memory_peak", u.MemoryPeak),
		field("pids_peak", u.PidsPeak),
		field("io_read", u.IORead),
		field("io_write", u.IOWrite),
		field("cpu_throttled", u.CPUThrottled),
	}
}

func field[T Number](name string, m Measure[T]) Field {
	return Field{Name: name, Valid: m.ok, Source: m.source, Reason: m.reason}
}
