package cgroupmon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
	"github.com/cgmon/cgmon/procfallback"
)

// Handle is a started execution.
type Handle struct{ r *run }

// ID returns the execution's id.
func (h *Handle) ID() string { return h.r.rec.ID }

// Pid returns the main process's pid.
func (h *Handle) Pid() int { return h.r.cmd.Process.Pid }

// CgroupPath returns the execution's cgroup directory, empty for procfs.
// Once the execution has ended and its record is final, the directory is
// empty and is removed at the sampler's next tick, or by Monitor.Close.
func (h *Handle) CgroupPath() string {
	if h.r.leaf == nil {
		return ""
	}
	return h.r.leaf.path
}

// Usage returns a live snapshot of what the execution has used so far, from
// the sampler (the final record reads the kernel's counters instead).
func (h *Handle) Usage() metrics.Usage { return h.r.liveUsage() }

// Wait waits for the execution to end and returns its record; the error is
// non-nil only for a failed start (ErrStart) or when measuring failed.
func (h *Handle) Wait() (metrics.Execution, error) {
	<-h.r.done
	return h.r.rec, h.r.err
}

// Done is closed when the execution has ended and its record is final.
func (h *Handle) Done() <-chan struct{} { return h.r.done }

// Kill kills every process of the execution now; it ends with status
// canceled. Killing an ended execution does nothing. For an attached target
// it only stops watching: Attach never kills.
func (h *Handle) Kill() error {
	h.r.killAll(metrics.StatusCanceled)
	return nil
}

// run is the state of one execution.
type run struct {
	m     *Monitor
	spec  Spec
	cmd   *exec.Cmd
	leaf  *leaf              // nil for the procfs backend
	tree  *procfallback.Tree // nil for a cgroup2 backend with memory
	pipes *pipes
	done  chan struct{}

	start     time.Time
	waiting   bool          // started: someone must call wait
	bootTicks uint64        // clock ticks since boot just before the start
	gated     bool          // started stopped and moved, not with CLONE_INTO_CGROUP
	attached  bool          // Attach: not cgmon's process, never written to or killed
	cpuBase   time.Duration // CPU already used when an attached watch began
	// maxrssDropped is set when the main process's rusage maxrss was not
	// used, with that maxrss and cgmon's own peak, in KiB, to say why.
	maxrssDropped struct {
		set          bool
		maxrss, self int64
	}
	stopOnce sync.Once
	stopped  chan struct{} // closed to stop watching an attached target
	killOnce sync.Once
	killedAs metrics.Status // timeout or canceled; set in killOnce

	mu       sync.Mutex // guards everything below, leaf and tree reads
	finished bool
	lastT    time.Time
	lastCPU  time.Duration
	samples  int
	peakPct  float64
	memStart uint64
	memPeak  uint64
	memOK    bool
	pidsPeak uint64
	tickErr  error
	timeline []metrics.Sample

	rec metrics.Execution
	err error
}

// Start validates s, creates the execution's cgroup with its limits, and
// starts the command inside it. It returns an error, with nothing left
// behind, when the spec is invalid, a limit cannot be applied or the cgroup
// cannot be made. A command that cannot be executed is not an error here:
// Wait reports it (status failed_to_start, ErrStart).
func (m *Monitor) Start(ctx context.Context, s Spec) (*Handle, error) {
	r, err := m.start(ctx, s)
	if err != nil {
		return nil, err
	}
	if r.waiting {
		go r.wait()
	}
	return &Handle{r}, nil
}

