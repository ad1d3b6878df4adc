package cgroupmon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// leaf is one execution's cgroup v2 directory with the descriptors the
// sampler reads held open, so that a tick is a pread and a parse.
type leaf struct {
	path string
	dir  int // O_RDONLY directory: the CgroupFD for CLONE_INTO_CGROUP; -1 if none

	// Descriptors held open once used, -1 until then.
	cpuStat    int // cpu.stat
	memCurrent int // memory.current (only with the memory controller)
	pidsCurr   int // pids.current (only with the pids controller)
	events     int // cgroup.events
	procs      int // cgroup.procs

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

	buf      [512]byte // for the sampler's reads, under the run's lock
	evBuf    [128]byte // for cgroup.events, read by the waiting goroutine
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

// createLeaf makes root/name (which must not exist yet), applies plan and
// reads back what is in force (limits), and opens the files the sampler
// reads. On error nothing is left behind.
func createLeaf(root, name string, plan *limitPlan, caps leafCaps) (_ *leaf, err error) {
	path := filepath.Join(root, name)
	if filepath.Dir(path) != filepath.Clean(root) {
		return nil, fmt.Errorf("%w: leaf name %q escapes the root", ErrInvalidSpec, name)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup %s: %w", path, err)
	}
	l := &leaf{path: path, dir: -1, cpuStat: -1, memCurrent: -1, pidsCurr: -1, events: -1, procs: -1}
	defer func() {
		if err != nil {
			l.closeFDs()
			_ = os.Remove(path)
		}
	}()
	if l.dir, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		l.dir = -1
		return nil, fmt.Errorf("opening cgroup %s: %w", path, err)
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

// openLeaf opens an existing cgroup for reading only (Attach): nothing is
// created or written; the controllers are those whose files it has.
func openLeaf(path string) (*leaf, error) {
	if _, err := os.Stat(filepath.Join(path, "cgroup.procs")); err != nil {
		if pe, ok := err.(*fs.PathError); ok {
			err = pe.Err // the path is said once
		}
		return nil, fmt.Errorf("%s is not a cgroup v2 directory: %w", path, err)
	}
	l := &leaf{path: path, dir: -1, cpuStat: -1, memCurrent: -1, pidsCurr: -1, events: -1, procs: -1}
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

// pids appends the pids in cgroup.procs to dst, reusing l.procsBuf.
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
	v, digits := 0, 0
	for _, c := range l.procsBuf[:n] {
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

// readFile reads one file of the leaf (for the final, not-per-tick reads).
func (l *leaf) readFile(name string) ([]byte, error) {
	return readCapped(filepath.Join(l.path, name))
}

// countProcs counts the processes in cgroup.procs, without allocating
// once warm.
func (l *leaf) countProcs() (uint64, error) {
	pids, err := l.pids(l.pidsBuf[:0])
	l.pidsBuf = pids
	return uint64(len(pids)), err
}

// kill kills every process in the leaf: with cgroup.kill where the kernel
// has it (5.14), else by freezing the cgroup, sending SIGKILL to each
// process and thawing it. It never waits for a process (exec.Cmd does).
func (l *leaf) kill() error {
	if l.cgroupKill {
		err := os.WriteFile(filepath.Join(l.path, "cgroup.kill"), []byte("1"), 0)
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	freeze := filepath.Join(l.path, "cgroup.freeze")
	frozen := os.WriteFile(freeze, []byte("1"), 0) == nil
	var errs []error
	pids, err := l.pids(nil)
	if err != nil {
		errs = append(errs, err)
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
		}
	}
	if frozen {
		if err := os.WriteFile(freeze, []byte("0"), 0); err != nil {
			errs = append(errs, fmt.Errorf("thaw: %w", err))
		}
	}
	return errors.Join(errs...)
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

// closeDir closes the directory descriptor, which only the start needs.
func (l *leaf) closeDir() {
	if l.dir >= 0 {
		unix.Close(l.dir)
		l.dir = -1
	}
}

func (l *leaf) closeFDs() {
	for _, fd := range []*int{&l.cpuStat, &l.memCurrent, &l.pidsCurr, &l.events, &l.procs} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	l.closeDir()
	if l.devices != nil {
		// The attachment holds the program while the cgroup exists; this
		// descriptor is cgmon's own reference.
		l.devices.Close()
		l.devices = nil
	}
}

// remove closes every descriptor and removes the directory, retrying while
// the kernel still reports it busy (a killed process may take a moment).
func (l *leaf) remove() error {
	l.closeFDs()
	return removeDir(l.path)
}

// removeDir removes a cgroup directory, retrying for a while as long as
// the kernel reports it busy.
func removeDir(path string) error {
	var err error
	for i := 0; i < 100; i++ {
		err = unix.Rmdir(path)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
	return fmt.Errorf("removing cgroup %s: %w", path, err)
}
