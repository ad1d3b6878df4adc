package cgroupmon

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/internal/proctree"
	"github.com/cgmon/cgmon/metrics"
)

// run is the state of one execution, from its start (Monitor.start, or
// Attach) to its record. The fields under mu are changed only by the
// methods in this file; the others are set before the run is shared with
// the sampler and the waiting goroutine, and only read after.
type run struct {
	spec      Spec
	sources   sourceTable   // what each metric is read from
	leaf      *leaf         // nil for the procfs backend
	cmd       *exec.Cmd     // nil for an attached target
	pipes     *pipes        // copies of non-file standard streams
	start     time.Time     // the fork, or the start of the watch
	bootTicks uint64        // clock ticks since boot just before the fork
	gated     bool          // started stopped and moved, not with CLONE_INTO_CGROUP
	marker    string        // the environment entry that tells its processes apart, or ""
	procRoot  string        // the proc filesystem (Options.ProcRoot)
	attached  bool          // Attach: not cgmon's process, never written to or killed
	targetPID int           // the pid an attached watch follows, 0 for a cgroup
	cpuBase   time.Duration // CPU already used when an attached watch began
	done      chan struct{} // closed once the record is final
	stop      chan struct{} // closed to stop watching an attached target
	onceKill  sync.Once     // the first reason to kill wins
	onceStop  sync.Once     // stop is closed once

	mu       sync.Mutex     // guards what follows, and the reads of leaf and tree
	tree     *proctree.Tree // the procfs backend, or a hybrid leaf's memory source
	killedAs metrics.Status // timeout or canceled, when cgmon killed it
	killed   map[int]bool   // the pids cgmon's kills were sent to, nil until one is
	escaped  int            // processes found outside the leaf and killed
	outside  []string       // why a metric is a lower bound: what ran outside the leaf
	ended    bool           // no process is left: the sampler skips the run
	finished bool           // the record is final
	seen     sampled        // what the sampler has seen
	dropped  droppedMaxRSS  // the main process's maxrss, not used
	mainRSS  mainMaxRSS     // the main process's maxrss, where a leaf gives the memory
	pressure pressureStart  // the PSI totals when the run began
	capacity cpuCapacity    // the CPU time the execution can use, for the peak
	late     time.Duration  // how late the last check of the CPU-time limit ended, kill included
	rec      metrics.Execution
	err      error
}

// sampled is what the sampler has learnt of a run.
type sampled struct {
	lastT    time.Time     // when the last counted reading was taken
	lastCPU  time.Duration // CPU time at lastT
	n        int           // readings that measured CPU
	peakPct  float64
	memStart uint64
	memPeak  uint64
	memOK    bool
	pidsPeak uint64
	anonPeak uint64 // memory.stat anon, the highest read
	anonOK   bool
	// dropped counts readings whose CPU time rose more than the
	// execution's CPUs can give over the wall time since the last one.
	dropped  int
	err      error // the first reading error
	timeline []metrics.Sample
}

// droppedMaxRSS is the main process's rusage maxrss when it was not used
// because it does not exceed cgmon's own peak (see selfPeak), in KiB.
type droppedMaxRSS struct {
	set          bool
	maxrss, self int64
}

// mainMaxRSS is the main process's rusage maxrss (of it and the
// descendants it waited for), in bytes, when it exceeds cgmon's own peak.
type mainMaxRSS struct {
	set   bool
	bytes uint64
}

// pressureStart holds the "some" totals of the leaf's pressure files, in
// microseconds, read when the run began.
type pressureStart struct {
	total [numPressure]uint64
	ok    [numPressure]bool
}

// newRun returns the state of an execution of s that has not started.
func newRun(s Spec, sources sourceTable, backend metrics.Backend) *run {
	return &run{
		spec: s, sources: sources, done: make(chan struct{}),
		rec: metrics.Execution{
			ID: s.ID, Language: s.Language, CodeLength: s.CodeLength,
			Command: append([]string(nil), s.Command...), ExitCode: -1,
			Backend: backend,
		},
	}
}

// limitsInForce records the limits in force, as read back from the leaf.
func (r *run) limitsInForce(l *specs.LinuxResources) {
	r.mu.Lock()
	r.rec.Limits = l
	r.mu.Unlock()
}