// start does Start's work except waiting. When it returns a run with
// waiting set, the caller must call r.wait: in a goroutine (Start) or in
// its own (Run, which saves a goroutine and a hand-off per execution).
func (m *Monitor) start(ctx context.Context, s Spec) (_ *run, err error) {
	if s.ID == "" {
		s.ID = "exec-" + strconv.FormatUint(m.seq.Add(1), 10)
	}
	if err := validateID(s.ID); err != nil {
		return nil, err
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return nil, fmt.Errorf("%w: empty command", ErrInvalidSpec)
	}
	if s.Timeout < 0 {
		return nil, fmt.Errorf("%w: negative timeout %v", ErrInvalidSpec, s.Timeout)
	}
	if err := m.CheckLimits(s.Limits); err != nil {
		return nil, err
	}
	res, _ := toResources(s.Limits) // checked above

	r := &run{m: m, spec: s, done: make(chan struct{})}
	r.rec = metrics.Execution{
		ID: s.ID, Language: s.Language, CodeLength: s.CodeLength,
		Command: append([]string(nil), s.Command...), ExitCode: -1,
		Backend: m.probe.Backend, Limits: s.Limits,
	}
	if err := m.track(r); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			m.untrack(r)
		}
	}()

	if m.root != "" {
		name := fmt.Sprintf("%s-%d-%d", leafName(s.ID), os.Getpid(), m.seq.Add(1))
		hasMem := m.hasController("memory")
		r.leaf, err = createLeaf(m.root, name, res, hasMem, m.hasController("pids"), m.hasController("io"))
		if errors.Is(err, fs.ErrNotExist) && (m.createdRoot || m.sharedRoot) {
			// Another monitor sharing the root closed and removed it,
			// empty, between New and now (cgmon run started in parallel).
			if err = m.remakeRoot(); err == nil {
				r.leaf, err = createLeaf(m.root, name, res, hasMem, m.hasController("pids"), m.hasController("io"))
			}
		}
		if err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				_ = r.leaf.remove()
			}
		}()
	}

	cmd := exec.Command(s.Command[0], s.Command[1:]...)
	cmd.Env, cmd.Dir = s.Env, s.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.Stdin, s.Stdout, s.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	var marker string
	if r.leaf == nil {
		// Without a cgroup, the process group and an environment marker
		// are how the tree is found and killed (see procfallback).
		cmd.SysProcAttr.Setpgid = true
		marker = procfallback.NewMarker()
		env := s.Env
		if env == nil {
			env = os.Environ()
		}
		cmd.Env = append(env[:len(env):len(env)], marker)
	}
	r.cmd = cmd
	if r.pipes, err = plumb(cmd); err != nil {
		return nil, fmt.Errorf("%w: creating pipes: %w", errCgmon, err)
	}

	r.bootTicks = procfallback.BootTicks() // before the fork: see TreeOptions.StartTicks
	startErr := r.startCmd()
	if startErr != nil {
		r.pipes.abort()
	} else {
		r.pipes.started()
	}
	if startErr != nil {
		if errors.Is(startErr, errCgmon) {
			return nil, startErr
		}
		// The command could not be executed: a record, not a cgmon failure.
		now := time.Now()
		r.rec.Status, r.rec.Reason = metrics.StatusFailedToStart, startErr.Error()
		r.rec.StartedAt, r.rec.EndedAt = now, now
		r.rec.Usage = unavailableUsage("the command did not start")
		r.err = fmt.Errorf("%w: %w", ErrStart, startErr)
		if r.leaf != nil {
			_ = r.leaf.remove()
		}
		m.untrack(r)
		m.record(r.rec)
		close(r.done)
		return r, nil
	}
	r.rec.StartedAt = r.start
	if r.leaf == nil {
		// The tree is the procfs backend itself (CPU, kill): it must
		// exist before Start returns.
		r.tree = m.procfs.NewTree(cmd.Process.Pid, procfallback.TreeOptions{Marker: marker})
		if m.reaper != nil {
			m.reaper.Register(r.tree)
		}
	}
	r.lastT = r.start
	m.sampler.add(r)
	if ctx.Done() != nil || s.Timeout > 0 {
		go r.watch(ctx)
	}
	r.waiting = true
	return r, nil
}

// errCgmon marks a start failure that is cgmon's, not the command's.
var errCgmon = errors.New("cgmon")

