package cgroupmon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
	"github.com/cgmon/cgmon/procfallback"
)

// Attach watches something that already runs, without starting, limiting,
// writing to or killing anything: an existing cgroup (Target.CgroupPath,
// e.g. a container's scope) or a process (Target.PID: its cgroup when that
// cgroup is its own, else its process tree through procfallback). It samples
// on the shared ticker until the cgroup is unpopulated, the process ends,
// Target.Duration passes or ctx is cancelled, and returns the same record
// as Start. An attached target is not cgmon's child: its exit status is not
// known, and the status is ended (it ended) or canceled (watching stopped
// first). CPU and memory totals of a cgroup are its whole life's, since the
// kernel counts from its creation; the average CPU % covers the watch.
func (m *Monitor) Attach(ctx context.Context, t Target) (*Handle, error) {
	if (t.CgroupPath == "") == (t.PID == 0) {
		return nil, fmt.Errorf("%w: attach needs exactly one of a cgroup path or a pid", ErrInvalidSpec)
	}
	if t.PID < 0 || t.Duration < 0 {
		return nil, fmt.Errorf("%w: negative pid or duration", ErrInvalidSpec)
	}
	if t.ID == "" {
		t.ID = "attach-" + strconv.FormatUint(m.seq.Add(1), 10)
	}
	if err := validateID(t.ID); err != nil {
		return nil, err
	}
	r := &run{m: m, spec: Spec{ID: t.ID, Language: t.Language, KeepSamples: t.KeepSamples}, done: make(chan struct{}), attached: true, stopped: make(chan struct{})}
	r.rec = metrics.Execution{ID: t.ID, Language: t.Language, ExitCode: -1}

	var pidfd = -1
	if t.CgroupPath != "" {
		path, err := m.cgroupDir(t.CgroupPath)
		if err != nil {
			return nil, err
		}
		if r.leaf, err = openLeaf(path); err != nil {
			return nil, err
		}
		r.rec.Command = []string{"cgroup:" + path}
	} else {
		fd, err := unix.PidfdOpen(t.PID, 0)
		if err != nil {
			return nil, fmt.Errorf("attach to pid %d: %w", t.PID, err)
		}
		pidfd = fd
		r.rec.Command = []string{"pid:" + strconv.Itoa(t.PID)}
		if path, ok := m.ownCgroupOf(t.PID); ok {
			if l, err := openLeaf(path); err == nil {
				r.leaf = l
			}
		}
		if r.leaf == nil || !r.leaf.memory {
			opts := procfallback.TreeOptions{}
			if r.leaf != nil {
				opts.Members = r.leaf.pids
			}
			r.tree = m.procfs.NewTree(t.PID, opts)
		}
	}
	r.rec.Backend = metrics.BackendProcfs
	if r.leaf != nil {
		r.rec.Backend = metrics.BackendHybrid
		if r.leaf.memory {
			r.rec.Backend = metrics.BackendCgroup2
		}
	}
	if err := m.track(r); err != nil {
		r.release()
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		return nil, err
	}
	r.start = time.Now()
	r.rec.StartedAt = r.start
	r.lastT = r.start
	if r.leaf != nil {
		if st, err := r.leaf.readCPU(); err == nil {
			r.lastCPU = time.Duration(st.UsageUsec) * time.Microsecond
		}
	} else if ts, err := r.tree.Sample(); err == nil {
		r.lastCPU = ts.CPU
	}
	r.cpuBase = r.lastCPU
	m.sampler.add(r)
	go r.attachWait(ctx, t.Duration, pidfd)
	return &Handle{r}, nil
}

// cgroupDir resolves a cgroup path given to Attach inside the v2 mount.
func (m *Monitor) cgroupDir(p string) (string, error) {
	mount := m.probe.Mount
	if mount == "" {
		return "", fmt.Errorf("attach to cgroup %s: %w: no cgroup v2 mount", p, ErrUnavailable)
	}
	path := filepath.Clean(p)
	if !filepath.IsAbs(p) {
		path = filepath.Join(mount, p)
	}
	if !withinDir(mount, path) {
		return "", fmt.Errorf("%w: cgroup path %s is outside the cgroup v2 mount %s", ErrInvalidSpec, p, mount)
	}
	return path, nil
}