// reading is one sample of a run's counters.
type reading struct {
	at      time.Time // when the CPU time was read
	cpu     time.Duration
	mem     uint64
	procs   uint64
	anon    uint64
	memOK   bool
	procsOK bool
	anonOK  bool
}

// minPercentInterval is the shortest wall time a CPU percentage is taken
// over.
const minPercentInterval = 10 * time.Millisecond

// addLocked accounts a reading of the counters taken at now.
func (r *run) addLocked(now time.Time, x reading) {
	s := &r.seen
	if x.memOK {
		if !s.memOK {
			s.memStart, s.memOK = x.mem, true
		}
		s.memPeak = max(s.memPeak, x.mem)
	}
	if x.procsOK {
		s.pidsPeak = max(s.pidsPeak, x.procs)
	}
	if x.anonOK {
		s.anonPeak, s.anonOK = max(s.anonPeak, x.anon), true
	}
	dt := now.Sub(s.lastT)
	if dt < minPercentInterval {
		// Too soon after the last reading (UpdateMonitoring): a
		// percentage over so short a wall time is noise.
		return
	}
	pct := float64(x.cpu-s.lastCPU) / float64(dt) * 100
	if pct < 0 {
		pct = 0 // a process that left the tree took its CPU with it
	}
	if !r.capacity.allows(x.cpu-s.lastCPU, dt) {
		// The clock and the counter disagree (cpu.stat charges a running
		// task's time at the scheduler's tick, so a reading can lag):
		// the interval is not reported, and its CPU time counts in the
		// next one's.
		s.dropped++
		return
	}
	s.n++
	if pct > s.peakPct || s.n == 1 {
		s.peakPct = pct
	}
	s.lastT, s.lastCPU = now, x.cpu
	if r.spec.KeepSamples {
		s.timeline = append(s.timeline, metrics.Sample{
			Elapsed: now.Sub(r.start), CPU: x.cpu, CPUPercent: pct, Memory: x.mem, MemoryValid: x.memOK,
		})
	}
}

// noteErrLocked keeps the first error of a reading.
func (r *run) noteErrLocked(err error) {
	if r.seen.err == nil {
		r.seen.err = err
	}
}

// started records when the command started, and the CPU time already
// used then (an attached target's).
func (r *run) started(at time.Time, cpu time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.start, r.rec.StartedAt = at, at
	r.seen.lastT, r.seen.lastCPU, r.cpuBase = at, cpu, cpu
}

// setCapacity records the CPU time the execution can use.
func (r *run) setCapacity(c cpuCapacity) {
	r.mu.Lock()
	r.capacity = c
	r.mu.Unlock()
}

// pressureAtStart reads the leaf's pressure totals as the run begins, for
// the metrics the source table takes from them; a file that cannot be
// read leaves its metric without a start, and so unavailable.
func (r *run) pressureAtStart() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, m := range pressureMetrics {
		if r.sources.is(m, pressureSources[i]) {
			v, err := r.leaf.readPressure(i)
			r.pressure.total[i], r.pressure.ok[i] = v, err == nil
		}
	}
}

// mainRusage records the main process's maxrss, in bytes, as one the
// program used (it exceeds cgmon's own peak).
func (r *run) mainRusage(maxrss uint64) {
	r.mu.Lock()
	r.mainRSS = mainMaxRSS{set: true, bytes: maxrss}
	r.mu.Unlock()
}

// useTree makes t the run's procfs tree.
func (r *run) useTree(t *proctree.Tree) {
	r.mu.Lock()
	r.tree = t
	r.mu.Unlock()
}

// kill kills every process of the execution once; the first reason wins.
// For an attached target it only stops the watch.
func (r *run) kill(why metrics.Status) {
	if r.attached {
		r.onceStop.Do(func() { close(r.stop) })
		return
	}
	r.onceKill.Do(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.ended {
			return
		}
		r.killedAs = why
		_ = r.killTreeLocked()
	})
}

// stoppedWatching records that the watch of an attached target stopped
// before the target ended.
func (r *run) stoppedWatching() {
	r.mu.Lock()
	r.killedAs = metrics.StatusCanceled
	r.mu.Unlock()
}

