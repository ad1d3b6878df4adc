package cgroupmon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/internal/proctree"
	"github.com/cgmon/cgmon/metrics"
)

// watch kills the execution on timeout or when ctx is canceled.
func (r *run) watch(ctx context.Context) {
	var timeout <-chan time.Time
	if r.spec.Timeout > 0 {
		t := time.NewTimer(r.spec.Timeout - time.Since(r.start))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		r.kill(metrics.StatusCanceled)
	case <-timeout:
		r.kill(metrics.StatusTimeout)
	case <-r.done:
	}
}

// wait waits for the main process, ends what is left of the execution
// (in its cgroup, and with a subreaper outside it), reads the final
// counters and publishes the record. The emptied cgroup is left to the
// sampler to remove.
func (m *Monitor) wait(r *run) {
	selfPeak := m.whileRunning(r)
	ps, mainEnd, err := m.waitMain(r, selfPeak)
	errs := []error{err}
	leftovers, err := r.endLeftovers()
	errs = append(errs, err, m.endEscaped(r), r.pipes.finish(time.Second))
	end := mainEnd
	if r.spec.WaitAll {
		end = time.Now()
	}
	m.sampler.remove(r)
	if r.tree != nil && m.reaper != nil {
		// Unregister sweeps the last zombies into the tree: before Totals.
		m.reaper.Unregister(r.tree)
	}
	rec, err := r.finalRecord(ps, end, leftovers)
	errs = append(errs, err, m.release(r))
	m.finish(r, rec, errors.Join(errs...))
}

// finish makes rec the run's final record, hands it to the sink and wakes
// whoever waits for it.
func (m *Monitor) finish(r *run, rec metrics.Execution, err error) {
	r.publish(rec, err)
	m.untrack(r)
	m.record(&rec)
	r.wake()
}

// whileRunning does, while the command runs, the work that would
// otherwise sit between its exit and the record (on 2 CPUs the child's
// exec and this overlap): it opens the leaf's cgroup.events and cpu.stat,
// read right after the exit; it makes the procfs tree of a hybrid run, the
// memory source when the leaf has no memory controller; and it returns
// cgmon's own peak RSS as of the start, which is what a vfork-started
// child inherits at exec.
func (m *Monitor) whileRunning(r *run) (selfPeak uint64) {
	if l := r.leaf; l != nil {
		r.mu.Lock()
		// An error here is met again, and reported, where the file is read.
		_, _ = l.fd(&l.events, "cgroup.events")
		_, _ = l.fd(&l.cpuStat, "cpu.stat")
		r.mu.Unlock()
		if !l.memory {
			t := m.procfs.NewTree(r.cmd.Process.Pid, proctree.TreeOptions{Members: l.allPids, StartTicks: r.bootTicks})
			r.useTree(t)
			if m.reaper != nil {
				m.reaper.Register(t)
			}
		}
	}
	if r.tree == nil && !r.sources.is(metrics.MetricMemoryProcessPeak, metrics.SourceRusageMaxRSS) {
		return 0
	}
	return m.self.bytes()
}

// waitMain waits for the main process and accounts its rusage to the
// procfs tree, if any.
func (m *Monitor) waitMain(r *run, selfPeak uint64) (*os.ProcessState, time.Time, error) {
	waitErr := r.cmd.Wait()
	end := time.Now()
	if m.reaper != nil {
		m.reaper.Unprotect(r.cmd.Process.Pid)
	}
	ps := r.cmd.ProcessState
	if ps == nil {
		return nil, end, fmt.Errorf("waiting for %d: %w", r.cmd.Process.Pid, waitErr)
	}
	if r.tree == nil {
		if ru := proctree.RusageOf(ps); ru != nil {
			if b := uint64(ru.Maxrss) * 1024; b > selfPeak {
				r.mainRusage(b)
			} else {
				r.dropMaxRSS(ru.Maxrss, int64(selfPeak/1024))
			}
		}
		return ps, end, nil
	}
	if ru := proctree.RusageOf(ps); ru != nil {
		// exec.Cmd starts the child with CLONE_VM|CLONE_VFORK, and at exec
		// the kernel folds the parent's RSS high-water mark into the
		// child's maxrss: a maxrss not above cgmon's own peak may be
		// cgmon's, so it is not used (CPU times are unaffected).
		if uint64(ru.Maxrss)*1024 <= selfPeak {
			r.dropMaxRSS(ru.Maxrss, int64(selfPeak/1024))
			c := *ru
			c.Maxrss = 0
			ru = &c
		}
		r.tree.Reaped(r.cmd.Process.Pid, ru)
	}
	return ps, end, nil
}

