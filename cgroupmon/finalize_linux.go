package cgroupmon

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

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
	}
}

const noSample = "the execution ended before the first sample"

// sampledLocked fills the metrics that only the sampler knows.
func (r *run) sampledLocked(u *metrics.Usage) {
	u.CPUSamples = metrics.Measured(r.samples, metrics.SourceSampler)
	if r.samples > 0 {
		u.CPUPeakPercent = metrics.Measured(r.peakPct, metrics.SourceSampler)
	} else {
		u.CPUPeakPercent = metrics.Unavailable[float64](noSample)
	}
	if r.memOK {
		src := metrics.SourceSampledMemoryCurrent
		if r.leaf == nil || !r.leaf.memory {
			src = metrics.SourceSampledProcRSS
		}
		u.MemoryStart = metrics.Measured(r.memStart, src)
	} else {
		u.MemoryStart = metrics.Unavailable[uint64](noSample)
	}
}

// liveUsage is the snapshot a Handle's Usage returns while running.
func (r *run) liveUsage() metrics.Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return r.rec.Usage
	}
	u := unavailableUsage("not known until the execution ends")
	wall := time.Since(r.start)
	u.WallTime = metrics.Measured(wall, metrics.SourceMonotonic)
	r.sampledLocked(&u)
	if r.samples > 0 {
		src := metrics.SourceCgroupCPUStat
		if r.leaf == nil {
			src = metrics.SourceSampledProcCPU
		}
		u.CPUTotal = metrics.Measured(r.lastCPU, src)
		if el := r.lastT.Sub(r.start); el > 0 {
			u.CPUAveragePercent = metrics.Measured(float64(r.lastCPU)/float64(el)*100, src)
		}
	}
	if r.memOK {
		u.MemoryPeak = metrics.Measured(r.memPeak, metrics.SourceSampledMemoryCurrent)
	}
	return u
}