// startCmd starts the command inside the leaf: directly with
// CLONE_INTO_CGROUP, or gated (stopped at exec under ptrace, moved, then
// released) where the kernel refuses that.
func (r *run) startCmd() error {
	m := r.m
	if m.reaper != nil {
		done := m.reaper.Starting()
		defer done()
	}
	protect := func() {
		if m.reaper != nil {
			m.reaper.Protect(r.cmd.Process.Pid)
		}
	}
	if r.leaf == nil {
		r.start = time.Now()
		if err := r.cmd.Start(); err != nil {
			return err
		}
		protect()
		return nil
	}
	if !m.forceGated {
		r.cmd.SysProcAttr.UseCgroupFD = true
		r.cmd.SysProcAttr.CgroupFD = r.leaf.dir
		r.start = time.Now()
		err := r.cmd.Start()
		if err == nil {
			protect()
			return nil
		}
		if !cloneIntoCgroupRefused(err) || r.cmd.Process != nil {
			return err
		}
		// Start again, gated; exec.Cmd cannot be started twice.
		r.cmd = cloneCmd(r.cmd)
		r.cmd.SysProcAttr.UseCgroupFD = false
	}
	return r.startGated(protect)
}

// cloneIntoCgroupRefused reports whether err is the kernel refusing
// clone3(CLONE_INTO_CGROUP) rather than the command failing to execute.
func cloneIntoCgroupRefused(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case unix.ENOSYS, unix.EINVAL, unix.EOPNOTSUPP, unix.EBUSY:
		return true
	}
	return false
}

func cloneCmd(c *exec.Cmd) *exec.Cmd {
	n := exec.Command(c.Path, c.Args[1:]...)
	n.Args = c.Args
	n.Env, n.Dir = c.Env, c.Dir
	n.Stdin, n.Stdout, n.Stderr = c.Stdin, c.Stdout, c.Stderr
	attr := *c.SysProcAttr
	n.SysProcAttr = &attr
	return n
}

// startGated starts the command traced, so that it stops right after exec
// before running any instruction of its own, moves it into the leaf and
// detaches. ptrace requests must come from the thread that started it.
func (r *run) startGated(protect func()) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r.gated = true
	r.cmd.SysProcAttr.Ptrace = true
	r.start = time.Now()
	if err := r.cmd.Start(); err != nil {
		return err
	}
	protect()
	pid := r.cmd.Process.Pid
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		return fmt.Errorf("%w: gated start: waiting for the stopped child: %v (status %v)", errCgmon, err, ws)
	}
	werr := os.WriteFile(r.leaf.path+"/cgroup.procs", []byte(strconv.Itoa(pid)), 0)
	if werr != nil {
		_ = r.cmd.Process.Kill()
	}
	if err := unix.PtraceDetach(pid); err != nil && werr == nil {
		_ = r.cmd.Process.Kill()
		werr = err
	}
	if werr != nil {
		_ = r.cmd.Wait()
		return fmt.Errorf("%w: gated start into %s: %w", errCgmon, r.leaf.path, werr)
	}
	return nil
}

// watch kills the execution on timeout or when ctx is cancelled.
func (r *run) watch(ctx context.Context) {
	var timeout <-chan time.Time
	if r.spec.Timeout > 0 {
		t := time.NewTimer(r.spec.Timeout - time.Since(r.start))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		r.killAll(metrics.StatusCanceled)
	case <-timeout:
		r.killAll(metrics.StatusTimeout)
	case <-r.done:
	}
}

// killAll kills every process of the execution once; the first reason wins.
func (r *run) killAll(why metrics.Status) {
	if r.attached {
		r.stopOnce.Do(func() { close(r.stopped) }) // watch only: kill nothing
		return
	}
	r.killOnce.Do(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.finished {
			return
		}
		r.killedAs = why
		r.killTreeLocked()
	})
}