// endLeftovers deals with the processes left after the main one exited,
// in the leaf and in any cgroup the workload made below it: kills them
// (the default), or waits for them (WaitAll). It returns how many
// processes other than the main one cgmon's kills ended (a timeout's
// included) once every process is gone.
func (r *run) endLeftovers() (killed int, err error) {
	var errs []error
	if !r.spec.WaitAll {
		r.mu.Lock()
		n, err := r.leftoverCountLocked()
		errs = append(errs, err)
		if n > 0 && r.tree != nil {
			_ = r.tree.Snapshot() // their VmHWM, before they go
		}
		r.mu.Unlock()
		if n > 0 {
			errs = append(errs, r.killUntilEmpty())
		} else {
			errs = append(errs, r.waitEmpty())
		}
	} else {
		errs = append(errs, r.waitEmpty())
	}
	r.mu.Lock()
	killed = r.leftoversLocked()
	r.mu.Unlock()
	return killed, errors.Join(errs...)
}

// leftoverCountLocked counts processes other than the (exited) main one.
func (r *run) leftoverCountLocked() (int, error) {
	if r.leaf != nil {
		if pop, err := r.leaf.populated(); err == nil && !pop {
			return 0, nil // the common case: one read, no cgroup.procs
		}
		pids, err := r.leaf.allPids(nil)
		return len(pids), err
	}
	// Refresh the tree first: an orphan appears only once re-parented.
	_, err := r.tree.Sample()
	return len(r.tree.Pids(nil)), err
}

