package cgroupmon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/internal/proctree"
	"github.com/cgmon/cgmon/metrics"
)

// Attach watches something that already runs, without starting, limiting,
// writing to or killing anything: an existing cgroup (Target.CgroupPath,
// e.g. a container's scope) or a process (Target.PID: its cgroup when that
// cgroup is its own, else its process tree through /proc). It samples on
// the shared ticker until the cgroup is unpopulated, the process ends,
// Target.Duration passes or ctx is canceled, and returns the same record
// as Start. An attached target is not cgmon's child: its exit status is
// not known, and the status is ended (it ended) or canceled (watching
// stopped first). CPU and memory totals of a cgroup are its whole life's,
// since the kernel counts from its creation; the average CPU % covers the
// watch.
func (m *Monitor) Attach(ctx context.Context, t Target) (*Handle, error) {
	if err := m.checkTarget(&t); err != nil {
		return nil, err
	}
	r, pidfd, err := m.attachRun(t)
	if err != nil {
		return nil, err
	}
	if err := m.track(r); err != nil {
		_ = m.release(r)
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		return nil, err
	}
	r.mu.Lock()
	x, _, _ := r.readLocked()
	r.mu.Unlock()
	r.started(time.Now(), x.cpu)
	m.sampler.add(r)
	go m.watchAttached(ctx, r, t.Duration, pidfd)
	return &Handle{r}, nil
}

// checkTarget validates t and gives it an id when it has none.
func (m *Monitor) checkTarget(t *Target) error {
	if (t.CgroupPath == "") == (t.PID == 0) {
		return fmt.Errorf("%w: attach needs exactly one of a cgroup path or a pid", ErrInvalidSpec)
	}
	if t.PID < 0 || t.Duration < 0 {
		return fmt.Errorf("%w: negative pid or duration", ErrInvalidSpec)
	}
	if t.ID == "" {
		t.ID = defaultID("attach", time.Now())
	}
	return validateID(t.ID)
}

// attachRun makes the run of an attached target: the target's cgroup,
// with a procfs tree when that cgroup has no memory controller, or the
// process tree alone. For a pid it returns a pidfd that tells its end.
func (m *Monitor) attachRun(t Target) (_ *run, pidfd int, err error) {
	pidfd = -1
	var l *leaf
	var command string
	if t.CgroupPath != "" {
		path, err := m.cgroupDir(t.CgroupPath)
		if err != nil {
			return nil, -1, err
		}
		if l, err = openLeaf(path); err != nil {
			return nil, -1, err
		}
		command = "cgroup:" + path
	} else {
		if pidfd, err = unix.PidfdOpen(t.PID, 0); err != nil {
			return nil, -1, fmt.Errorf("attach to pid %d: %w", t.PID, err)
		}
		command = "pid:" + strconv.Itoa(t.PID)
		if path, ok := m.ownCgroupOf(t.PID); ok {
			l, _ = openLeaf(path) // else the process tree alone
		}
	}
	k := hostKind{backend: metrics.BackendProcfs}
	if l != nil {
		k = l.kind()
	}
	r := newRun(Spec{ID: t.ID, Language: t.Language, KeepSamples: t.KeepSamples}, sourcesFor(k), k.backend)
	r.rec.Command, r.rec.ExitCode = []string{command}, -1
	r.leaf, r.attached, r.stop, r.targetPID = l, true, make(chan struct{}), t.PID
	if l == nil || !l.memory {
		opts := proctree.TreeOptions{}
		pid := t.PID
		if l != nil {
			opts.Members, pid = l.allPids, 0
		}
		r.useTree(m.procfs.NewTree(pid, opts))
	}
	return r, pidfd, nil
}

// cgroupDir resolves a cgroup path given to Attach: a path under the
// cgroup v2 mount as it is, any other as relative to the mount, the way
// /proc/PID/cgroup prints it ("/system.slice/docker-3f2a.scope").
func (m *Monitor) cgroupDir(p string) (string, error) {
	mount := m.probe.Mount
	if mount == "" {
		return "", fmt.Errorf("attach to cgroup %s: %w: no cgroup v2 mount", p, ErrUnavailable)
	}
	path := filepath.Clean(p)
	if !filepath.IsAbs(path) || !withinDir(mount, path) {
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
		st, err := proctree.ParseStat(b)
		if err != nil {
			return false
		}
		p = st.PPID
	}
	return false
}

// watchAttached waits for the target to end (or the watch to stop) and
// publishes the record; it never writes to the target.
func (m *Monitor) watchAttached(ctx context.Context, r *run, d time.Duration, pidfd int) {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	err := r.waitTarget(ctx, pidfd)
	if pidfd >= 0 {
		unix.Close(pidfd)
	}
	end := time.Now()
	m.sampler.remove(r)
	rec, ferr := r.finalRecord(nil, end, 0)
	if rec.Status == metrics.StatusCanceled {
		rec.Reason = "watching stopped (duration or cancel) while the target still ran; nothing was killed"
	} else {
		rec.Status = metrics.StatusEnded
		rec.Reason = "the target ended; it is not cgmon's child, so its exit status is unknown"
	}
	m.finish(r, rec, errors.Join(err, ferr, m.release(r)))
}

// waitTarget polls until the target ends (its pidfd is readable, or its
// cgroup is unpopulated) or the watch stops (ctx, or Handle.Kill).
func (r *run) waitTarget(ctx context.Context, pidfd int) error {
	for {
		if pidfd >= 0 {
			fds := [1]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds[:], 20)
			if err != nil && !errors.Is(err, unix.EINTR) {
				return err
			}
			if n > 0 {
				return nil
			}
		} else {
			pop, err := r.leaf.populated()
			if err != nil || !pop {
				return err
			}
			fds := [1]unix.PollFd{{Fd: int32(r.leaf.events), Events: unix.POLLPRI}}
			_, _ = unix.Poll(fds[:], 20)
		}
		select {
		case <-ctx.Done():
		case <-r.stop:
		default:
			continue
		}
		r.stoppedWatching()
		return nil
	}
}

// kind is the kind of host an attached cgroup is: the controllers and
// peak files it has.
func (l *leaf) kind() hostKind {
	has := func(f string) bool {
		_, err := os.Stat(filepath.Join(l.path, f))
		return err == nil
	}
	k := hostKind{
		backend: metrics.BackendHybrid,
		cpu:     has("cpu.max"), memory: l.memory, pids: l.pidsCtl, io: l.io,
		memoryPeak: has("memory.peak"), pidsPeak: has("pids.peak"),
		where: l.path,
	}
	if k.memory {
		k.backend = metrics.BackendCgroup2
	}
	return k
}