// killTreeLocked sends SIGKILL to every process; r.mu is held.
func (r *run) killTreeLocked() (int, error) {
	if r.leaf != nil {
		pids, _ := r.leaf.pids(nil)
		return len(pids), r.leaf.kill(r.m.probe.Features.CgroupKill)
	}
	return r.tree.Kill(unix.SIGKILL)
}

// minPercentInterval is the shortest wall time a CPU percentage is taken
// over.
const minPercentInterval = 10 * time.Millisecond

// tick takes one sample; called by the sampler goroutine.
func (r *run) tick(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return
	}
	var cpu time.Duration
	var mem, procs uint64
	memOK := false
	if r.leaf != nil {
		st, err := r.leaf.readCPU()
		if err != nil {
			r.noteTickErr(err)
			return
		}
		cpu = time.Duration(st.UsageUsec) * time.Microsecond
		if r.leaf.memory {
			if v, err := r.leaf.readMemoryCurrent(); err == nil {
				mem, memOK = v, true
			} else {
				r.noteTickErr(err)
			}
		}
		if r.leaf.pidsCtl {
			if v, err := r.leaf.readPidsCurrent(); err == nil {
				procs = v
			}
		}
	}
	if r.tree != nil {
		if r.attached {
			// Not our child: its VmHWM must be read while it lives.
			_ = r.tree.Snapshot()
		}
		ts, err := r.tree.Sample()
		if err != nil {
			r.noteTickErr(err)
		} else {
			if !memOK {
				mem, memOK = ts.RSS, true
			}
			if r.leaf == nil {
				cpu = ts.CPU
			}
			if r.leaf == nil || !r.leaf.pidsCtl {
				procs = uint64(ts.Procs)
			}
		}
	}
	dt := now.Sub(r.lastT)
	if dt < minPercentInterval {
		// Too soon after the last sample (UpdateMonitoring): a percentage
		// over so short a wall time is noise. Keep memory, skip CPU.
		if memOK {
			r.memPeak = max(r.memPeak, mem)
		}
		return
	}
	pct := float64(cpu-r.lastCPU) / float64(dt) * 100
	if pct < 0 {
		pct = 0 // a process that left the tree takes its CPU with it
	}
	r.samples++
	if pct > r.peakPct || r.samples == 1 {
		r.peakPct = pct
	}
	if memOK {
		if !r.memOK {
			r.memStart, r.memOK = mem, true
		}
		r.memPeak = max(r.memPeak, mem)
	}
	r.pidsPeak = max(r.pidsPeak, procs)
	r.lastT, r.lastCPU = now, cpu
	if r.spec.KeepSamples {
		r.timeline = append(r.timeline, metrics.Sample{
			Elapsed: now.Sub(r.start), CPU: cpu, CPUPercent: pct, Memory: mem, MemoryValid: memOK,
		})
	}
}

func (r *run) noteTickErr(err error) {
	if r.tickErr == nil {
		r.tickErr = err
	}
}

