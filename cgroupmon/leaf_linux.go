package cgroupmon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

// leaf is one execution's cgroup v2 directory with the descriptors the
// sampler reads held open, so that a tick is a pread and a parse.
type leaf struct {
	path string
	// dir is the directory's descriptor, held from the leaf's creation to
	// its removal: it carries the owner's lock (owner_linux.go), and it is
	// the CgroupFD of CLONE_INTO_CGROUP. -1 for an attached cgroup, which
	// is not cgmon's.
	dir int

	// Descriptors held open once used, -1 until then.
	cpuStat    int // cpu.stat
	memCurrent int // memory.current (only with the memory controller)
	pidsCurr   int // pids.current (only with the pids controller)
	events     int // cgroup.events
	procs      int // cgroup.procs
	stat       int // cgroup.stat (nr_descendants: cgroups the workload made)
	memStat    int // memory.stat (only with the memory controller)
	// pressure are cpu.pressure, memory.pressure and io.pressure (PSI).
	pressure [numPressure]int

	leafCaps

	// limits are the limits in force, as read back after they were
	// applied; nil when none were asked for.
	limits *specs.LinuxResources
	// devices is the device program attached to the cgroup, nil if none;
	// closed with the other descriptors.
	devices *ebpf.Program
	// moveIn: the limits take effect only on a process moved in through
	// cgroup.procs, so the start must not use CLONE_INTO_CGROUP (see
	// limitPlan.moveIn).
	moveIn bool

	buf      [512]byte  // for the sampler's reads, under the run's lock
	statHead [64]byte   // the head of memory.stat: its anon line
	evBuf    [128]byte  // for cgroup.events, read by the waiting goroutine
	statBuf  [1024]byte // for cgroup.stat
	procsBuf []byte
	pidsBuf  []int // for counting cgroup.procs without allocating
}

// leafCaps are what a leaf's cgroup offers.
type leafCaps struct {
	memory     bool // the memory controller is enabled: memory.current exists
	pidsCtl    bool // the pids controller is enabled: pids.current exists
	io         bool // the io controller is enabled: io.stat exists
	cgroupKill bool // cgroup.kill exists (Linux 5.14)
}

// newLeaf returns a leaf of path with no descriptor open.
func newLeaf(path string) *leaf {
	l := &leaf{path: path, dir: -1, cpuStat: -1, memCurrent: -1, pidsCurr: -1, events: -1, procs: -1, stat: -1, memStat: -1}
	for i := range l.pressure {
		l.pressure[i] = -1
	}
	return l
}

// createLeaf makes root/name (which must not exist yet), locks and marks
// it as this monitor's (owner_linux.go), applies plan and reads back what
// is in force (limits), and keeps its descriptor for CLONE_INTO_CGROUP. On
// error nothing is left behind.
func createLeaf(root, name string, plan *limitPlan, caps leafCaps) (_ *leaf, err error) {
	path := filepath.Join(root, name)
	if filepath.Dir(path) != filepath.Clean(root) {
		return nil, fmt.Errorf("%w: leaf name %q escapes the root", ErrInvalidSpec, name)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup %s: %w", path, err)
	}
	l := newLeaf(path)
	defer func() {
		if err != nil {
			l.closeFDs()
			_ = os.Remove(path)
			l.unlock()
		}
	}()
	if l.dir, err = openDir(path); err != nil {
		l.dir = -1
		return nil, fmt.Errorf("opening cgroup %s: %w", path, err)
	}
	// The lock before the mark: a reaper looks only at marked leaves, and
	// finds every marked leaf of a live monitor locked.
	if held, err := lockFD(l.dir); err != nil || held {
		return nil, fmt.Errorf("locking cgroup %s: %w", path, lockErr(err, held))
	}
	if err := markFD(l.dir, markLeaf); err != nil && !errors.Is(err, errNoXattr) {
		return nil, fmt.Errorf("marking cgroup %s as cgmon's: %w", path, err)
	}
	if !plan.empty() {
		if l.limits, l.devices, err = plan.apply(path, l.dir); err != nil {
			return nil, err
		}
		l.moveIn = plan.moveIn()
	}
	l.leafCaps = caps
	return l, nil
}

