// Package proctree measures an execution's process tree from the proc
// filesystem and from rusage, for hosts without a usable cgroup and for the
// memory metrics a hybrid host (cgroup v2 mounted without controllers)
// lacks. It is the implementation behind the public package procfallback,
// with the wiring cgroupmon needs (the Reaper's protection of main pids,
// rusage of reaped processes, the start clock) exported to this module
// only.
//
// A Tree tracks the processes of one execution: found by walking
// /proc/PID/task/*/children from the main process (or listed by the caller,
// e.g. from a cgroup v2 cgroup.procs), sampled by pread on descriptors held
// open, and accounted at the end from the rusage of every reaped process and
// the VmHWM of live ones. A Reaper makes this process a child subreaper so
// that orphaned descendants come back to it to be measured, killed and
// reaped.
//
// Every number a Tree returns carries its source (procfs, rusage or sampled)
// or the reason it could not be measured.
package proctree

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/cgmon/cgmon/internal/errdefs"
	"github.com/cgmon/cgmon/metrics"
)

// DefaultRoot is where the proc filesystem is usually mounted.
const DefaultRoot = "/proc"

// The sentinel errors of package errdefs, which procfallback and
// cgroupmon export.
var (
	ErrNotSupported = errdefs.ErrNotSupported
	ErrUnavailable  = errdefs.ErrUnavailable
	ErrClosed       = errdefs.ErrClosed
)

// FS is a proc filesystem mounted at a root (default "/proc").
type FS struct {
	root string
	// self is the pid that root/self names: this process on a real /proc,
	// whatever the fixture says on a fake one.
	self int
	// pageSize is the size of a memory page, in bytes.
	pageSize uint64
}

// Root returns the directory the FS reads.
func (fs FS) Root() string { return fs.root }

// Self returns the pid that root/self names (this process on a real /proc).
func (fs FS) Self() int { return fs.self }

// TreeOptions tune a Tree. The zero value walks /proc from the main pid.
type TreeOptions struct {
	// Members, when non-nil, lists the execution's live pids (e.g. read
	// from a cgroup v2 cgroup.procs) and replaces walking /proc from the
	// main pid; it appends to dst. Every pid it returns is a member.
	Members func(dst []int) ([]int, error)
	// Marker, when not empty, is an environment entry "KEY=VALUE" that the
	// caller put in the command's environment (see NewMarker). A process
	// re-parented to this process (an orphan the walk from the main pid
	// can no longer reach) whose environment holds it joins the tree.
	// Without a Marker, orphans join only when they share the main
	// process's process group or the session of a known member (other
	// than this process's own). Ignored when Members is set.
	Marker string
	// StartTicks, when not 0 and Members is set, is a time in clock ticks
	// since boot (CLOCK_BOOTTIME, as /proc/PID/stat's starttime) taken
	// just before the main process was started; see BootTicks. NewTree
	// then takes it as the main process's start and does not read the
	// main process now: the first Sample finds it through Members, and a
	// run that ends before that costs no /proc read at all.
	StartTicks uint64
}

// TreeSample is one reading of a Tree.
type TreeSample struct {
	// RSS is the resident set size summed over live processes, in bytes.
	RSS uint64
	// CPU is the CPU time (user + system) of the live processes plus that
	// of the processes that have exited (their rusage when reaped by this
	// process, else their last reading while their parent was alive).
	CPU time.Duration
	// Procs is the number of live (not zombie) processes.
	Procs int
}

// Totals is the final account of a Tree. Every field is a Measure with its
// source, or absent with the reason.
type Totals struct {
	// CPUUser, CPUSystem and CPUTotal are CPU times: the rusage of
	// processes reaped by this process (which includes what they reaped
	// themselves) plus the last reading of the others. The sources are
	// metrics.SourceRusageUTime, SourceRusageSTime and SourceRusage (their
	// sum) when rusage covers everything, else
	// metrics.SourceSampledProcCPU.
	CPUUser   metrics.Measure[time.Duration]
	CPUSystem metrics.Measure[time.Duration]
	CPUTotal  metrics.Measure[time.Duration]
	// MaxRSS is the highest peak resident set size of any single process:
	// the maximum of reaped ru_maxrss (metrics.SourceRusageMaxRSS) and live
	// VmHWM (metrics.SourceProcVmHWM), in bytes. The source names the
	// larger one.
	MaxRSS metrics.Measure[uint64]
	// PeakRSS is the highest sampled RSS summed over the tree, in bytes
	// (metrics.SourceSampledProcRSS).
	PeakRSS metrics.Measure[uint64]
	// Procs is the highest number of live processes seen at once
	// (metrics.SourceSampledProcTree).
	Procs metrics.Measure[uint64]
	// IORead and IOWrite are bytes read from and written to storage
	// (read_bytes, write_bytes of /proc/PID/io; metrics.SourceProcIO), as
	// last read: a lower bound for processes that exited between readings.
	IORead  metrics.Measure[uint64]
	IOWrite metrics.Measure[uint64]
}

// MarkerKey is the environment variable that NewMarker's entries set.
const MarkerKey = "CGMON_TREE"

// NewMarker returns a fresh environment entry "CGMON_TREE=<32 hex digits>"
// for TreeOptions.Marker; the caller appends it to the command's
// environment.
func NewMarker() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return MarkerKey + "=" + hex.EncodeToString(b[:])
}

func unavailableDur(why string) metrics.Measure[time.Duration] {
	return metrics.Unavailable[time.Duration](why)
}

func unavailableU64(why string) metrics.Measure[uint64] {
	return metrics.Unavailable[uint64](why)
}
