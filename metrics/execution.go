package metrics

import (
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Status is how an execution ended.
type Status string

// The statuses an execution can end with.
const (
	// StatusSuccess is when the main process exited with status 0.
	StatusSuccess Status = "success"
	// StatusError is when the main process exited with a non-zero status.
	StatusError Status = "error"
	// StatusSignaled is when the main process was killed by a signal cgmon did not send.
	StatusSignaled Status = "signaled"
	// StatusTimeout is when cgmon's wall-clock limit ended the execution.
	StatusTimeout Status = "timeout"
	// StatusCPUTimeout is when the execution's CPU-time limit was reached; judges
	// call it Time Limit Exceeded. It is distinct from StatusTimeout, the
	// wall-clock limit.
	StatusCPUTimeout Status = "cpu_timeout"
	// StatusOOM is when the execution's own oom_kill count rose (never guessed from
	// exit status 137).
	StatusOOM Status = "oom"
	// StatusCanceled is when the caller canceled the execution (e.g. Ctrl-C).
	StatusCanceled Status = "canceled"
	// StatusFailedToStart is when the command could not be executed. Such an
	// execution never ran: the Collector counts it in the totals and by
	// status, but in no time, CPU or memory statistic.
	StatusFailedToStart Status = "failed_to_start"
	// StatusEnded is when an attached target (not cgmon's child) ended; its exit
	// status is unknown to cgmon.
	StatusEnded Status = "ended"
)

// Statuses lists every Status in a stable order.
var Statuses = [...]Status{
	StatusSuccess, StatusError, StatusSignaled, StatusTimeout, StatusCPUTimeout,
	StatusOOM, StatusCanceled, StatusFailedToStart, StatusEnded,
}

// Index returns the position of s in Statuses, or -1 for an unknown status.
func (s Status) Index() int {
	for i, v := range Statuses {
		if v == s {
			return i
		}
	}
	return -1
}

// Valid reports whether s is one of Statuses.
func (s Status) Valid() bool { return s.Index() >= 0 }

// Backend names the mechanism that measured an execution.
type Backend string

// The backends.
const (
	// BackendCgroup2 takes every metric from a cgroup v2 leaf with controllers.
	BackendCgroup2 Backend = "cgroup2"
	// BackendHybrid takes CPU, membership and kill from a cgroup v2 leaf without
	// controllers, memory from procfs and rusage.
	BackendHybrid Backend = "hybrid"
	// BackendProcfs is used without a usable cgroup: procfs, rusage and process groups.
	BackendProcfs Backend = "procfs"
)

// Execution is the record of one run of a user's program.
type Execution struct {
	// ID is the caller's identifier of the execution.
	ID string `json:"id"`
	// Language is the caller's label for the program's language.
	Language string `json:"language"`
	// CodeLength is the length of the program's source, in bytes, as the
	// caller reported it.
	CodeLength int `json:"code_length"`
	// Command is the argv that was run.
	Command []string `json:"command,omitempty"`

	// Status says how the execution ended; Reason says why in words where
	// the status alone does not (e.g. the start error, the signal name).
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	// ExitCode is the main process's exit status, or -1 when it did not
	// exit normally (signaled, never started, not cgmon's child).
	ExitCode int `json:"exit_code"`
	// Signal is the signal that ended the main process, 0 when none.
	Signal int `json:"signal"`
	// TimedOut is true when cgmon's wall-clock limit ended the execution.
	TimedOut bool `json:"timed_out"`
	// OOMKilled is true when the kernel's OOM killer killed a process of
	// the execution (memory.events oom_kill rose).
	OOMKilled bool `json:"oom_killed"`
	// LeftoverProcessesKilled counts processes still alive after the main
	// process exited that cgmon killed.
	LeftoverProcessesKilled int `json:"leftover_processes_killed"`
	// EscapedProcessesKilled counts processes of the execution that cgmon
	// found outside its cgroup, having moved themselves into another one
	// (and the children they made there), and killed. cgmon finds them
	// among its descendants, so only when it is a child subreaper
	// (cgroupmon.Options.Subreaper, which the CLI sets); otherwise it is 0.
	EscapedProcessesKilled int `json:"escaped_processes_killed"`
	// LowerBounds names the metrics whose value is only a lower bound for
	// this execution, each with the reason: e.g. the CPU time that a
	// process spent after it left the execution's cgroup is not in that
	// cgroup's cpu.stat. Absent when every value is what its source says.
	LowerBounds map[Metric]string `json:"lower_bounds,omitempty"`

	// StartedAt and EndedAt are wall-clock times (with Go's monotonic
	// reading while in memory).
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`

	// Backend is what measured the execution.
	Backend Backend `json:"backend"`
	// Usage holds every measured quantity with its source.
	Usage Usage `json:"usage"`
	// Samples is the timeline taken by the sampler; it may be empty for an
	// execution shorter than one interval.
	Samples []Sample `json:"samples,omitempty"`
	// Limits are the limits that were in force, as read back from the
	// cgroup's files after they were written, never the request echoed
	// (memory.max is in whole pages, cpuset.cpus as the kernel lists it);
	// nil when none were asked for. A file that keeps the OCI unit maps
	// back to its OCI field; cpu.shares and the blockIO weights, which
	// cgmon converts to another scale, and every unified key are under
	// Unified by file name, with the file's content as read. Devices lists
	// the rules of the eBPF program attached to the cgroup, defaults
	// explicit.
	Limits *specs.LinuxResources `json:"limits,omitempty"`
}

// Duration returns the execution's wall time: Usage.WallTime when measured,
// else EndedAt - StartedAt.
func (e *Execution) Duration() time.Duration {
	if v, ok := e.Usage.WallTime.Get(); ok {
		return v
	}
	return e.EndedAt.Sub(e.StartedAt)
}

// Sample is one tick of the sampler for one execution.
type Sample struct {
	// Elapsed is the time since the execution started.
	Elapsed time.Duration `json:"elapsed_ns"`
	// CPU is the cumulative CPU time (user + system) used so far.
	CPU time.Duration `json:"cpu_ns"`
	// CPUPercent is CPU used over the interval ending at this sample,
	// divided by the interval's wall time, in percent of one CPU (two busy
	// threads read about 200). The first sample measures from the start.
	CPUPercent float64 `json:"cpu_percent"`
	// Memory is the memory in use at this instant, in bytes; valid only
	// when MemoryValid.
	Memory      uint64 `json:"memory_bytes"`
	MemoryValid bool   `json:"memory_valid"`
}