// lockErr is err, or for a lock found held, that.
func lockErr(err error, held bool) error {
	if held {
		return errors.New("another process holds its lock")
	}
	return err
}

// openLeaf opens an existing cgroup for reading only (Attach): nothing is
// created or written; the controllers are those whose files it has.
func openLeaf(path string) (*leaf, error) {
	if _, err := os.Stat(filepath.Join(path, "cgroup.procs")); err != nil {
		if pe, ok := err.(*fs.PathError); ok {
			err = pe.Err // the path is said once
		}
		return nil, fmt.Errorf("%s is not a cgroup v2 directory: %w", path, err)
	}
	l := newLeaf(path)
	has := func(f string) bool {
		_, err := os.Stat(filepath.Join(path, f))
		return err == nil
	}
	l.memory, l.pidsCtl, l.io, l.cgroupKill = has("memory.current"), has("pids.current"), has("io.stat"), has("cgroup.kill")
	if !has("cpu.stat") || !has("cgroup.events") {
		return nil, fmt.Errorf("%s lacks cpu.stat or cgroup.events: %w", path, ErrUnavailable)
	}
	return l, nil
}

// fd returns the descriptor in *fd, opening file on first use: a run that
// ends before its first tick never opens the files the sampler reads.
func (l *leaf) fd(fd *int, file string) (int, error) {
	if *fd >= 0 {
		return *fd, nil
	}
	f, err := unix.Open(l.path+"/"+file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening %s/%s: %w", l.path, file, err)
	}
	*fd = f
	return f, nil
}

// pread reads a whole small kernel file from offset 0 into l.buf, through
// the descriptor held in *fd (opened on first use).
func (l *leaf) pread(fdp *int, file string) ([]byte, error) {
	fd, err := l.fd(fdp, file)
	if err != nil {
		return nil, err
	}
	n, err := unix.Pread(fd, l.buf[:], 0)
	if err != nil {
		return nil, err
	}
	if n == len(l.buf) {
		return nil, fmt.Errorf("kernel file larger than %d bytes: %w", len(l.buf), errMalformed)
	}
	return l.buf[:n], nil
}

func (l *leaf) readCPU() (cpuStat, error) {
	b, err := l.pread(&l.cpuStat, "cpu.stat")
	if err != nil {
		return cpuStat{}, fmt.Errorf("cpu.stat: %w", err)
	}
	return parseCPUStat(b)
}

func (l *leaf) readMemoryCurrent() (uint64, error) {
	b, err := l.pread(&l.memCurrent, "memory.current")
	if err != nil {
		return 0, fmt.Errorf("memory.current: %w", err)
	}
	return parseUint(b)
}

func (l *leaf) readPidsCurrent() (uint64, error) {
	b, err := l.pread(&l.pidsCurr, "pids.current")
	if err != nil {
		return 0, fmt.Errorf("pids.current: %w", err)
	}
	return parseUint(b)
}

// readAnon reads the anon line of memory.stat, the first the kernel
// writes (Linux 4.5 and later), through a held descriptor and without
// reading the rest: the anonymous memory of the cgroup, in bytes.
func (l *leaf) readAnon() (uint64, error) {
	fd, err := l.fd(&l.memStat, "memory.stat")
	if err != nil {
		return 0, err
	}
	n, err := unix.Pread(fd, l.statHead[:], 0)
	if err != nil {
		return 0, fmt.Errorf("memory.stat: %w", err)
	}
	return parseAnonHead(l.statHead[:n])
}

// pressureFiles are the pressure stall files of a cgroup, in the order of
// leaf.pressure.
var pressureFiles = [numPressure]string{"cpu.pressure", "memory.pressure", "io.pressure"}

// The indexes of pressureFiles.
const (
	pressureCPU = iota
	pressureMemory
	pressureIO
	numPressure
)

// pressureMetrics and pressureSources are the metric and the source of
// each of pressureFiles.
var (
	pressureMetrics = [numPressure]metrics.Metric{metrics.MetricCPUWait, metrics.MetricMemoryWait, metrics.MetricIOWait}
	pressureSources = [numPressure]metrics.Source{metrics.SourceCgroupCPUPressure, metrics.SourceCgroupMemoryPressure, metrics.SourceCgroupIOPressure}
)

