package cgroupmon

import (
	"slices"

	"github.com/cgmon/cgmon/metrics"
)

// SourceChoice is where one metric comes from on a host, and why.
type SourceChoice struct {
	// Sources are the sources a run may record for the metric: one where
	// the host decides it, several where the run takes the largest of them
	// at its end (a procfs memory peak: rusage maxrss, VmHWM or the
	// sampled tree RSS). Empty when the metric is unavailable.
	Sources []metrics.Source `json:"sources"`
	// Reason explains the choice, or why the metric is unavailable.
	Reason string `json:"reason"`
}

// Has reports whether a run may record src for the metric.
func (c SourceChoice) Has(src metrics.Source) bool { return slices.Contains(c.Sources, src) }

// first is the metric's usual source, empty when it is unavailable.
func (c SourceChoice) first() metrics.Source {
	if len(c.Sources) == 0 {
		return ""
	}
	return c.Sources[0]
}

// hostKind is what decides every metric's source: the backend and, for a
// cgroup leaf, which controllers it has and which peak files the kernel
// writes.
type hostKind struct {
	backend               metrics.Backend
	cpu, memory, pids, io bool // controllers enabled in the leaf
	memoryPeak, pidsPeak  bool // memory.peak (Linux 5.19) and pids.peak (6.1) exist
	// where names the cgroup root in reasons, e.g. "/sys/fs/cgroup/cgmon".
	where string
}

// sourceTable is the one place that decides, for a kind of host, each
// metric's source and its reason. Probe (and so `cgmon doctor`) shows it;
// the end of a run reads what it says to read and records those sources.
type sourceTable map[metrics.Metric]SourceChoice

// is reports whether the metric's usual source is src.
func (t sourceTable) is(m metrics.Metric, src metrics.Source) bool { return t[m].first() == src }

// reason is why the metric has the source it has, or is unavailable.
func (t sourceTable) reason(m metrics.Metric) string { return t[m].Reason }

// sourcesFor returns the table for a kind of host.
func sourcesFor(k hostKind) sourceTable {
	t := sourceTable{}
	set := func(m metrics.Metric, reason string, srcs ...metrics.Source) {
		t[m] = SourceChoice{Sources: append([]metrics.Source{}, srcs...), Reason: reason}
	}
	set(metrics.MetricExecutionTime, "monotonic clock from the start to the main process's exit (to the last process's with wait-all)", metrics.SourceMonotonic)
	set(metrics.MetricCPUSamples, "ticks of the shared sampler that measured CPU", metrics.SourceSampler)
	set(metrics.MetricCPUPeakPercent, "highest CPU time delta over one sampling interval", metrics.SourceSampler)
	if k.backend == metrics.BackendProcfs {
		procfsSources(set)
		return t
	}
	const cpuReason = "cpu.stat of the execution's cgroup, exact"
	set(metrics.MetricCPUUser, cpuReason, metrics.SourceCgroupCPUStat)
	set(metrics.MetricCPUSystem, cpuReason, metrics.SourceCgroupCPUStat)
	set(metrics.MetricCPUTotal, cpuReason, metrics.SourceCgroupCPUStat)
	set(metrics.MetricCPUAveragePercent, "cpu.stat usage over the wall time", metrics.SourceCgroupCPUStat)
	if k.cpu {
		set(metrics.MetricCPUThrottled, "cpu.stat throttled_usec", metrics.SourceCgroupCPUStat)
	} else {
		set(metrics.MetricCPUThrottled, "the cpu controller is not enabled in "+k.where)
	}
	switch {
	case !k.memory:
		procMemorySources(set, "no memory controller in "+k.where)
	case k.memoryPeak:
		set(metrics.MetricMemoryStart, "memory.current at the first sample", metrics.SourceSampledMemoryCurrent)
		set(metrics.MetricMemoryPeak, "memory.peak, exact (Linux >= 5.19)", metrics.SourceCgroupMemoryPeak)
	default:
		set(metrics.MetricMemoryStart, "memory.current at the first sample", metrics.SourceSampledMemoryCurrent)
		set(metrics.MetricMemoryPeak, "memory.peak is missing (Linux < 5.19): sampled memory.current, a lower bound", metrics.SourceSampledMemoryCurrent)
	}
	switch {
	case k.pids && k.pidsPeak:
		set(metrics.MetricPidsPeak, "pids.peak, exact (Linux >= 6.1)", metrics.SourceCgroupPidsPeak)
	case k.pids:
		set(metrics.MetricPidsPeak, "pids.peak is missing (Linux < 6.1): sampled pids.current, a lower bound", metrics.SourceSampledPidsCurrent)
	case !k.memory:
		set(metrics.MetricPidsPeak, "no pids controller: the process tree listed from cgroup.procs, sampled, a lower bound", metrics.SourceSampledProcTree)
	default:
		set(metrics.MetricPidsPeak, "no pids controller: processes in cgroup.procs, sampled, a lower bound", metrics.SourceSampledCgroupProcs)
	}
	switch {
	case k.io:
		set(metrics.MetricIORead, "io.stat rbytes", metrics.SourceCgroupIOStat)
		set(metrics.MetricIOWrite, "io.stat wbytes", metrics.SourceCgroupIOStat)
	case !k.memory:
		// The procfs tree that gives the memory gives the I/O too.
		set(metrics.MetricIORead, "no io controller: /proc/PID/io of the tree, as last read, a lower bound", metrics.SourceProcIO)
		set(metrics.MetricIOWrite, "no io controller: /proc/PID/io of the tree, as last read, a lower bound", metrics.SourceProcIO)
	default:
		set(metrics.MetricIORead, "the io controller is not enabled in "+k.where)
		set(metrics.MetricIOWrite, "the io controller is not enabled in "+k.where)
	}
	return t
}