// killUntilEmpty kills every process of the execution and waits until
// none is left, killing again while one is (without cgroup.kill, a
// process can fork between the freeze and the kill).
func (r *run) killUntilEmpty() error {
	for {
		r.mu.Lock()
		kerr := r.killTreeLocked()
		r.mu.Unlock()
		if r.leaf == nil {
			return errors.Join(kerr, r.waitEmpty())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := r.leaf.waitEmpty(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			return errors.Join(kerr, err)
		}
	}
}

// waitEmpty waits until no process of the execution is left.
func (r *run) waitEmpty() error {
	if r.leaf != nil {
		return r.leaf.waitEmpty(context.Background())
	}
	for {
		r.mu.Lock()
		if _, err := r.tree.Sample(); err != nil {
			r.noteErrLocked(err) // one unreadable process must not end the wait
		}
		n := len(r.tree.Pids(nil))
		r.mu.Unlock()
		if n == 0 {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// endEscaped ends, as the subreaper, what the execution left outside its
// cgroup once the cgroup is empty (proctree.Reaper.Sweep): processes that
// moved themselves out of it, with their children, are killed and
// counted as escaped, and zombies of the cgroup that came back to cgmon
// are reaped. Without a subreaper, such processes are re-parented to
// PID 1 and out of cgmon's sight.
func (m *Monitor) endEscaped(r *run) error {
	if m.reaper == nil || r.leaf == nil {
		return nil
	}
	sw := proctree.Sweep{
		Cgroup: m.cgroupPath(r.leaf.path), Marker: r.marker, Tree: r.tree,
		Elsewhere: func(cg string) bool { return m.inOtherLeaf(r, cg) },
	}
	got, err := m.reaper.Sweep(sw)
	r.mu.Lock()
	killedAny := len(r.killed) > 0
	r.mu.Unlock()
	if killedAny && err == nil {
		// A process the kill ended is out of the cgroup (the leaf reads
		// empty) a moment before its children are re-parented here.
		time.Sleep(5 * time.Millisecond)
		more, err2 := m.reaper.Sweep(sw)
		got.Escaped, got.Reaped, err = got.Escaped+more.Escaped, got.Reaped+more.Reaped, err2
		got.Cgroups = append(got.Cgroups, more.Cgroups...)
	}
	if got.Escaped > 0 {
		r.escapedFound(got.Escaped, got.Cgroups)
	}
	return err
}

// cgroupPath is a cgroup directory's path as /proc/PID/cgroup shows it:
// relative to the cgroup v2 mount.
func (m *Monitor) cgroupPath(dir string) string {
	rel, err := filepath.Rel(m.probe.Mount, dir)
	if err != nil || rel == "." {
		return "/"
	}
	return "/" + rel
}

// inOtherLeaf reports whether the cgroup path cg is in the leaf of a live
// execution other than r.
func (m *Monitor) inOtherLeaf(r *run, cg string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for o := range m.live {
		if o != r && o.leaf != nil {
			p := m.cgroupPath(o.leaf.path)
			if cg == p || strings.HasPrefix(cg, p+"/") {
				return true
			}
		}
	}
	return false
}

// release closes what the run holds. A started run's emptied leaf goes to
// the sampler, which removes it at its next tick, off the path between the
// exit and the record (Close waits for that); an attached target's cgroup
// is never removed.
func (m *Monitor) release(r *run) error {
	var err error
	r.mu.Lock()
	r.endLocked()
	if r.tree != nil {
		err = r.tree.Close()
	}
	l := r.leaf
	if l != nil {
		l.closeFDs()
	}
	r.mu.Unlock()
	if l == nil || r.attached || m.sampler.reclaim(l) {
		return err
	}
	if rerr := l.remove(); rerr != nil {
		err = errors.Join(err, leftToReap(rerr))
	}
	return err
}

// finalRecord makes the record from the kernel's counters, read as the
// source table says, once the execution has no process left.
func (r *run) finalRecord(ps *os.ProcessState, end time.Time, leftovers int) (metrics.Execution, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endLocked()
	rec := r.rec
	rec.EndedAt = end
	rec.LeftoverProcessesKilled = leftovers
	u, oomKills, err := r.finalUsageLocked(end.Sub(r.start), leftovers)
	rec.Usage = u
	rec.EscapedProcessesKilled = r.escaped
	r.lowerBoundsLocked(&rec, ps)
	if r.spec.KeepSamples {
		rec.Samples = r.seen.timeline
	}
	r.setStatus(&rec, ps, oomKills)
	return rec, err
}

// escapeSlack is how much more CPU time the main process's rusage may
// show than its cgroup's cpu.stat before cgmon takes it that work ran
// outside the cgroup: the gated start's exec runs before the move.
const escapeSlack = 20 * time.Millisecond

// lowerBoundsLocked marks the CPU times of rec as lower bounds when a
// process of the execution ran outside its cgroup: one cgmon found and
// killed, or work that the main process's rusage (its own CPU time and
// that of the children it waited for) shows and the cgroup's cpu.stat
// does not.
func (r *run) lowerBoundsLocked(rec *metrics.Execution, ps *os.ProcessState) {
	why := slices.Clone(r.outside)
	if cg, ok := rec.Usage.CPUTotal.Get(); ok && r.leaf != nil && !r.attached && ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			own := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			if own > cg+max(escapeSlack, cg/20) {
				why = append(why, fmt.Sprintf("the main process's rusage shows %.3f s of CPU time, more than its cgroup's %.3f s: it, or a process it waited for, ran outside the cgroup", own.Seconds(), cg.Seconds()))
			}
		}
	}
	if len(why) == 0 {
		return
	}
	reason := strings.Join(why, "; ") + "; CPU time spent outside the cgroup is not counted"
	rec.LowerBounds = map[metrics.Metric]string{}
	for _, m := range []metrics.Metric{metrics.MetricCPUUser, metrics.MetricCPUSystem, metrics.MetricCPUTotal, metrics.MetricCPUAveragePercent} {
		if f := r.sources[m]; len(f.Sources) > 0 && f.Sources[0] == metrics.SourceCgroupCPUStat {
			rec.LowerBounds[m] = reason
		}
	}
	if len(rec.LowerBounds) == 0 {
		rec.LowerBounds = nil
	}
}

// finalUsageLocked reads every metric from where the source table says.
func (r *run) finalUsageLocked(wall time.Duration, leftovers int) (u metrics.Usage, oomKills uint64, err error) {
	u = unavailableUsage("not measured")
	u.WallTime = metrics.Measured(wall, metrics.SourceMonotonic)
	r.sampledUsageLocked(&u)
	var errs []error
	if r.leaf != nil {
		oomKills, err = r.finalCgroupLocked(&u)
		errs = append(errs, err)
	}
	if r.tree != nil {
		r.finalTreeLocked(&u, leftovers)
	}
	for _, m := range metrics.Metrics {
		if c := r.sources[m]; len(c.Sources) == 0 {
			setUnavailable(&u, m, c.Reason)
		}
	}
	if v, ok := u.CPUTotal.Get(); ok && wall > 0 {
		u.CPUAveragePercent = metrics.Measured(float64(v-r.cpuBase)/float64(wall)*100, u.CPUTotal.Source())
	} else if !ok {
		u.CPUAveragePercent = metrics.Unavailable[float64]("CPU time unavailable: " + u.CPUTotal.Reason())
	}
	return u, oomKills, errors.Join(errs...)
}

// setUnavailable marks metric m of u unavailable with reason.
func setUnavailable(u *metrics.Usage, m metrics.Metric, reason string) {
	dur := func(p *metrics.Measure[time.Duration]) { *p = metrics.Unavailable[time.Duration](reason) }
	u64 := func(p *metrics.Measure[uint64]) { *p = metrics.Unavailable[uint64](reason) }
	switch m {
	case metrics.MetricExecutionTime:
		dur(&u.WallTime)
	case metrics.MetricCPUUser:
		dur(&u.CPUUser)
	case metrics.MetricCPUSystem:
		dur(&u.CPUSystem)
	case metrics.MetricCPUTotal:
		dur(&u.CPUTotal)
	case metrics.MetricCPUThrottled:
		dur(&u.CPUThrottled)
	case metrics.MetricCPUSamples:
		u.CPUSamples = metrics.Unavailable[int](reason)
	case metrics.MetricCPUSamplesDropped:
		u.CPUSamplesDropped = metrics.Unavailable[int](reason)
	case metrics.MetricCPUAveragePercent:
		u.CPUAveragePercent = metrics.Unavailable[float64](reason)
	case metrics.MetricCPUPeakPercent:
		u.CPUPeakPercent = metrics.Unavailable[float64](reason)
	case metrics.MetricCPUWait:
		dur(&u.CPUWait)
	case metrics.MetricMemoryWait:
		dur(&u.MemoryWait)
	case metrics.MetricIOWait:
		dur(&u.IOWait)
	case metrics.MetricMemoryStart:
		u64(&u.MemoryStart)
	case metrics.MetricMemoryPeak:
		u64(&u.MemoryPeak)
	case metrics.MetricPidsPeak:
		u64(&u.PidsPeak)
	case metrics.MetricIORead:
		u64(&u.IORead)
	case metrics.MetricIOWrite:
		u64(&u.IOWrite)
	case metrics.MetricMemoryProcessPeak:
		u64(&u.MemoryProcessPeak)
	case metrics.MetricMemoryAnonPeak:
		u64(&u.MemoryAnonPeak)
	case metrics.MetricMemoryFileAtEnd:
		u64(&u.MemoryFileAtEnd)
	case metrics.MetricMemoryShmemAtEnd:
		u64(&u.MemoryShmemAtEnd)
	case metrics.MetricMemoryKernelAtEnd:
		u64(&u.MemoryKernelAtEnd)
	}
}

// finalCgroupLocked reads the leaf's counters into u, as the source table
// says: cpu.stat, and memory.peak, pids.peak, io.stat and memory.events
// where the leaf has their controllers.
func (r *run) finalCgroupLocked(u *metrics.Usage) (oomKills uint64, err error) {
	var errs []error
	l, tab := r.leaf, r.sources
	if st, err := l.readCPU(); err != nil {
		errs = append(errs, err)
		reason := "cpu.stat could not be read: " + err.Error()
		u.CPUTotal, u.CPUUser, u.CPUSystem = metrics.Unavailable[time.Duration](reason), metrics.Unavailable[time.Duration](reason), metrics.Unavailable[time.Duration](reason)
	} else {
		us := func(v uint64) time.Duration { return time.Duration(v) * time.Microsecond }
		u.CPUTotal = metrics.Measured(us(st.UsageUsec), metrics.SourceCgroupCPUStat)
		u.CPUUser = metrics.Measured(us(st.UserUsec), metrics.SourceCgroupCPUStat)
		u.CPUSystem = metrics.Measured(us(st.SystemUsec), metrics.SourceCgroupCPUStat)
		switch {
		case !tab.is(metrics.MetricCPUThrottled, metrics.SourceCgroupCPUStat):
		case st.HasThrottling:
			u.CPUThrottled = metrics.Measured(us(st.ThrottledUsec), metrics.SourceCgroupCPUStat)
		default:
			u.CPUThrottled = metrics.Unavailable[time.Duration]("cpu.stat of the cgroup has no throttled_usec: its cpu controller is off")
		}
	}
	switch {
	case tab.is(metrics.MetricMemoryPeak, metrics.SourceCgroupMemoryPeak):
		u.MemoryPeak, err = r.readPeakLocked("memory.peak", metrics.SourceCgroupMemoryPeak)
		errs = append(errs, err)
	case tab.is(metrics.MetricMemoryPeak, metrics.SourceSampledMemoryCurrent):
		u.MemoryPeak = r.sampledPeakLocked(r.seen.memOK, r.seen.memPeak, metrics.SourceSampledMemoryCurrent, metrics.MetricMemoryPeak)
	}
	if l.memory {
		oomKills, err = r.readOOMKillsLocked()
		errs = append(errs, err)
	}
	switch {
	case tab.is(metrics.MetricPidsPeak, metrics.SourceCgroupPidsPeak):
		u.PidsPeak, err = r.readPeakLocked("pids.peak", metrics.SourceCgroupPidsPeak)
		errs = append(errs, err)
	case tab.is(metrics.MetricPidsPeak, metrics.SourceSampledPidsCurrent), tab.is(metrics.MetricPidsPeak, metrics.SourceSampledCgroupProcs):
		u.PidsPeak = r.sampledPeakLocked(r.seen.pidsPeak > 0, r.seen.pidsPeak, tab[metrics.MetricPidsPeak].first(), metrics.MetricPidsPeak)
	}
	if tab.is(metrics.MetricIORead, metrics.SourceCgroupIOStat) {
		errs = append(errs, r.readIOStatLocked(u))
	}
	errs = append(errs, r.finalPressureLocked(u))
	if tab.is(metrics.MetricMemoryFileAtEnd, metrics.SourceCgroupMemoryStat) {
		errs = append(errs, r.readMakeupLocked(u))
	}
	if tab.is(metrics.MetricMemoryAnonPeak, metrics.SourceSampledMemoryAnon) {
		u.MemoryAnonPeak = r.sampledPeakLocked(r.seen.anonOK, r.seen.anonPeak, metrics.SourceSampledMemoryAnon, metrics.MetricMemoryAnonPeak)
	}
	if tab.is(metrics.MetricMemoryProcessPeak, metrics.SourceRusageMaxRSS) && r.tree == nil {
		u.MemoryProcessPeak = r.mainProcessPeakLocked()
	}
	return oomKills, errors.Join(errs...)
}

// finalPressureLocked sets the waits for a CPU, memory and I/O: how much
// the "some" total of each pressure file grew since the run began.
func (r *run) finalPressureLocked(u *metrics.Usage) error {
	var errs []error
	waits := [numPressure]*metrics.Measure[time.Duration]{&u.CPUWait, &u.MemoryWait, &u.IOWait}
	for i, m := range pressureMetrics {
		if !r.sources.is(m, pressureSources[i]) {
			continue
		}
		file := pressureFiles[i]
		end, err := r.leaf.readPressure(i)
		switch {
		case err != nil:
			errs = append(errs, err)
			*waits[i] = metrics.Unavailable[time.Duration](file + " could not be read at the end: " + err.Error())
		case !r.pressure.ok[i]:
			*waits[i] = metrics.Unavailable[time.Duration](file + " could not be read when the run began")
		case end < r.pressure.total[i]:
			*waits[i] = metrics.Unavailable[time.Duration](file + "'s total went backwards")
		default:
			*waits[i] = metrics.Measured(time.Duration(end-r.pressure.total[i])*time.Microsecond, pressureSources[i])
		}
	}
	return errors.Join(errs...)
}

// readMakeupLocked reads memory.stat, at the end, into what the charge is
// made of.
func (r *run) readMakeupLocked(u *metrics.Usage) error {
	set := func(why string) {
		for _, p := range []*metrics.Measure[uint64]{&u.MemoryFileAtEnd, &u.MemoryShmemAtEnd, &u.MemoryKernelAtEnd} {
			*p = metrics.Unavailable[uint64](why)
		}
	}
	b, err := r.leaf.readFile("memory.stat")
	if err != nil {
		set("memory.stat could not be read: " + err.Error())
		return err
	}
	mk, err := parseMemoryMakeup(b)
	if err != nil {
		set("memory.stat is malformed: " + err.Error())
		return fmt.Errorf("memory.stat: %w", err)
	}
	u.MemoryFileAtEnd = metrics.Measured(mk.File, metrics.SourceCgroupMemoryStat)
	u.MemoryShmemAtEnd = metrics.Measured(mk.Shmem, metrics.SourceCgroupMemoryStat)
	u.MemoryKernelAtEnd = metrics.Measured(mk.Kernel, metrics.SourceCgroupMemoryStat)
	return nil
}

// mainProcessPeakLocked is the main process's rusage maxrss, or why it is
// not known.
func (r *run) mainProcessPeakLocked() metrics.Measure[uint64] {
	switch d := r.dropped; {
	case r.mainRSS.set:
		return metrics.Measured(r.mainRSS.bytes, metrics.SourceRusageMaxRSS)
	case d.set:
		return metrics.Unavailable[uint64](fmt.Sprintf("rusage maxrss of the main process (%d KiB) does not exceed cgmon's own peak RSS (%d KiB): a vfork-started child inherits its parent's high-water mark at exec, so it is not the program's", d.maxrss, d.self))
	case r.cmd == nil:
		return metrics.Unavailable[uint64]("the target is not cgmon's child: its rusage is not cgmon's to read")
	}
	return metrics.Unavailable[uint64]("the main process could not be waited for: no rusage")
}

// readPeakLocked reads a single-value peak file of the leaf.
func (r *run) readPeakLocked(file string, src metrics.Source) (metrics.Measure[uint64], error) {
	b, err := r.leaf.readFile(file)
	if err != nil {
		return metrics.Unavailable[uint64](file + " could not be read: " + err.Error()), err
	}
	v, err := parseUint(b)
	if err != nil {
		return metrics.Unavailable[uint64](file + " is malformed: " + err.Error()), fmt.Errorf("%s: %w", file, err)
	}
	return metrics.Measured(v, src), nil
}

// sampledPeakLocked is a peak the sampler saw, a lower bound, or why there
// is none.
func (r *run) sampledPeakLocked(ok bool, v uint64, src metrics.Source, m metrics.Metric) metrics.Measure[uint64] {
	if !ok {
		return metrics.Unavailable[uint64](r.sources.reason(m) + "; and " + r.seen.never())
	}
	return metrics.Measured(v, src)
}

// readOOMKillsLocked reads memory.events' oom_kill count.
func (r *run) readOOMKillsLocked() (uint64, error) {
	b, err := r.leaf.readFile("memory.events")
	if err != nil {
		return 0, err
	}
	ev, err := parseMemoryEvents(b)
	if err != nil {
		return 0, fmt.Errorf("memory.events: %w", err)
	}
	return ev.OOMKill, nil
}

// readIOStatLocked reads io.stat into u.
func (r *run) readIOStatLocked(u *metrics.Usage) error {
	b, err := r.leaf.readFile("io.stat")
	if err != nil {
		u.IORead, u.IOWrite = metrics.Unavailable[uint64]("io.stat could not be read: "+err.Error()), metrics.Unavailable[uint64]("io.stat could not be read: "+err.Error())
		return err
	}
	io, err := parseIOStat(b)
	if err != nil {
		u.IORead, u.IOWrite = metrics.Unavailable[uint64]("io.stat is malformed: "+err.Error()), metrics.Unavailable[uint64]("io.stat is malformed: "+err.Error())
		return fmt.Errorf("io.stat: %w", err)
	}
	u.IORead = metrics.Measured(io.RBytes, metrics.SourceCgroupIOStat)
	u.IOWrite = metrics.Measured(io.WBytes, metrics.SourceCgroupIOStat)
	return nil
}

// finalTreeLocked takes from the procfs tree what the source table says it
// gives: CPU on the procfs backend, and the memory, processes and I/O that
// a leaf without those controllers cannot give.
func (r *run) finalTreeLocked(u *metrics.Usage, leftovers int) {
	t, tab := r.tree.Totals(), r.sources
	if tab.is(metrics.MetricCPUTotal, metrics.SourceRusage) {
		u.CPUUser, u.CPUSystem, u.CPUTotal = t.CPUUser, t.CPUSystem, t.CPUTotal
	}
	if tab.is(metrics.MetricMemoryPeak, metrics.SourceRusageMaxRSS) {
		u.MemoryPeak = r.procMemoryPeakLocked(t)
	}
	if tab.is(metrics.MetricPidsPeak, metrics.SourceSampledProcTree) {
		u.PidsPeak = t.Procs
		if v, ok := t.Procs.Get(); ok {
			u.PidsPeak = metrics.Measured(max(v, r.seen.pidsPeak), t.Procs.Source())
		}
		if v, ok := u.PidsPeak.Get(); ok && v == 0 {
			// The tree was never listed while a process lived.
			u.PidsPeak = metrics.Unavailable[uint64](tab.reason(metrics.MetricPidsPeak) + "; and " + r.seen.noneAlive())
		}
	}
	if tab.is(metrics.MetricMemoryProcessPeak, metrics.SourceRusageMaxRSS) {
		u.MemoryProcessPeak = r.procProcessPeakLocked(t)
	}
	if tab.is(metrics.MetricIORead, metrics.SourceProcIO) {
		u.IORead, u.IOWrite = t.IORead, t.IOWrite
		if r.seen.n == 0 && leftovers == 0 {
			// /proc/PID/io was never read while a process lived, and an
			// exited process's is gone: a 0 here would be a guess.
			why := "/proc/PID/io is gone once a process exits, and " + noSample
			u.IORead, u.IOWrite = metrics.Unavailable[uint64](why), metrics.Unavailable[uint64](why)
		}
	}
}

// procMemoryPeakLocked is the larger of the single-process peak (rusage
// maxrss or VmHWM) and the sampled tree sum; a 0 is no measurement of a
// program that ran (a dropped maxrss).
func (r *run) procMemoryPeakLocked(t proctree.Totals) metrics.Measure[uint64] {
	peak := metrics.Unavailable[uint64](r.seen.noneAlive())
	for _, m := range []metrics.Measure[uint64]{t.MaxRSS, t.PeakRSS} {
		if v, ok := m.Get(); ok && v > 0 && v > peak.Value() {
			peak = m
		}
	}
	if d := r.dropped; !peak.Valid() && d.set {
		peak = metrics.Unavailable[uint64](fmt.Sprintf("rusage maxrss of the main process (%d KiB) does not exceed cgmon's own peak RSS (%d KiB): a vfork-started child inherits its parent's high-water mark at exec, so it is not the program's; and %s", d.maxrss, d.self, r.seen.noneAlive()))
	}
	return peak
}

// procProcessPeakLocked is the tree's largest single-process peak (rusage
// maxrss or VmHWM), or why there is none.
func (r *run) procProcessPeakLocked(t proctree.Totals) metrics.Measure[uint64] {
	if v, ok := t.MaxRSS.Get(); ok && v > 0 {
		return t.MaxRSS
	}
	if d := r.dropped; d.set {
		return metrics.Unavailable[uint64](fmt.Sprintf("rusage maxrss of the main process (%d KiB) does not exceed cgmon's own peak RSS (%d KiB): a vfork-started child inherits its parent's high-water mark at exec, so it is not the program's; and no process's VmHWM was read while it lived", d.maxrss, d.self))
	}
	return metrics.Unavailable[uint64]("no process was reaped by cgmon or read while it lived")
}

// setStatus sets the status, exit code, signal and reason, in order of
// precedence: what cgmon did, then the kernel's OOM killer, then how the
// main process ended.
func (r *run) setStatus(rec *metrics.Execution, ps *os.ProcessState, oomKills uint64) {
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Exited():
				rec.ExitCode = ws.ExitStatus()
			case ws.Signaled():
				rec.Signal = int(ws.Signal())
			}
		}
	}
	rec.OOMKilled = oomKills > 0
	rec.TimedOut = r.killedAs == metrics.StatusTimeout
	cpu, cpuOK := rec.Usage.CPUTotal.Get()
	switch {
	case r.killedAs == metrics.StatusTimeout:
		rec.Status = metrics.StatusTimeout
		rec.Reason = fmt.Sprintf("wall-clock limit of %v reached; every process was killed%s", r.spec.Timeout, killedCount(rec.LeftoverProcessesKilled))
	case r.killedAs == metrics.StatusCPUTimeout:
		rec.Status = metrics.StatusCPUTimeout
		rec.Reason = fmt.Sprintf("CPU-time limit of %v reached (CPU time %s); every process was killed%s", r.spec.CPUTimeLimit, cpuTime(rec.Usage.CPUTotal), killedCount(rec.LeftoverProcessesKilled))
	case r.killedAs != "":
		rec.Status = r.killedAs
		rec.Reason = "canceled by the caller; every process was killed" + killedCount(rec.LeftoverProcessesKilled)
	case r.spec.CPUTimeLimit > 0 && cpuOK && cpu > r.spec.CPUTimeLimit:
		// It ended between two checks, past its limit.
		rec.Status = metrics.StatusCPUTimeout
		rec.Reason = fmt.Sprintf("CPU-time limit of %v exceeded (CPU time %s); the execution ended before cgmon's check", r.spec.CPUTimeLimit, cpuTime(rec.Usage.CPUTotal))
	case rec.OOMKilled:
		rec.Status = metrics.StatusOOM
		rec.Reason = fmt.Sprintf("the kernel's OOM killer killed %d process(es) of this execution (memory.events oom_kill)", oomKills)
	case rec.Signal != 0:
		rec.Status = metrics.StatusSignaled
		rec.Reason = "killed by signal " + unix.SignalName(syscall.Signal(rec.Signal))
		if why := signalReason(syscall.Signal(rec.Signal), r.spec.Rlimits); why != "" {
			rec.Reason = why
		}
	case rec.ExitCode == 0:
		rec.Status = metrics.StatusSuccess
	case ps == nil:
		rec.Status = metrics.StatusError
		rec.Reason = "the main process could not be waited for"
	default:
		rec.Status = metrics.StatusError
		rec.Reason = fmt.Sprintf("exit status %d", rec.ExitCode)
	}
}

// killedCount says, for a reason, how many processes beside the main one a
// kill ended.
func killedCount(leftovers int) string {
	if leftovers == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d beside the main process)", leftovers)
}

// cpuTime prints a measured CPU time to the microsecond, as cpu.stat and
// rusage count it, or says that it is unknown.
func cpuTime(m metrics.Measure[time.Duration]) string {
	if v, ok := m.Get(); ok {
		return v.Round(time.Microsecond).String()
	}
	return "unknown: " + m.Reason()
}