// cpuCapacity is the CPU time an execution can use: cpus CPUs at once (the
// online ones, fewer where its cpuset says so) and, where cpu.max sets a
// quota, quota (plus burst) per period. The zero cpuCapacity allows any.
type cpuCapacity struct {
	cpus                 int
	quota, burst, period time.Duration
}

// allows reports whether cpu of CPU time can have been used over dt of wall
// time.
func (c cpuCapacity) allows(cpu, dt time.Duration) bool {
	if c.cpus <= 0 {
		return true
	}
	limit := float64(c.cpus) * float64(dt)
	if c.quota > 0 && c.period > 0 {
		// dt spans at most dt/period+1 periods, each giving the quota and
		// at most once the burst.
		limit = min(limit, (float64(dt)/float64(c.period)+1)*float64(c.quota)+float64(c.burst))
	}
	return float64(cpu) <= limit
}

// onlineCPUs is the number of online CPUs (/sys/devices/system/cpu/online),
// or what the Go runtime may use where that cannot be read.
var onlineCPUs = sync.OnceValue(func() int {
	b, err := readCapped("/sys/devices/system/cpu/online")
	if err == nil {
		if n, err := parseCPUList("online", b); err == nil && n > 0 {
			return n
		}
	}
	return runtime.NumCPU()
})

// capacity is the CPU time the leaf's processes can use: the online CPUs,
// its effective cpuset where the cpuset controller gives one, and its
// cpu.max quota where the cpu controller sets one.
func (l *leaf) capacity() cpuCapacity {
	c := cpuCapacity{cpus: onlineCPUs()}
	if b, err := l.readFile("cpuset.cpus.effective"); err == nil {
		if n, err := parseCPUList("cpuset.cpus.effective", b); err == nil && n > 0 {
			c.cpus = min(c.cpus, n)
		}
	}
	if b, err := l.readFile("cpu.max"); err == nil {
		if q, p, err := parseCPUMax(b); err == nil && q > 0 {
			c.quota, c.period = time.Duration(q)*time.Microsecond, time.Duration(p)*time.Microsecond
			if b, err := l.readFile("cpu.max.burst"); err == nil {
				if v, err := parseUint(b); err == nil {
					c.burst = time.Duration(v) * time.Microsecond
				}
			}
		}
	}
	return c
}

// readPressure reads the "some" total of pressure file i, in microseconds,
// through a held descriptor.
func (l *leaf) readPressure(i int) (uint64, error) {
	b, err := l.pread(&l.pressure[i], pressureFiles[i])
	if err != nil {
		return 0, fmt.Errorf("%s: %w", pressureFiles[i], err)
	}
	p, err := parsePSI(b)
	if err != nil {
		return 0, err
	}
	return p.Some.Total, nil
}

func (l *leaf) populated() (bool, error) {
	fd, err := l.fd(&l.events, "cgroup.events")
	if err != nil {
		return false, err
	}
	n, err := unix.Pread(fd, l.evBuf[:], 0)
	if err != nil {
		return false, fmt.Errorf("cgroup.events: %w", err)
	}
	if n == len(l.evBuf) {
		return false, fmt.Errorf("cgroup.events larger than %d bytes: %w", len(l.evBuf), errMalformed)
	}
	ev, err := parseCgroupEvents(l.evBuf[:n])
	return ev.Populated, err
}

// pids appends the pids in the leaf's own cgroup.procs to dst, reusing
// l.procsBuf; see allPids for the cgroups below it.
func (l *leaf) pids(dst []int) ([]int, error) {
	if l.procsBuf == nil {
		l.procsBuf = make([]byte, 4096)
	}
	fd, err := l.fd(&l.procs, "cgroup.procs")
	if err != nil {
		return dst, err
	}
	n := 0
	for {
		m, err := unix.Pread(fd, l.procsBuf[n:], int64(n))
		if err != nil {
			return dst, fmt.Errorf("cgroup.procs: %w", err)
		}
		n += m
		if m == 0 || n < len(l.procsBuf) {
			break
		}
		if len(l.procsBuf) >= 4<<20 {
			return dst, fmt.Errorf("cgroup.procs larger than 4 MiB: %w", errMalformed)
		}
		l.procsBuf = append(l.procsBuf, make([]byte, len(l.procsBuf))...)
	}
	return appendPids(dst, l.procsBuf[:n])
}