// procfsSources fills the table of the procfs backend: no cgroup at all.
func procfsSources(set func(metrics.Metric, string, ...metrics.Source)) {
	const cpuReason = "no cgroup: rusage of the reaped processes, plus the last /proc/PID/stat of any that cgmon could not reap (then labelled sampled, a lower bound)"
	set(metrics.MetricCPUUser, cpuReason, metrics.SourceRusageUTime, metrics.SourceSampledProcCPU)
	set(metrics.MetricCPUSystem, cpuReason, metrics.SourceRusageSTime, metrics.SourceSampledProcCPU)
	set(metrics.MetricCPUTotal, cpuReason, metrics.SourceRusage, metrics.SourceSampledProcCPU)
	set(metrics.MetricCPUAveragePercent, "CPU time (rusage, or sampled /proc) over the wall time", metrics.SourceRusage, metrics.SourceSampledProcCPU)
	procMemorySources(set, "no cgroup")
	set(metrics.MetricPidsPeak, "no cgroup: the sampled process tree, a lower bound", metrics.SourceSampledProcTree)
	set(metrics.MetricIORead, "no cgroup: /proc/PID/io of the tree, as last read, a lower bound", metrics.SourceProcIO)
	set(metrics.MetricIOWrite, "no cgroup: /proc/PID/io of the tree, as last read, a lower bound", metrics.SourceProcIO)
	set(metrics.MetricCPUThrottled, "no cgroup: throttling is not known")
}

// procMemorySources fills the memory metrics taken from the procfs tree.
func procMemorySources(set func(metrics.Metric, string, ...metrics.Source), why string) {
	set(metrics.MetricMemoryStart, why+": the tree's RSS at the first sample", metrics.SourceSampledProcRSS)
	set(metrics.MetricMemoryPeak, why+": the largest of rusage maxrss of the reaped processes, VmHWM of live ones and the sampled RSS of the tree",
		metrics.SourceRusageMaxRSS, metrics.SourceProcVmHWM, metrics.SourceSampledProcRSS)
}