// killTreeLocked sends SIGKILL to every process of the execution, and
// notes which. A main process found alive outside the leaf (it moved
// itself out) is killed too, through exec.Cmd's pidfd, and counted as
// escaped.
func (r *run) killTreeLocked() error {
	var pids []int
	var err error
	if r.leaf != nil {
		pids, err = r.leaf.kill()
	} else {
		// Kill walks the tree again first, so it finds a child the
		// last sample had not seen.
		_, err = r.tree.Kill(unix.SIGKILL)
		pids = r.tree.Killed(nil)
	}
	if r.killed == nil {
		r.killed = map[int]bool{}
	}
	for _, p := range pids {
		r.killed[p] = true
	}
	if r.leaf != nil && r.cmd != nil && r.cmd.Process != nil && !slices.Contains(pids, r.cmd.Process.Pid) {
		r.killMainOutsideLocked()
	}
	return err
}

// killMainOutsideLocked kills the main process when it lives outside the
// leaf. exec.Cmd has not waited for it (Signal(0) succeeds), so its pid
// still names it.
func (r *run) killMainOutsideLocked() {
	p := r.cmd.Process
	if p.Signal(syscall.Signal(0)) != nil {
		return // waited for: it ended by itself
	}
	b, err := os.ReadFile(filepath.Join(r.procRoot, strconv.Itoa(p.Pid), "stat"))
	if err != nil {
		return
	}
	if i := bytes.LastIndexByte(b, ')'); i < 0 || len(b) < i+3 || b[i+2] == 'Z' {
		return // exited; exec.Cmd is about to wait for it
	}
	if p.Signal(syscall.SIGKILL) == nil {
		r.escaped++
		r.outside = append(r.outside, "the main process had moved itself out of the execution's cgroup")
	}
}

// leftoversLocked is how many processes other than the main one cgmon's
// kills were sent to.
func (r *run) leftoversLocked() int {
	n := len(r.killed)
	if r.cmd != nil && r.cmd.Process != nil && r.killed[r.cmd.Process.Pid] {
		n--
	}
	return n
}

// escapedFound records processes found outside the leaf and killed, in
// the cgroups named.
func (r *run) escapedFound(n int, cgroups []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.escaped += n
	r.outside = append(r.outside, fmt.Sprintf("%d process(es) had moved out of the execution's cgroup (into %s)", n, strings.Join(cgroups, ", ")))
}

// checkedLate records that the last check of the CPU-time limit ended
// (when it killed, with the kill done) d after it was due. That of the
// check that killed is the sampler's delay of the bound
// Spec.CPUTimeLimit states.
func (r *run) checkedLate(d time.Duration) {
	r.mu.Lock()
	r.late = d
	r.mu.Unlock()
}

// dropMaxRSS records that the main process's maxrss (KiB) was not used, as
// it does not exceed cgmon's own peak (KiB).
func (r *run) dropMaxRSS(maxrss, self int64) {
	r.mu.Lock()
	r.dropped = droppedMaxRSS{set: true, maxrss: maxrss, self: self}
	r.mu.Unlock()
}

// failedToStart makes the final record of a command that could not be
// executed; cause says why.
func (r *run) failedToStart(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.rec.Status, r.rec.Reason = metrics.StatusFailedToStart, cause.Error()
	r.rec.StartedAt, r.rec.EndedAt = now, now
	r.rec.Usage = unavailableUsage("the command did not start")
	r.err = fmt.Errorf("%w: %w", ErrStart, cause)
	r.ended, r.finished = true, true
}

// endLocked stops the sampling of a run whose processes are all gone: a
// tick already under way when the sampler let go of the run must not read
// (and so reopen) the leaf's files after the final read.
func (r *run) endLocked() { r.ended = true }

// publish makes rec the final record, with err the error Wait returns
// (the first one kept).
func (r *run) publish(rec metrics.Execution, err error) {
	r.mu.Lock()
	r.ended, r.finished = true, true
	r.rec = rec
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}

// wake tells whoever waits that the record is final.
func (r *run) wake() { close(r.done) }

// result returns the final record; call it once done is closed.
func (r *run) result() (metrics.Execution, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec, r.err
}