// appendPids parses a cgroup.procs file (one decimal pid a line) and
// appends its pids to dst.
func appendPids(dst []int, b []byte) ([]int, error) {
	v, digits := 0, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v*10 + int(c-'0')
			digits++
			if digits > 10 {
				return dst, fmt.Errorf("cgroup.procs: pid too long: %w", errMalformed)
			}
		case c == '\n':
			if digits > 0 {
				dst = append(dst, v)
			}
			v, digits = 0, 0
		default:
			return dst, fmt.Errorf("cgroup.procs: unexpected byte %q: %w", c, errMalformed)
		}
	}
	if digits > 0 {
		dst = append(dst, v)
	}
	return dst, nil
}

// descendants returns how many cgroups live below the leaf (cgroup.stat's
// nr_descendants): cgroups the workload made inside its own.
func (l *leaf) descendants() (uint64, error) {
	fd, err := l.fd(&l.stat, "cgroup.stat")
	if err != nil {
		return 0, err
	}
	n, err := unix.Pread(fd, l.statBuf[:], 0)
	if err != nil {
		return 0, fmt.Errorf("cgroup.stat: %w", err)
	}
	if n == len(l.statBuf) {
		return 0, fmt.Errorf("cgroup.stat larger than %d bytes: %w", len(l.statBuf), errMalformed)
	}
	return parseNrDescendants(l.statBuf[:n])
}

// allPids appends to dst the pids of the leaf and of every cgroup below
// it. With no cgroup below (the common case) it costs two preads on held
// descriptors.
func (l *leaf) allPids(dst []int) ([]int, error) {
	dst, err := l.pids(dst)
	if err != nil {
		return dst, err
	}
	n, err := l.descendants()
	if err != nil || n == 0 {
		return dst, err
	}
	return subtreePids(l.path, dst, false)
}

