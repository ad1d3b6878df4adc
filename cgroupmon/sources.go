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
	psi                   bool // the pressure files exist (Linux 4.20, CONFIG_PSI, not psi=0)
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
	set(metrics.MetricCPUPeakPercent, "highest CPU time delta over one sampling interval, never above what the CPUs the execution could use give in that interval", metrics.SourceSampler)
	set(metrics.MetricCPUSamplesDropped, "sampling intervals over which the CPU time rose more than the CPUs the execution could use (online CPUs, its cpuset, its cpu.max) can give in the interval's wall time: dropped, their CPU time counts in the next interval", metrics.SourceSampler)
	if k.backend == metrics.BackendProcfs {
		procfsSources(set)
		return t
	}
	psiSources(set, k)
	processPeakSource(set, k)
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
	memoryStatSources(set, k)
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
	const noPSI = "no cgroup: pressure stall information (PSI) is kept per cgroup, and the host-wide /proc/pressure counts every program's waits"
	set(metrics.MetricCPUWait, noPSI)
	set(metrics.MetricMemoryWait, noPSI)
	set(metrics.MetricIOWait, noPSI)
	set(metrics.MetricMemoryProcessPeak, "no cgroup: the largest of rusage maxrss of the reaped processes (what time -v prints) and VmHWM of live ones",
		metrics.SourceRusageMaxRSS, metrics.SourceProcVmHWM)
	const noStat = "no cgroup: memory.stat is kept per memory cgroup"
	for _, m := range []metrics.Metric{metrics.MetricMemoryAnonPeak, metrics.MetricMemoryFileAtEnd, metrics.MetricMemoryShmemAtEnd, metrics.MetricMemoryKernelAtEnd} {
		set(m, noStat)
	}
}

// psiSources fills the rows of the pressure stall times of a cgroup leaf.
func psiSources(set func(metrics.Metric, string, ...metrics.Source), k hostKind) {
	for _, x := range []struct {
		m    metrics.Metric
		file string
		src  metrics.Source
	}{
		{metrics.MetricCPUWait, "cpu.pressure", metrics.SourceCgroupCPUPressure},
		{metrics.MetricMemoryWait, "memory.pressure", metrics.SourceCgroupMemoryPressure},
		{metrics.MetricIOWait, "io.pressure", metrics.SourceCgroupIOPressure},
	} {
		if k.psi {
			set(x.m, x.file+" of the execution's cgroup: the growth of its \"some\" total over the run, exact", x.src)
		} else {
			set(x.m, "no pressure stall information (PSI) in "+k.where+": the kernel lacks CONFIG_PSI, or it is off (boot with psi=1)")
		}
	}
}

// processPeakSource fills the row of the largest process's own peak on a
// cgroup leaf: rusage of the main process where the leaf gives the
// memory, the procfs tree's where it does not.
func processPeakSource(set func(metrics.Metric, string, ...metrics.Source), k hostKind) {
	if k.memory {
		set(metrics.MetricMemoryProcessPeak, "rusage maxrss of the main process and the descendants it waited for (what time -v prints)", metrics.SourceRusageMaxRSS)
		return
	}
	set(metrics.MetricMemoryProcessPeak, "the largest of rusage maxrss of the reaped processes (what time -v prints) and VmHWM of live ones",
		metrics.SourceRusageMaxRSS, metrics.SourceProcVmHWM)
}

// memoryStatSources fills the rows read from memory.stat: the sampled
// anonymous memory and, at the end, what the charge is made of.
func memoryStatSources(set func(metrics.Metric, string, ...metrics.Source), k hostKind) {
	if !k.memory {
		why := "no memory controller in " + k.where + ": no memory.stat"
		for _, m := range []metrics.Metric{metrics.MetricMemoryAnonPeak, metrics.MetricMemoryFileAtEnd, metrics.MetricMemoryShmemAtEnd, metrics.MetricMemoryKernelAtEnd} {
			set(m, why)
		}
		return
	}
	set(metrics.MetricMemoryAnonPeak, "memory.stat anon, sampled: the processes' own memory, a lower bound", metrics.SourceSampledMemoryAnon)
	set(metrics.MetricMemoryFileAtEnd, "memory.stat file once the execution ended: page cache still charged, tmpfs included", metrics.SourceCgroupMemoryStat)
	set(metrics.MetricMemoryShmemAtEnd, "memory.stat shmem once the execution ended: tmpfs and shared memory still charged", metrics.SourceCgroupMemoryStat)
	set(metrics.MetricMemoryKernelAtEnd, "memory.stat kernel once the execution ended (before Linux 5.18, the sum of slab, kernel_stack, pagetables, percpu and sock)", metrics.SourceCgroupMemoryStat)
}

// procMemorySources fills the memory metrics taken from the procfs tree.
func procMemorySources(set func(metrics.Metric, string, ...metrics.Source), why string) {
	set(metrics.MetricMemoryStart, why+": the tree's RSS at the first sample", metrics.SourceSampledProcRSS)
	set(metrics.MetricMemoryPeak, why+": the largest of rusage maxrss of the reaped processes, VmHWM of live ones and the sampled RSS of the tree",
		metrics.SourceRusageMaxRSS, metrics.SourceProcVmHWM, metrics.SourceSampledProcRSS)
}