// ownCgroupOf returns pid's cgroup v2 directory when every process in it
// is pid or one of its descendants (the cgroup is the process's own).
func (m *Monitor) ownCgroupOf(pid int) (string, bool) {
	if m.probe.Mount == "" {
		return "", false
	}
	b, err := readCapped(filepath.Join(m.opts.ProcRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", false
	}
	rel, ok, _, err := parseProcCgroup(b)
	if err != nil || !ok || rel == "/" {
		return "", false
	}
	dir := filepath.Join(m.probe.Mount, rel)
	procs, err := readCapped(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return "", false
	}
	for _, f := range bytes.Fields(procs) {
		other, err := strconv.Atoi(string(f))
		if err != nil || !m.descendantOf(other, pid) {
			return "", false
		}
	}
	return dir, true
}

// descendantOf reports whether p is pid or below it, following PPid.
func (m *Monitor) descendantOf(p, pid int) bool {
	for range 64 {
		if p == pid {
			return true
		}
		if p <= 1 {
			return false
		}
		b, err := readCapped(filepath.Join(m.opts.ProcRoot, strconv.Itoa(p), "stat"))
		if err != nil {
			return false
		}
		i := bytes.LastIndexByte(b, ')')
		f := bytes.Fields(b[i+1:])
		if i < 0 || len(f) < 2 {
			return false
		}
		if p, err = strconv.Atoi(string(f[1])); err != nil {
			return false
		}
	}
	return false
}

// attachWait waits for the target to end (or the watch to stop) and
// publishes the record; it never writes to the target.
func (r *run) attachWait(ctx context.Context, d time.Duration, pidfd int) {
	stop := ctx.Done()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
		stop = ctx.Done()
	}
	ended := false
	var errs []error
	for !ended {
		switch {
		case pidfd >= 0:
			fds := [1]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds[:], 20)
			if err != nil && !errors.Is(err, unix.EINTR) {
				errs = append(errs, err)
				ended = true
			}
			if n > 0 {
				ended = true
			}
		default:
			pop, err := r.leaf.populated()
			if err != nil {
				errs = append(errs, err)
				ended = true
				break
			}
			if !pop {
				ended = true
				break
			}
			fds := [1]unix.PollFd{{Fd: int32(r.leaf.events), Events: unix.POLLPRI}}
			_, _ = unix.Poll(fds[:], 20)
		}
		if ended {
			break
		}
		select {
		case <-stop:
		case <-r.stopped:
		default:
			continue
		}
		r.killedAs = metrics.StatusCanceled
		break
	}
	if pidfd >= 0 {
		unix.Close(pidfd)
	}
	end := time.Now()
	r.m.sampler.remove(r)
	r.mu.Lock()
	r.finished = true
	r.finalizeLocked(nil, end, 0)
	rec := &r.rec
	if r.killedAs == metrics.StatusCanceled {
		rec.Reason = "watching stopped (duration or cancel) while the target still ran; nothing was killed"
	} else {
		rec.Status = metrics.StatusEnded
		rec.Reason = "the target ended; it is not cgmon's child, so its exit status is unknown"
	}
	if el := end.Sub(r.start); el > 0 {
		if v, ok := rec.Usage.CPUTotal.Get(); ok {
			rec.Usage.CPUAveragePercent = metrics.Measured(float64(v-r.cpuBase)/float64(el)*100, rec.Usage.CPUTotal.Source())
		}
	}
	r.release()
	r.mu.Unlock()
	if len(errs) > 0 && r.err == nil {
		r.err = errors.Join(errs...)
	}
	r.m.untrack(r)
	r.m.record(r.rec)
	close(r.done)
}

// release closes what an attached run holds; nothing is removed.
func (r *run) release() {
	if r.tree != nil {
		_ = r.tree.Close()
	}
	if r.leaf != nil {
		r.leaf.closeFDs()
	}
}
