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
	SourceCgroupPidsPeak       Source = "cgroup2:pids.peak"
	SourceSampledPidsCurrent   Source = "sampled:pids.current"
	SourceSampledCgroupProcs   Source = "sampled:cgroup.procs"
	SourceCgroupIOStat         Source = "cgroup2:io.stat"
	SourceRusage               Source = "rusage:utime+stime"
	SourceRusageUTime          Source = "rusage:utime"
	SourceRusageSTime          Source = "rusage:stime"
	SourceRusageMaxRSS         Source = "rusage:maxrss"
	SourceProcVmHWM            Source = "procfs:VmHWM"
	SourceSampledProcRSS       Source = "sampled:procfs:rss"
	SourceSampledProcCPU       Source = "sampled:procfs:stat"
	SourceSampledProcTree      Source = "sampled:procfs:tree"
	SourceProcIO               Source = "procfs:io"
	SourceSampler              Source = "sampler"
	// SourceCgroupCPUPressure, SourceCgroupMemoryPressure and
	// SourceCgroupIOPressure are the pressure stall files of a cgroup
	// (PSI, Linux 4.20): the time during which some of its tasks waited
	// for a CPU, for memory or for I/O.
	SourceCgroupCPUPressure    Source = "cgroup2:cpu.pressure"
	SourceCgroupMemoryPressure Source = "cgroup2:memory.pressure"
	SourceCgroupIOPressure     Source = "cgroup2:io.pressure"
	// SourceCgroupMemoryStat is memory.stat read once, at the end.
	SourceCgroupMemoryStat Source = "cgroup2:memory.stat"
	// SourceSampledMemoryAnon is the anon line of memory.stat, sampled.
	SourceSampledMemoryAnon Source = "sampled:memory.stat:anon"
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
	// CPUSamplesDropped counts sampler intervals over which the CPU time
	// rose more than the CPUs the execution could use can give in the
	// interval's wall time: the clock and the counter
	// disagree, so the interval's percentage is not reported and its CPU
	// time counts in the next interval's. CPUSamples does not count them.
	CPUSamplesDropped Measure[int] `json:"cpu_samples_dropped"`
	// CPUWait, MemoryWait and IOWait are how long some of the
	// execution's tasks waited for a CPU, for memory and for I/O during the
	// run: the growth of the "some" total of the cgroup's pressure files
	// (PSI). A long wait means the host was busy and the wall time says
	// less about the program.
	CPUWait    Measure[time.Duration] `json:"cpu_wait_ns"`
	MemoryWait Measure[time.Duration] `json:"memory_wait_ns"`
	IOWait     Measure[time.Duration] `json:"io_wait_ns"`
	// MemoryProcessPeak is the peak resident set size of the largest
	// single process, in bytes: rusage maxrss (what `time -v` prints as
	// "Maximum resident set size") or VmHWM. MemoryPeak, a cgroup's
	// charge, also counts page cache, tmpfs and kernel memory, so the two
	// differ for a program that reads or writes files.
	MemoryProcessPeak Measure[uint64] `json:"memory_process_peak_bytes"`
	// MemoryAnonPeak is the highest anonymous memory (heap, stacks) of the
	// execution's cgroup seen by the sampler, in bytes (memory.stat anon):
	// a lower bound, as a peak between two samples is missed.
	MemoryAnonPeak Measure[uint64] `json:"memory_anon_peak_bytes"`
	// MemoryFileAtEnd, MemoryShmemAtEnd and MemoryKernelAtEnd are, once
	// the execution ended, how much of its cgroup's charge was page cache
	// (tmpfs and shared memory included), tmpfs and shared memory alone,
	// and kernel memory (slab, stacks, page tables, ...), in bytes
	// (memory.stat).
	MemoryFileAtEnd   Measure[uint64] `json:"memory_file_at_end_bytes"`
	MemoryShmemAtEnd  Measure[uint64] `json:"memory_shmem_at_end_bytes"`
	MemoryKernelAtEnd Measure[uint64] `json:"memory_kernel_at_end_bytes"`
}

// Metric names one quantity of a Usage, in snake_case ("memory_peak").
type Metric string