// unavailableUsage is a Usage whose every metric is absent for one reason.
func unavailableUsage(reason string) metrics.Usage {
	return metrics.Usage{
		WallTime:          metrics.Unavailable[time.Duration](reason),
		CPUUser:           metrics.Unavailable[time.Duration](reason),
		CPUSystem:         metrics.Unavailable[time.Duration](reason),
		CPUTotal:          metrics.Unavailable[time.Duration](reason),
		CPUSamples:        metrics.Unavailable[int](reason),
		CPUAveragePercent: metrics.Unavailable[float64](reason),
		CPUPeakPercent:    metrics.Unavailable[float64](reason),
		MemoryStart:       metrics.Unavailable[uint64](reason),
		MemoryPeak:        metrics.Unavailable[uint64](reason),
		PidsPeak:          metrics.Unavailable[uint64](reason),
		IORead:            metrics.Unavailable[uint64](reason),
		IOWrite:           metrics.Unavailable[uint64](reason),
		CPUThrottled:      metrics.Unavailable[time.Duration](reason),
		CPUSamplesDropped: metrics.Unavailable[int](reason),
		CPUWait:           metrics.Unavailable[time.Duration](reason),
		MemoryWait:        metrics.Unavailable[time.Duration](reason),
		IOWait:            metrics.Unavailable[time.Duration](reason),
		MemoryProcessPeak: metrics.Unavailable[uint64](reason),
		MemoryAnonPeak:    metrics.Unavailable[uint64](reason),
		MemoryFileAtEnd:   metrics.Unavailable[uint64](reason),
		MemoryShmemAtEnd:  metrics.Unavailable[uint64](reason),
		MemoryKernelAtEnd: metrics.Unavailable[uint64](reason),
	}
}

const noSample = "the execution ended before the first sample"

// noneAlive says why the procfs tree gave nothing: no sample was taken, or
// none found a process of the execution alive.
func (s *sampled) noneAlive() string {
	if s.n == 0 && s.dropped == 0 {
		return noSample
	}
	return fmt.Sprintf("none of the %d samples found a process of the execution alive", s.n+s.dropped)
}

// never says why a sampled quantity has no value: no sample was taken, or
// the ones taken could not read it.
func (s *sampled) never() string {
	if s.n == 0 && s.dropped == 0 {
		return noSample
	}
	why := fmt.Sprintf("none of the %d samples could read it", s.n+s.dropped)
	if s.err != nil {
		why += " (first error: " + s.err.Error() + ")"
	}
	return why
}

// sampledUsageLocked fills the metrics that only the sampler knows.
func (r *run) sampledUsageLocked(u *metrics.Usage) {
	s := &r.seen
	u.CPUSamples = metrics.Measured(s.n, metrics.SourceSampler)
	u.CPUSamplesDropped = metrics.Measured(s.dropped, metrics.SourceSampler)
	switch {
	case s.n > 0:
		u.CPUPeakPercent = metrics.Measured(s.peakPct, metrics.SourceSampler)
	case s.dropped > 0:
		u.CPUPeakPercent = metrics.Unavailable[float64](fmt.Sprintf("each of the %d samples showed more CPU time than the execution's CPUs can give over its interval, and was dropped", s.dropped))
	default:
		u.CPUPeakPercent = metrics.Unavailable[float64](noSample)
	}
	if src := r.sources[metrics.MetricMemoryStart].first(); s.memOK && src != "" {
		u.MemoryStart = metrics.Measured(s.memStart, src)
	} else if src == "" {
		u.MemoryStart = metrics.Unavailable[uint64](r.sources.reason(metrics.MetricMemoryStart))
	} else {
		u.MemoryStart = metrics.Unavailable[uint64](s.never())
	}
}

// liveUsage is the snapshot a Handle's Usage returns while the execution
// runs: what the sampler has seen so far.
func (r *run) liveUsage() metrics.Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return r.rec.Usage
	}
	u := unavailableUsage("not known until the execution ends")
	u.WallTime = metrics.Measured(time.Since(r.start), metrics.SourceMonotonic)
	r.sampledUsageLocked(&u)
	s := &r.seen
	if src := r.sources[metrics.MetricCPUTotal].first(); s.n > 0 && src != "" {
		if r.leaf == nil {
			src = metrics.SourceSampledProcCPU // live: read from /proc, not yet rusage
		}
		u.CPUTotal = metrics.Measured(s.lastCPU, src)
		if el := s.lastT.Sub(r.start); el > 0 {
			u.CPUAveragePercent = metrics.Measured(float64(s.lastCPU-r.cpuBase)/float64(el)*100, src)
		}
	}
	if s.memOK {
		u.MemoryPeak = metrics.Measured(s.memPeak, u.MemoryStart.Source())
	}
	return u
}
