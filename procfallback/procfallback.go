// Package procfallback measures a process tree from the proc filesystem
// and from rusage, for programs that run where no cgroup can be had: a
// rootless host without a delegated cgroup, a cgroup v1 host, a container
// with a read-only cgroup mount. It is what cgroupmon falls back to, and it
// can be used on its own to measure a process that the caller started:
//
//	cmd := exec.Command("make", "-j4")
//	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so Kill can signal the group
//	if err := cmd.Start(); err != nil { ... }
//	fs, err := procfallback.NewFS("")
//	if err != nil { ... }
//	tree := fs.NewTree(cmd.Process.Pid, procfallback.TreeOptions{})
//	defer tree.Close()
//	// sample while it runs (e.g. every 100 ms): the RSS peak and the
//	// descendants are only seen by sampling
//	s, err := tree.Sample()
//	...
//	_ = cmd.Wait()
//	tree.Exited(cmd.ProcessState) // the main process's own rusage
//	totals := tree.Totals()
//
// The tree is found by walking /proc/PID/task/*/children from the main
// process (or from a list the caller gives, TreeOptions.Members), sampled
// by pread on descriptors held open, and accounted at the end from the
// rusage of the reaped main process, the last reading of the others and
// the VmHWM of live ones. Every number in Totals carries its source or the
// reason it could not be measured; numbers from sampling are lower bounds
// and say so in their source ("sampled:...").
package procfallback

import (
	"os"
	"syscall"
	"time"

	"github.com/cgmon/cgmon/internal/errdefs"
	"github.com/cgmon/cgmon/internal/proctree"
	"github.com/cgmon/cgmon/metrics"
)

// Errors a caller can test for with errors.Is. They are the same values as
// cgroupmon's errors of the same names.
var (
	// ErrMalformed is wrapped when a proc file's content is not what the
	// kernel writes.
	ErrMalformed = errdefs.ErrMalformed
	// ErrUnavailable is wrapped when a proc file or kernel feature is
	// missing on this host.
	ErrUnavailable = errdefs.ErrUnavailable
	// ErrNotSupported is returned outside Linux.
	ErrNotSupported = errdefs.ErrNotSupported
	// ErrClosed is returned by a Tree's methods after Close.
	ErrClosed = errdefs.ErrClosed
)

// DefaultRoot is where the proc filesystem is usually mounted.
const DefaultRoot = "/proc"

// FS is a proc filesystem mounted at a root.
type FS struct{ fs proctree.FS }

// NewFS returns the proc filesystem mounted at root; empty root means
// DefaultRoot. It fails when root is not a directory or root/self does not
// name a pid (ErrUnavailable), and outside Linux (ErrNotSupported).
func NewFS(root string) (FS, error) {
	fs, err := proctree.NewFS(root)
	return FS{fs}, err
}

// Root returns the directory the FS reads.
func (fs FS) Root() string { return fs.fs.Root() }

// TreeOptions tune a Tree. The zero value walks /proc from the main pid.
type TreeOptions struct {
	// Members, when non-nil, lists the tree's live pids (for instance read
	// from a cgroup's cgroup.procs) instead of walking /proc from the main
	// pid; it appends to dst. Every pid it returns is a member.
	Members func(dst []int) ([]int, error)
}

// Tree tracks the processes of one program: its main process and every
// descendant seen while sampling. Its methods are safe for concurrent use.
type Tree struct{ t *proctree.Tree }

// NewTree starts tracking the process tree whose main process is pid. Put
// the main process in a process group of its own (SysProcAttr.Setpgid) so
// that Kill also reaches descendants that were never sampled.
func (fs FS) NewTree(pid int, opts TreeOptions) *Tree {
	return &Tree{fs.fs.NewTree(pid, proctree.TreeOptions{Members: opts.Members})}
}

// TreeSample is one reading of a Tree.
type TreeSample struct {
	// RSS is the resident set size summed over live processes, in bytes.
	RSS uint64
	// CPU is the CPU time (user + system) of the live processes plus that
	// of the processes that have exited since tracking began.
	CPU time.Duration
	// Procs is the number of live (not zombie) processes.
	Procs int
}

// Sample reads every live process of the tree now, finding new
// descendants, and returns the sums.
func (t *Tree) Sample() (TreeSample, error) {
	s, err := t.t.Sample()
	return TreeSample{RSS: s.RSS, CPU: s.CPU, Procs: s.Procs}, err
}

// Snapshot reads the peak RSS (VmHWM) of every live process now; call it
// just before the processes are killed, whose peaks are gone after.
func (t *Tree) Snapshot() error { return t.t.Snapshot() }

// Pids appends the pids of the tree's live processes to dst.
func (t *Tree) Pids(dst []int) []int { return t.t.Pids(dst) }

// Kill sends sig to the main process's process group and to every tracked
// live process, never to a pid reused by another process. For SIGKILL it
// first stops the tree so that nothing forks away. It returns how many
// tracked processes were signalled.
func (t *Tree) Kill(sig syscall.Signal) (int, error) { return t.t.Kill(sig) }

// Exited accounts the main process once the caller has waited for it
// (exec.Cmd's ProcessState): the tree is read once more, so that what
// ended since the last sample counts as ended, and the main process's
// rusage, which includes the children it waited for, replaces its last
// reading.
func (t *Tree) Exited(ps *os.ProcessState) error {
	if ps == nil {
		return nil
	}
	_, err := t.t.Sample()
	t.t.Reaped(ps.Pid(), proctree.RusageOf(ps))
	return err
}

// Totals is the final account of a Tree. Every field is present with its
// source, or absent with the reason.
type Totals struct {
	// CPUUser, CPUSystem and CPUTotal are CPU times: rusage of the reaped
	// main process plus the last reading of the others; the sources are
	// metrics.SourceRusageUTime, SourceRusageSTime and SourceRusage (their
	// sum) when rusage covers everything, else
	// metrics.SourceSampledProcCPU (a lower bound).
	CPUUser, CPUSystem, CPUTotal metrics.Measure[time.Duration]
	// MaxRSS is the highest peak resident set size of any single process,
	// in bytes: rusage maxrss of the reaped main process or a live
	// process's VmHWM, whichever is larger (the source names it).
	MaxRSS metrics.Measure[uint64]
	// PeakRSS is the highest sampled RSS summed over the tree, in bytes.
	PeakRSS metrics.Measure[uint64]
	// Procs is the highest number of live processes seen at once.
	Procs metrics.Measure[uint64]
	// IORead and IOWrite are bytes read from and written to storage
	// (/proc/PID/io), as last read: a lower bound.
	IORead, IOWrite metrics.Measure[uint64]
}

// Totals returns the final account; call it once every process has exited
// and the main one is accounted (Exited).
func (t *Tree) Totals() Totals {
	x := t.t.Totals()
	return Totals{
		CPUUser: x.CPUUser, CPUSystem: x.CPUSystem, CPUTotal: x.CPUTotal,
		MaxRSS: x.MaxRSS, PeakRSS: x.PeakRSS, Procs: x.Procs,
		IORead: x.IORead, IOWrite: x.IOWrite,
	}
}

// Close releases every descriptor the tree holds.
func (t *Tree) Close() error { return t.t.Close() }
