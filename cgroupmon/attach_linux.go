package cgroupmon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	x, ok, _ := r.readLocked()
	r.mu.Unlock()
	if !ok {
		x.at = time.Now()
	}
	if l := r.leaf; l != nil {
		r.setCapacity(l.capacity())
		r.pressureAtStart()
	} else {
		r.setCapacity(cpuCapacity{cpus: onlineCPUs()})
	}
	r.started(x.at, x.cpu)
	m.sampler.add(r)
	go m.watchAttached(ctx, r, t.Duration, pidfd)
	return &Handle{r}, nil
}

// checkTarget validates t and gives it an id when it has none (a
// container's id is known once its cgroup is found: attachRun gives it).
func (m *Monitor) checkTarget(t *Target) error {
	given := 0
	for _, set := range []bool{t.CgroupPath != "", t.PID != 0, t.ContainerID != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return fmt.Errorf("%w: attach needs exactly one of a cgroup path, a pid or a container id", ErrInvalidSpec)
	}
	if t.PID < 0 || t.Duration < 0 {
		return fmt.Errorf("%w: negative pid or duration", ErrInvalidSpec)
	}
	if t.ContainerID != "" {
		if _, err := containerIDPrefix(t.ContainerID); err != nil {
			return err
		}
		if t.ID == "" {
			return nil
		}
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
	switch {
	case t.ContainerID != "":
		if m.probe.Mount == "" {
			return nil, -1, fmt.Errorf("attach to container %s: %w: no cgroup v2 mount", t.ContainerID, ErrUnavailable)
		}
		path, id, err := findContainerCgroup(m.probe.Mount, t.ContainerID)
		if err != nil {
			return nil, -1, err
		}
		if l, err = openLeaf(path); err != nil {
			return nil, -1, err
		}
		command = "container:" + id
		if t.ID == "" {
			t.ID = "container-" + id[:12]
		}
	case t.CgroupPath != "":
		path, err := m.cgroupDir(t.CgroupPath)
		if err != nil {
			return nil, -1, err
		}
		if l, err = openLeaf(path); err != nil {
			return nil, -1, err
		}
		command = "cgroup:" + path
	default:
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
	if t.ContainerID != "" {
		r.rec.Command = append(r.rec.Command, "cgroup:"+l.path)
	}
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
		psi:   has("cpu.pressure"),
		where: l.path,
	}
	if k.memory {
		k.backend = metrics.BackendCgroup2
	}
	return k
}

// Bounds of the walk that looks for a container's cgroup: how deep below
// the mount and how many cgroups it visits. Kubernetes nests containers
// four levels deep (kubepods.slice/kubepods-burstable.slice/...pod.slice/
// cri-containerd-<id>.scope); a host runs a few thousand cgroups.
const (
	containerWalkDepth   = 12
	containerWalkCgroups = 100000
)

// containerLayouts names, for errors, the cgroup names a container is
// looked for under.
const containerLayouts = "docker-<id>.scope, docker/<id>, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope, libpod_parent/libpod-<id>, kubepods*/.../<id>"

// containerIDPrefix checks a container id or prefix given to Attach and
// returns it without a "<runtime>://" prefix (Kubernetes prints
// "containerd://3f2a...").
func containerIDPrefix(id string) (string, error) {
	if _, rest, ok := strings.Cut(id, "://"); ok {
		id = rest
	}
	if len(id) > 64 || !isHexPrefix(id) {
		return "", fmt.Errorf("%w: container id %q is not an id or a prefix of one (1 to 64 of the digits 0-9a-f)", ErrInvalidSpec, id)
	}
	return id, nil
}

// containerIDOf returns the id of the container whose cgroup is named
// name, below a directory named parent (kube: below a kubepods* cgroup),
// in the layouts of Docker (systemd and cgroupfs drivers), containerd and
// CRI-O under Kubernetes, and Podman. The conmon cgroups Podman and CRI-O
// make beside a container (libpod-conmon-<id>.scope, crio-conmon-<id>.scope)
// are not the container's and do not match.
func containerIDOf(parent, name string, kube bool) (string, bool) {
	for _, l := range [...]struct{ prefix, suffix string }{
		{"docker-", ".scope"},         // Docker, systemd driver
		{"cri-containerd-", ".scope"}, // containerd under Kubernetes, systemd driver
		{"crio-", ".scope"},           // CRI-O, systemd driver
		{"crio-", ""},                 // CRI-O, cgroupfs driver
		{"libpod-", ".scope"},         // Podman, systemd driver (machine.slice)
		{"libpod-", ""},               // Podman, cgroupfs driver (libpod_parent)
	} {
		if rest, ok := strings.CutPrefix(name, l.prefix); ok {
			if id, ok := strings.CutSuffix(rest, l.suffix); ok && isFullContainerID(id) {
				return id, true
			}
		}
	}
	// Docker's cgroupfs driver (/docker/<id>) and containerd's under
	// Kubernetes (kubepods/burstable/pod<uid>/<id>) use the bare id.
	if isFullContainerID(name) && (parent == "docker" || kube) {
		return name, true
	}
	return "", false
}

// containerMatch is a container cgroup whose id starts with the prefix.
type containerMatch struct{ id, dir string }

// findContainerCgroup walks the cgroup v2 tree at mount, breadth first and
// bounded (containerWalkDepth, containerWalkCgroups), for the cgroup of
// the container whose id is idOrPrefix or starts with it, and returns its
// directory and full id. No container runtime is asked. An id that matches
// no container is an error wrapping fs.ErrNotExist; a prefix that matches
// more than one is an error wrapping ErrInvalidSpec that names them.
func findContainerCgroup(mount, idOrPrefix string) (dir, id string, err error) {
	prefix, err := containerIDPrefix(idOrPrefix)
	if err != nil {
		return "", "", err
	}
	type node struct {
		dir   string
		depth int
		kube  bool
	}
	var found []containerMatch
	queue := []node{{dir: filepath.Clean(mount)}}
	seen := 0
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		ents, err := os.ReadDir(n.dir)
		if err != nil {
			if n.depth == 0 {
				return "", "", fmt.Errorf("looking for container %s: %w", prefix, err)
			}
			continue // removed meanwhile, or not readable by this user
		}
		parent := filepath.Base(n.dir)
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			if seen++; seen > containerWalkCgroups {
				return "", "", fmt.Errorf("%w: looking for container %s: the cgroup tree under %s has more than %d cgroups; give the container's cgroup path instead",
					ErrUnavailable, prefix, mount, containerWalkCgroups)
			}
			child := filepath.Join(n.dir, e.Name())
			if cid, ok := containerIDOf(parent, e.Name(), n.kube); ok && strings.HasPrefix(cid, prefix) {
				found = append(found, containerMatch{id: cid, dir: child})
			}
			if n.depth+1 < containerWalkDepth {
				queue = append(queue, node{dir: child, depth: n.depth + 1, kube: n.kube || strings.HasPrefix(e.Name(), "kubepods")})
			}
		}
	}
	switch {
	case len(found) == 1:
		return found[0].dir, found[0].id, nil
	case len(found) == 0:
		return "", "", &containerError{
			msg:  fmt.Sprintf("no container with id %s under %s (looked for %s in %d cgroups)", describePrefix(prefix), mount, containerLayouts, seen),
			kind: fs.ErrNotExist,
		}
	}
	const shown = 10
	var names []string
	for i, f := range found {
		if i == shown {
			names = append(names, fmt.Sprintf("and %d more", len(found)-shown))
			break
		}
		rel, _ := filepath.Rel(mount, f.dir)
		names = append(names, f.id[:12]+" (/"+rel+")")
	}
	what := "is the prefix of"
	if len(prefix) == 64 {
		what = "names"
	}
	return "", "", &containerError{
		msg:  fmt.Sprintf("container id %s %s %d container cgroups: %s; give more of the id", prefix, what, len(found), strings.Join(names, ", ")),
		kind: ErrInvalidSpec,
	}
}

// describePrefix says "3f2a (a prefix)" or the full id.
func describePrefix(p string) string {
	if len(p) == 64 {
		return p
	}
	return p + " (as a prefix)"
}

// containerError is a failure to find a container's cgroup: a message of
// its own, and errors.Is tells its kind (fs.ErrNotExist, ErrInvalidSpec).
type containerError struct {
	msg  string
	kind error
}

func (e *containerError) Error() string { return e.msg }
func (e *containerError) Unwrap() error { return e.kind }