// The metrics of a Usage, one per field.
const (
	MetricExecutionTime     Metric = "execution_time"
	MetricCPUUser           Metric = "cpu_user"
	MetricCPUSystem         Metric = "cpu_system"
	MetricCPUTotal          Metric = "cpu_total"
	MetricCPUSamples        Metric = "cpu_samples"
	MetricCPUAveragePercent Metric = "cpu_average_percent"
	MetricCPUPeakPercent    Metric = "cpu_peak_percent"
	MetricMemoryStart       Metric = "memory_start"
	MetricMemoryPeak        Metric = "memory_peak"
	MetricPidsPeak          Metric = "pids_peak"
	MetricIORead            Metric = "io_read"
	MetricIOWrite           Metric = "io_write"
	MetricCPUThrottled      Metric = "cpu_throttled"
	MetricCPUSamplesDropped Metric = "cpu_samples_dropped"
	MetricCPUWait           Metric = "cpu_wait"
	MetricMemoryWait        Metric = "memory_wait"
	MetricIOWait            Metric = "io_wait"
	MetricMemoryProcessPeak Metric = "memory_process_peak"
	MetricMemoryAnonPeak    Metric = "memory_anon_peak"
	MetricMemoryFileAtEnd   Metric = "memory_file_at_end"
	MetricMemoryShmemAtEnd  Metric = "memory_shmem_at_end"
	MetricMemoryKernelAtEnd Metric = "memory_kernel_at_end"
)

// Metrics lists every Metric in the order of Usage.Fields.
var Metrics = [...]Metric{
	MetricExecutionTime, MetricCPUUser, MetricCPUSystem, MetricCPUTotal,
	MetricCPUSamples, MetricCPUAveragePercent, MetricCPUPeakPercent,
	MetricMemoryStart, MetricMemoryPeak, MetricPidsPeak,
	MetricIORead, MetricIOWrite, MetricCPUThrottled,
	MetricCPUSamplesDropped, MetricCPUWait, MetricMemoryWait, MetricIOWait,
	MetricMemoryProcessPeak, MetricMemoryAnonPeak,
	MetricMemoryFileAtEnd, MetricMemoryShmemAtEnd, MetricMemoryKernelAtEnd,
}

// Field is one named Measure of a Usage, for reports that list them.
type Field struct {
	// Name is the metric the field holds.
	Name Metric
	// Valid is true when the metric was measured.
	Valid bool
	// Source is where a measured value came from.
	Source Source
	// Reason is why an absent value could not be measured.
	Reason string
}

// Fields lists every metric of u with its source or reason, in the order
// of Metrics.
func (u *Usage) Fields() []Field {
	return []Field{
		field(MetricExecutionTime, u.WallTime),
		field(MetricCPUUser, u.CPUUser),
		field(MetricCPUSystem, u.CPUSystem),
		field(MetricCPUTotal, u.CPUTotal),
		field(MetricCPUSamples, u.CPUSamples),
		field(MetricCPUAveragePercent, u.CPUAveragePercent),
		field(MetricCPUPeakPercent, u.CPUPeakPercent),
		field(MetricMemoryStart, u.MemoryStart),
		field(MetricMemoryPeak, u.MemoryPeak),
		field(MetricPidsPeak, u.PidsPeak),
		field(MetricIORead, u.IORead),
		field(MetricIOWrite, u.IOWrite),
		field(MetricCPUThrottled, u.CPUThrottled),
		field(MetricCPUSamplesDropped, u.CPUSamplesDropped),
		field(MetricCPUWait, u.CPUWait),
		field(MetricMemoryWait, u.MemoryWait),
		field(MetricIOWait, u.IOWait),
		field(MetricMemoryProcessPeak, u.MemoryProcessPeak),
		field(MetricMemoryAnonPeak, u.MemoryAnonPeak),
		field(MetricMemoryFileAtEnd, u.MemoryFileAtEnd),
		field(MetricMemoryShmemAtEnd, u.MemoryShmemAtEnd),
		field(MetricMemoryKernelAtEnd, u.MemoryKernelAtEnd),
	}
}

func field[T Number](name Metric, m Measure[T]) Field {
	return Field{Name: name, Valid: m.ok, Source: m.source, Reason: m.reason}
}