// subtreePids appends the pids of every cgroup below dir (and of dir
// itself when self is true), walking the tree with plain reads: it serves
// the rare leaf the workload divided, and the reaping of stale ones. A
// cgroup the workload made unreadable (chmod 000) is made readable again
// first: cgmon or root owns it.
func subtreePids(dir string, dst []int, self bool) ([]int, error) {
	var errs []error
	if self {
		b, err := readOwned(filepath.Join(dir, "cgroup.procs"))
		if err == nil {
			dst, err = appendPids(dst, b)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	ents, err := readDirOwned(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range ents {
		if e.IsDir() {
			dst, err = subtreePids(filepath.Join(dir, e.Name()), dst, true)
			errs = append(errs, err)
		}
	}
	return dst, errors.Join(errs...)
}

// readOwned reads a kernel file, first giving its owner read permission
// back when it was taken away.
func readOwned(path string) ([]byte, error) {
	b, err := readCapped(path)
	if errors.Is(err, fs.ErrPermission) && os.Chmod(path, 0o644) == nil {
		b, err = readCapped(path)
	}
	return b, err
}

// readDirOwned lists a directory, first giving its owner access back when
// it was taken away.
func readDirOwned(dir string) ([]os.DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrPermission) && os.Chmod(dir, 0o755) == nil {
		ents, err = os.ReadDir(dir)
	}
	return ents, err
}

// readFile reads one file of the leaf (for the final, not-per-tick reads).
func (l *leaf) readFile(name string) ([]byte, error) {
	return readCapped(filepath.Join(l.path, name))
}

// countProcs counts the processes in the leaf and the cgroups below it,
// without allocating once warm.
func (l *leaf) countProcs() (uint64, error) {
	pids, err := l.allPids(l.pidsBuf[:0])
	l.pidsBuf = pids
	return uint64(len(pids)), err
}

// kill kills every process in the leaf and in the cgroups below it
// (frozen ones too): with cgroup.kill where the kernel has it (5.14), else
// by freezing the leaf, sending SIGKILL to each process and thawing it. It
// returns the pids it found to kill, and never waits for one.
func (l *leaf) kill() ([]int, error) {
	if l.cgroupKill {
		pids, _ := l.allPids(nil)
		err := os.WriteFile(filepath.Join(l.path, "cgroup.kill"), []byte("1"), 0)
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return pids, err
		}
	}
	return freezeKill(l.path)
}

// freezeKill kills every process in the cgroup dir and below it without
// cgroup.kill: it freezes dir (which freezes the cgroups below it), sends
// SIGKILL to each process (a fatal signal ends even a frozen task of
// cgroup v2), and thaws dir. It returns the pids it signalled.
func freezeKill(dir string) ([]int, error) {
	freeze := filepath.Join(dir, "cgroup.freeze")
	frozen := os.WriteFile(freeze, []byte("1"), 0) == nil
	var errs []error
	pids, err := subtreePids(dir, nil, true)
	if err != nil {
		errs = append(errs, err)
	}
	killed := pids[:0]
	for _, pid := range pids {
		switch err := unix.Kill(pid, unix.SIGKILL); {
		case err == nil:
			killed = append(killed, pid)
		case !errors.Is(err, unix.ESRCH):
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
		}
	}
	if frozen {
		if err := os.WriteFile(freeze, []byte("0"), 0); err != nil {
			errs = append(errs, fmt.Errorf("thaw: %w", err))
		}
	}
	return killed, errors.Join(errs...)
}

// killAndWait kills every process of the leaf and waits until it is
// empty, killing again while it is not (without cgroup.kill a process may
// fork between the freeze and the kill), until ctx ends. It returns how
// many distinct processes it killed.
func (l *leaf) killAndWait(ctx context.Context) (killed int, err error) {
	seen := map[int]bool{}
	for {
		pids, kerr := l.kill()
		for _, p := range pids {
			if !seen[p] {
				seen[p] = true
				killed++
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err = l.waitEmpty(wctx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return killed, errors.Join(kerr, err)
		}
	}
}

// waitEmpty waits until cgroup.events says "populated 0", polling the
// events file (the kernel signals changes with POLLPRI) or until ctx ends.
func (l *leaf) waitEmpty(ctx context.Context) error {
	for {
		pop, err := l.populated()
		if err != nil {
			return err
		}
		if !pop {
			return nil
		}
		fds := [1]unix.PollFd{{Fd: int32(l.events), Events: unix.POLLPRI}}
		if _, err := unix.Poll(fds[:], 20); err != nil && !errors.Is(err, unix.EINTR) {
			// Fall back to plain polling of the file.
			time.Sleep(5 * time.Millisecond)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// unlock closes the directory's descriptor, and so drops the owner's lock.
func (l *leaf) unlock() {
	if l.dir >= 0 {
		unix.Close(l.dir)
		l.dir = -1
	}
}

// closeFDs closes the descriptors of the files the sampler and the end
// of the run read, and cgmon's reference to the device program; the
// directory's (the lock) stays open until removal.
func (l *leaf) closeFDs() {
	for _, fd := range []*int{&l.cpuStat, &l.memCurrent, &l.pidsCurr, &l.events, &l.procs, &l.stat, &l.memStat, &l.pressure[0], &l.pressure[1], &l.pressure[2]} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	if l.devices != nil {
		// The attachment holds the program while the cgroup exists; this
		// descriptor is cgmon's own reference.
		l.devices.Close()
		l.devices = nil
	}
}

// remove closes every descriptor and removes the directory and whatever
// cgroups the workload made below it, bottom-up, once: a leaf that cannot
// be removed now (a process that does not die) is left, unlocked, to the
// next monitor's reaping, and the error names it.
func (l *leaf) remove() error {
	l.closeFDs()
	err := removeTree(l.path)
	l.unlock()
	return err
}

// removeTree removes the cgroup dir and every cgroup below it, bottom-up,
// with one rmdir each: no retry loop. A cgroup still holding a process
// stays, and the error names it.
func removeTree(dir string) error {
	err := unix.Rmdir(dir)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENOTEMPTY) {
		ents, _ := readDirOwned(dir)
		var errs []error
		sub := false
		for _, e := range ents {
			if e.IsDir() {
				sub = true
				errs = append(errs, removeTree(filepath.Join(dir, e.Name())))
			}
		}
		if sub {
			if err = unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
				return nil
			}
		}
		if e := errors.Join(errs...); e != nil {
			return e
		}
	}
	return fmt.Errorf("removing cgroup %s: %w", dir, err)
}