// wait waits for the main process, deals with what is left, reads the final
// counters, publishes the record and hands the emptied cgroup to the
// sampler for removal.
func (r *run) wait() {
	selfPeak := r.prepare()
	waitErr := r.cmd.Wait()
	mainEnd := time.Now()
	if r.m.reaper != nil {
		r.m.reaper.Unprotect(r.cmd.Process.Pid)
	}
	ps := r.cmd.ProcessState
	if ps == nil {
		r.err = fmt.Errorf("waiting for %d: %w", r.cmd.Process.Pid, waitErr)
	}

	var errs []error
	if r.tree != nil && ps != nil {
		if ru := procfallback.RusageOf(ps); ru != nil {
			// exec.Cmd starts the child with CLONE_VM|CLONE_VFORK, and at
			// exec the kernel folds the parent's RSS high-water mark into
			// the child's maxrss: a maxrss not above cgmon's own peak may
			// be cgmon's, so it is not used (CPU times are unaffected).
			if self := selfPeak; uint64(ru.Maxrss)*1024 <= self {
				r.maxrssDropped.set, r.maxrssDropped.maxrss, r.maxrssDropped.self = true, ru.Maxrss, int64(self/1024)
				c := *ru
				c.Maxrss = 0
				ru = &c
			}
			r.mu.Lock()
			r.tree.Reaped(r.cmd.Process.Pid, ru)
			r.mu.Unlock()
		}
	}
	leftovers := 0
	if r.spec.WaitAll {
		if err := r.waitEmpty(); err != nil {
			errs = append(errs, err)
		}
	} else {
		r.mu.Lock()
		n, kerr := r.leftoverCountLocked()
		if n > 0 {
			leftovers = n
			if r.tree != nil {
				_ = r.tree.Snapshot() // their VmHWM, before they go
			}
			if _, err := r.killTreeLocked(); err != nil {
				kerr = errors.Join(kerr, err)
			}
		}
		r.mu.Unlock()
		if kerr != nil {
			errs = append(errs, kerr)
		}
		if err := r.waitEmpty(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := r.pipes.finish(time.Second); err != nil {
		errs = append(errs, err)
	}
	end := time.Now()
	if !r.spec.WaitAll {
		end = mainEnd
	}

	r.m.sampler.remove(r)
	if r.tree != nil && r.m.reaper != nil {
		// Unregister sweeps the last zombies into the tree: before Totals.
		r.m.reaper.Unregister(r.tree)
	}
	r.mu.Lock()
	r.finished = true
	r.finalizeLocked(ps, end, leftovers)
	if r.tree != nil {
		if err := r.tree.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if l := r.leaf; l != nil {
		// Empty now: the sampler removes it at its next tick, off the
		// path between the exit and the record (Close waits for that).
		l.closeFDs()
		if !r.m.sampler.reclaim(l.path) {
			if err := removeDir(l.path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	r.mu.Unlock()
	if len(errs) > 0 && r.err == nil {
		r.err = errors.Join(errs...)
	}
	r.m.untrack(r)
	r.m.record(r.rec)
	close(r.done)
}

// prepare does, while the command runs, the work that would otherwise sit
// between its exit and the record (on 2 CPUs the child's exec and this
// overlap): it opens the leaf's cgroup.events and cpu.stat, read right
// after the exit; it makes the procfs tree of a hybrid run, the memory
// source when the leaf has no memory controller; and it returns cgmon's
// own peak RSS as of the start, which is what a vfork-started child
// inherits at exec.
func (r *run) prepare() (selfPeak uint64) {
	r.mu.Lock()
	if l := r.leaf; l != nil {
		l.closeDir() // only clone3 needed it
		// An error here is met again, and reported, where the file is read.
		_, _ = l.fd(&l.events, "cgroup.events")
		_, _ = l.fd(&l.cpuStat, "cpu.stat")
		if !l.memory {
			r.tree = r.m.procfs.NewTree(r.cmd.Process.Pid, procfallback.TreeOptions{Members: l.pids, StartTicks: r.bootTicks})
		}
	}
	tree := r.tree
	r.mu.Unlock()
	if tree == nil {
		return 0
	}
	if r.leaf != nil && r.m.reaper != nil {
		r.m.reaper.Register(tree)
	}
	return r.m.selfPeak()
}

// leftoverCountLocked counts processes other than the (exited) main one.
func (r *run) leftoverCountLocked() (int, error) {
	if r.leaf != nil {
		if pop, err := r.leaf.populated(); err == nil && !pop {
			return 0, nil // the common case: one read, no cgroup.procs
		}
		pids, err := r.leaf.pids(nil)
		return len(pids), err
	}
	// Refresh the tree first: an orphan appears only once re-parented.
	_, err := r.tree.Sample()
	return len(r.tree.Pids(nil)), err
}

// waitEmpty waits until no process of the execution is left.
func (r *run) waitEmpty() error {
	if r.leaf != nil {
		return r.leaf.waitEmpty(context.Background())
	}
	for {
		r.mu.Lock()
		if _, err := r.tree.Sample(); err != nil {
			r.noteTickErr(err) // one unreadable process must not end the wait
		}
		n := len(r.tree.Pids(nil))
		r.mu.Unlock()
		if n == 0 {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// selfPeak returns this process's own peak RSS (VmHWM), in bytes: what a
// child started with vfork inherits at exec. getrusage(RUSAGE_SELF) gives
// the larger of that and what this process itself inherited at its own
// exec (inheritedRSS), so a value above inheritedRSS is
// the peak itself, one system call; otherwise /proc/self/status tells.
func (m *Monitor) selfPeak() uint64 {
	m.inheritedRSSOnce.Do(func() {
		if g := rusageMaxRSS(); g > selfHWM(m.opts.ProcRoot) {
			m.inheritedRSS = g
		}
	})
	g := rusageMaxRSS()
	if g > m.inheritedRSS {
		return g
	}
	// VmHWM, or when it cannot be read the upper bound g: a threshold
	// too high only leaves a peak unmeasured, one too low would pass
	// cgmon's own memory off as the program's.
	if hwm := m.readHWM(); hwm > 0 {
		return hwm
	}
	return g
}

// readHWM reads VmHWM from the held /proc/self/status; 0 if it cannot.
func (m *Monitor) readHWM() uint64 {
	// Held open: a pread costs a third of opening the file each time.
	m.status.mu.Lock()
	defer m.status.mu.Unlock()
	if m.status.fd < 0 {
		fd, err := unix.Open(m.opts.ProcRoot+"/self/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0
		}
		m.status.fd = fd
	}
	n, err := unix.Pread(m.status.fd, m.status.buf[:], 0)
	if err != nil || n == len(m.status.buf) {
		return selfHWM(m.opts.ProcRoot) // unreadable, or longer than the buffer
	}
	return parseVmHWM(m.status.buf[:n])
}

// rusageMaxRSS is getrusage(RUSAGE_SELF)'s maxrss in bytes; 0 if unknown.
func rusageMaxRSS() uint64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil || ru.Maxrss < 0 {
		return 0
	}
	return uint64(ru.Maxrss) * 1024
}

// selfHWM returns this process's peak RSS (VmHWM), in bytes; 0 if unknown.
// It is what a child started with vfork inherits at exec: the high-water
// mark of this process's memory. getrusage(RUSAGE_SELF) would not do: its
// maxrss also holds what this process inherited when it was itself
// started by vfork (from `go run`, say), which is not in a child's.
func selfHWM(procRoot string) uint64 {
	b, err := readCapped(procRoot + "/self/status")
	if err != nil {
		return 0
	}
	return parseVmHWM(b)
}

// parseVmHWM returns the VmHWM line of a /proc/PID/status, in bytes; 0
// when it is missing or malformed.
func parseVmHWM(b []byte) uint64 {
	const key = "\nVmHWM:"
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0
	}
	b = bytes.TrimLeft(b[i+len(key):], " \t")
	var v uint64
	n := 0
	for ; n < len(b) && b[n] >= '0' && b[n] <= '9'; n++ {
		if n >= 15 { // kibibytes: far beyond any memory
			return 0
		}
		v = v*10 + uint64(b[n]-'0')
	}
	if n == 0 || !bytes.HasPrefix(b[n:], []byte(" kB")) {
		return 0
	}
	return v * 1024
}

// record hands a finished execution to the sink.
func (m *Monitor) record(e metrics.Execution) {
	if m.opts.Sink != nil {
		m.opts.Sink.RecordExecution(e)
	}
}

func (m *Monitor) hasController(c string) bool {
	for _, x := range m.controllers {
		if x == c {
			return true
		}
	}
	return false
}

// isNotFound reports whether a start error means the command does not exist.
func isNotFound(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

// sampleNow takes a sample at once (ResourceMonitor.UpdateMonitoring).
func (h *Handle) sampleNow() { h.r.tick(time.Now()) }