// finalizeLocked sets the status and the final usage from the kernel's
// counters; r.mu is held and the execution has no process left.
func (r *run) finalizeLocked(ps *os.ProcessState, end time.Time, leftovers int) {
	rec := &r.rec
	rec.EndedAt = end
	rec.LeftoverProcessesKilled = leftovers
	u := unavailableUsage("not measured")
	wall := end.Sub(r.start)
	u.WallTime = metrics.Measured(wall, metrics.SourceMonotonic)
	r.sampledLocked(&u)

	var errs []error
	oomKills := uint64(0)
	if r.leaf != nil {
		errs = append(errs, r.finalCgroupLocked(&u, &oomKills))
	}
	if r.tree != nil {
		r.finalTreeLocked(&u)
	}
	if v, ok := u.CPUTotal.Get(); ok && wall > 0 {
		u.CPUAveragePercent = metrics.Measured(float64(v)/float64(wall)*100, u.CPUTotal.Source())
	} else if !ok {
		u.CPUAveragePercent = metrics.Unavailable[float64]("CPU time unavailable: " + u.CPUTotal.Reason())
	}
	if err := errors.Join(errs...); err != nil && r.err == nil {
		r.err = err
	}
	rec.Usage = u
	if r.spec.KeepSamples {
		rec.Samples = r.timeline
	}

	// Status, in order of precedence: what cgmon did, then the kernel's
	// OOM killer, then how the main process ended.
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
	switch {
	case r.killedAs != "":
		rec.Status = r.killedAs
		if r.killedAs == metrics.StatusTimeout {
			rec.Reason = fmt.Sprintf("wall-clock limit of %v reached; every process was killed", r.spec.Timeout)
		} else {
			rec.Reason = "cancelled by the caller; every process was killed"
		}
	case rec.OOMKilled:
		rec.Status = metrics.StatusOOM
		rec.Reason = fmt.Sprintf("the kernel's OOM killer killed %d process(es) of this execution (memory.events oom_kill)", oomKills)
	case rec.Signal != 0:
		rec.Status = metrics.StatusSignaled
		rec.Reason = "killed by signal " + unix.SignalName(syscall.Signal(rec.Signal))
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

// finalCgroupLocked reads the leaf's counters into u.
func (r *run) finalCgroupLocked(u *metrics.Usage, oomKills *uint64) error {
	var errs []error
	l := r.leaf
	if st, err := l.readCPU(); err != nil {
		errs = append(errs, err)
		reason := "cpu.stat could not be read: " + err.Error()
		u.CPUTotal, u.CPUUser, u.CPUSystem = metrics.Unavailable[time.Duration](reason), metrics.Unavailable[time.Duration](reason), metrics.Unavailable[time.Duration](reason)
	} else {
		us := func(v uint64) time.Duration { return time.Duration(v) * time.Microsecond }
		u.CPUTotal = metrics.Measured(us(st.UsageUsec), metrics.SourceCgroupCPUStat)
		u.CPUUser = metrics.Measured(us(st.UserUsec), metrics.SourceCgroupCPUStat)
		u.CPUSystem = metrics.Measured(us(st.SystemUsec), metrics.SourceCgroupCPUStat)
		if st.HasThrottling {
			u.CPUThrottled = metrics.Measured(us(st.ThrottledUsec), metrics.SourceCgroupCPUStat)
		} else {
			u.CPUThrottled = metrics.Unavailable[time.Duration]("the cpu controller is not enabled for this cgroup")
		}
	}
	if l.memory {
		if b, err := l.readFile("memory.peak"); err == nil {
			if v, err := parseUint(b); err == nil {
				u.MemoryPeak = metrics.Measured(v, metrics.SourceCgroupMemoryPeak)
			} else {
				errs = append(errs, fmt.Errorf("memory.peak: %w", err))
				u.MemoryPeak = metrics.Unavailable[uint64]("memory.peak is malformed: " + err.Error())
			}
		} else if errors.Is(err, os.ErrNotExist) {
			// memory.peak arrived in Linux 5.19: a sampled lower bound.
			if r.memOK {
				u.MemoryPeak = metrics.Measured(r.memPeak, metrics.SourceSampledMemoryCurrent)
			} else {
				u.MemoryPeak = metrics.Unavailable[uint64]("memory.peak is missing (Linux < 5.19) and " + noSample)
			}
		} else {
			errs = append(errs, err)
			u.MemoryPeak = metrics.Unavailable[uint64]("memory.peak could not be read: " + err.Error())
		}
		if b, err := l.readFile("memory.events"); err == nil {
			if ev, err := parseMemoryEvents(b); err == nil {
				*oomKills = ev.OOMKill
			} else {
				errs = append(errs, fmt.Errorf("memory.events: %w", err))
			}
		} else {
			errs = append(errs, err)
		}
	}
	if l.pidsCtl {
		if b, err := l.readFile("pids.peak"); err == nil {
			if v, err := parseUint(b); err == nil {
				u.PidsPeak = metrics.Measured(v, metrics.SourceCgroupPidsPeak)
			}
		} else if r.pidsPeak > 0 {
			// pids.peak arrived in Linux 6.1: a sampled lower bound.
			u.PidsPeak = metrics.Measured(r.pidsPeak, metrics.SourceSampledPidsCurrent)
		} else {
			u.PidsPeak = metrics.Unavailable[uint64]("pids.peak is missing (Linux < 6.1) and " + noSample)
		}
	}
	if l.io {
		if b, err := l.readFile("io.stat"); err == nil {
			if io, err := parseIOStat(b); err == nil {
				u.IORead = metrics.Measured(io.RBytes, metrics.SourceCgroupIOStat)
				u.IOWrite = metrics.Measured(io.WBytes, metrics.SourceCgroupIOStat)
			} else {
				errs = append(errs, fmt.Errorf("io.stat: %w", err))
			}
		} else {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// finalTreeLocked takes from procfallback what the leaf could not give.
func (r *run) finalTreeLocked(u *metrics.Usage) {
	t := r.tree.Totals()
	if r.leaf == nil {
		u.CPUUser, u.CPUSystem, u.CPUTotal = t.CPUUser, t.CPUSystem, t.CPUTotal
		u.CPUThrottled = metrics.Unavailable[time.Duration]("no cgroup: throttling is not known")
	}
	if !u.MemoryPeak.Valid() {
		// The larger of the single-process peak and the sampled tree sum;
		// a 0 is no measurement of a program that ran (a dropped maxrss).
		u.MemoryPeak = metrics.Unavailable[uint64](noSample)
		for _, m := range []metrics.Measure[uint64]{t.MaxRSS, t.PeakRSS} {
			if v, ok := m.Get(); ok && v > 0 && v > u.MemoryPeak.Value() {
				u.MemoryPeak = m
			}
		}
		if d := r.maxrssDropped; !u.MemoryPeak.Valid() && d.set {
			u.MemoryPeak = metrics.Unavailable[uint64](fmt.Sprintf("rusage maxrss of the main process (%d KiB) does not exceed cgmon's own peak RSS (%d KiB): a vfork-started child inherits its parent's high-water mark at exec, so it is not the program's; and %s", d.maxrss, d.self, noSample))
		}
	}
	if !u.PidsPeak.Valid() {
		if v, ok := t.Procs.Get(); ok && (r.leaf == nil || !r.leaf.pidsCtl) {
			u.PidsPeak = metrics.Measured(max(v, r.pidsPeak), t.Procs.Source())
		} else if !ok {
			u.PidsPeak = t.Procs
		}
	}
	if !u.IORead.Valid() {
		u.IORead, u.IOWrite = t.IORead, t.IOWrite
		if r.samples == 0 && r.rec.LeftoverProcessesKilled == 0 {
			// /proc/PID/io was never read while a process lived, and an
			// exited process's is gone: a 0 here would be a guess.
			why := "/proc/PID/io is gone once a process exits, and " + noSample
			u.IORead, u.IOWrite = metrics.Unavailable[uint64](why), metrics.Unavailable[uint64](why)
		}
	}
}
