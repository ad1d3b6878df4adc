//go:build linux

package proctree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

// procState is where a tracked process is in its life.
type procState uint8

const (
	stLive     procState = iota // running or sleeping
	stZombie                    // exited, not yet reaped
	stVanished                  // reaped by someone else (its stat is gone)
	stReaped                    // reaped by this process; ru* are final
)

// proc is what a Tree knows of one process.
type proc struct {
	pid, ppid, pgrp, sid int
	// start is the process's start time in ticks since boot: with pid, its
	// identity.
	start uint64
	// statFd and ioFd are held open for pread; -1 when closed.
	statFd, ioFd int
	// kids are the held children descriptors of the process's threads,
	// sorted by tid, for the walk (see Tree.childrenOf); listed is the
	// Sample generation that last listed its threads (0: never), and
	// threads the thread count its stat showed at the last reading.
	kids    []kid
	listed  uint64
	threads int
	// utime and stime are the last reading, in ticks of 1/userHZ s.
	utime, stime uint64
	// rss is the last reading, in bytes.
	rss  uint64
	io   procIO
	ioOK bool
	// hwm is VmHWM at the last Snapshot, in bytes.
	hwm   uint64
	hwmOK bool
	state procState
	// ruUser, ruSys and ruMaxRSS (bytes) come from wait4 when stReaped.
	ruUser, ruSys time.Duration
	ruMaxRSS      uint64
	// seen is the Sample generation that last reached this process.
	seen uint64
	// signalled is the Kill generation that last signalled it.
	signalled uint64
}

// dead reports whether the process has exited.
func (p *proc) dead() bool { return p.state != stLive }

// Tree tracks the processes of one execution. Its methods are safe for
// concurrent use (the Reaper calls Owns and Reaped from its goroutine).
type Tree struct {
	fs   FS
	opts TreeOptions
	// main is the execution's main pid; mainPgrp its process group when
	// that is not this process's own (else 0: never signalled as a group).
	main, mainPgrp int
	// start is the main process's start time in ticks since boot.
	start             uint64
	selfPgrp, selfSid int

	mu      sync.Mutex
	procs   map[int]*proc
	retired []*proc // records of pids reused by another process
	gen     uint64
	killGen uint64
	// killed holds the pids the last Kill signalled.
	killed []int
	// rejected holds children of this process checked and found not to
	// belong to the tree: pid -> start time.
	rejected map[int]uint64

	ls       lister
	path     pathBuf
	buf      []byte
	pids     []int
	queue    []int
	marker   []byte
	peakRSS  uint64
	peakProc int
	sampled  bool
	ioErr    error
	closed   bool
	// died is set when a member exited since the last orphan scan.
	died bool
	// protected is the protects method of the Reaper the tree is
	// registered with, nil if none: the main processes it protects are
	// other executions', never orphans. (A func, not the Reaper, so that
	// the tree's file does not depend on the reaper's.)
	protected func(pid int) bool
}

// orphanEvery is how often (in samples) a Tree looks for orphans among
// this process's children when no member was seen to die.
const orphanEvery = 10

// relistEvery is how often (in samples) the walk lists again the threads
// of a member that has more than one, even when their count did not
// change: one thread may have ended and another started in between.
const relistEvery = 10

// NewTree starts tracking the processes of one execution whose main process
// is pid. The main process should be in a process group of its own
// (SysProcAttr.Setpgid) so that Kill can signal the group.
func (fs FS) NewTree(pid int, opts TreeOptions) *Tree {
	t := &Tree{
		fs: fs, opts: opts, main: pid,
		selfPgrp: unix.Getpgrp(),
		procs:    make(map[int]*proc),
		rejected: make(map[int]uint64),
		// buf is made by the first read (preadAll): a run that ends
		// before its first sample never needs it.
	}
	t.selfSid, _ = unix.Getsid(0)
	if opts.Marker != "" {
		t.marker = append([]byte(opts.Marker), 0)
	}
	if opts.Members != nil && opts.StartTicks != 0 {
		t.start = opts.StartTicks
		return t
	}
	// The main process has done no IO yet: its /proc/PID/io is opened at
	// the first sample, not here (a run that ends before one never pays
	// for opening and closing it).
	if p, err := t.openStat(pid); err == nil {
		t.procs[pid] = p
		t.start = p.start
		if p.pgrp != t.selfPgrp {
			t.mainPgrp = p.pgrp
		}
	} else {
		// The main process is already gone: anything started from now on
		// may be its.
		t.start = BootTicks()
	}
	return t
}

// BootTicks is now in clock ticks since boot, rounded down, as the kernel
// gives a process's start time; 0 if the clock cannot be read.
func BootTicks() uint64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	return uint64(ts.Nano() / (1e9 / userHZ))
}

// open opens pid's stat (and io), reads them and returns a new live record.
func (t *Tree) open(pid int) (*proc, error) {
	p, err := t.openStat(pid)
	if err == nil {
		t.readIO(p)
	}
	return p, err
}

// openStat is open without /proc/PID/io.
func (t *Tree) openStat(pid int) (*proc, error) {
	fd, err := openPath(t.path.pid(t.fs.root, pid, "stat"), 0)
	if err != nil {
		return nil, err
	}
	p := &proc{pid: pid, statFd: fd, ioFd: -1}
	if err := t.readStat(p, true); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// read refreshes p from its held stat fd and io fd (opening io on first
// use). first says p is new and takes its identity from what it reads.
func (t *Tree) read(p *proc, first bool) error {
	if err := t.readStat(p, first); err != nil {
		return err
	}
	t.readIO(p)
	return nil
}

// readStat is read without /proc/PID/io.
func (t *Tree) readStat(p *proc, first bool) error {
	b, err := preadAll(p.statFd, t.buf)
	t.buf = b
	if err == nil && len(b) == 0 {
		err = unix.ESRCH
	}
	if err != nil {
		return err
	}
	st, err := ParseStat(b)
	if err != nil {
		return fmt.Errorf("procfallback: /proc/%d/stat: %w", p.pid, err)
	}
	if first {
		p.start = st.StartTimeTicks
	} else if st.StartTimeTicks != p.start {
		return errReused
	}
	p.ppid, p.pgrp, p.sid = st.PPID, st.PGRP, st.Session
	p.threads = st.NumThreads
	p.utime, p.stime = st.UTimeTicks, st.STimeTicks
	p.rss = 0
	if st.RSSPages > 0 {
		p.rss = uint64(st.RSSPages) * t.fs.pageSize
	}
	p.state = stLive
	if st.State == 'Z' || st.State == 'X' {
		p.state = stZombie
		p.rss = 0
	}
	return nil
}

// errReused says a held stat fd now shows another process (fixture roots
// only: on a real /proc the fd of a reaped process fails with ESRCH).
var errReused = errors.New("pid reused")

// readIO refreshes p's /proc/PID/io reading, opening it on first use.
func (t *Tree) readIO(p *proc) {
	if p.ioFd < 0 {
		if t.ioErr != nil && !p.ioOK && p.pid != t.main {
			return // unreadable on this host; tried already
		}
		fd, err := openPath(t.path.pid(t.fs.root, p.pid, "io"), 0)
		if err != nil {
			if !gone(err) {
				t.ioErr = fmt.Errorf("/proc/%d/io: %w", p.pid, err)
			}
			return
		}
		p.ioFd = fd
	}
	b, err := preadAll(p.ioFd, t.buf)
	t.buf = b
	if err != nil || len(b) == 0 {
		if err != nil && !gone(err) {
			t.ioErr = fmt.Errorf("/proc/%d/io: %w", p.pid, err)
		}
		return
	}
	io, err := parseProcIO(b)
	if err != nil {
		t.ioErr = fmt.Errorf("/proc/%d/io: %w", p.pid, err)
		return
	}
	p.io, p.ioOK = io, true
}

// close releases p's fds.
func (p *proc) close() {
	if p.statFd >= 0 {
		unix.Close(p.statFd)
		p.statFd = -1
	}
	if p.ioFd >= 0 {
		unix.Close(p.ioFd)
		p.ioFd = -1
	}
	p.closeKids()
}

// closeKids releases p's children descriptors; the walk lists its threads
// again if it needs them.
func (p *proc) closeKids() {
	p.kids = closeKids(p.kids)
	p.listed = 0
}

// refresh re-reads every live record; a process that is gone becomes
// vanished and loses its fds.
func (t *Tree) refresh() error {
	var errs error
	for pid, p := range t.procs {
		if p.state != stLive && p.state != stZombie {
			continue
		}
		was := p.state
		err := t.read(p, false)
		switch {
		case err == nil:
			if p.state == stZombie && was != stZombie {
				t.died = true
				p.closeKids() // a zombie's children went to a reaper
			}
		case errors.Is(err, errReused):
			t.died = true
			// Another process has the pid: keep the old record for the
			// account and track the new one.
			p.state = stVanished
			q := &proc{pid: pid, statFd: p.statFd, ioFd: -1}
			p.statFd = -1
			p.close()
			if t.read(q, true) == nil {
				t.procs[pid] = q
			} else {
				q.close()
				t.procs[pid] = q
				q.state = stVanished
			}
			t.retired = append(t.retired, p)
		case gone(err):
			p.state = stVanished
			p.close()
			t.died = true
		default:
			p.state = stVanished
			p.close()
			errs = errors.Join(errs, err)
		}
	}
	return errs
}

// track makes pid a member and returns its record, or nil when it is gone.
func (t *Tree) track(pid int) (*proc, error) {
	if pid <= 0 || pid == t.fs.self {
		return nil, nil
	}
	if p := t.procs[pid]; p != nil && !p.dead() || p != nil && p.state == stZombie {
		return p, nil
	}
	q, err := t.open(pid)
	if err != nil {
		if gone(err) {
			return nil, nil
		}
		return nil, err
	}
	if old := t.procs[pid]; old != nil {
		t.retired = append(t.retired, old)
	}
	t.procs[pid] = q
	return q, nil
}

// discover finds the members: from opts.Members, or by walking children
// from every live member and adopting orphans re-parented to this process.
func (t *Tree) discover() error {
	t.gen++
	if t.opts.Members != nil {
		var err error
		t.pids, err = t.opts.Members(t.pids[:0])
		if err != nil {
			return fmt.Errorf("procfallback: members: %w", err)
		}
		var errs error
		for _, pid := range t.pids {
			if p, err := t.track(pid); err != nil {
				errs = errors.Join(errs, err)
			} else if p != nil {
				p.seen = t.gen
			}
		}
		return errs
	}
	t.queue = t.queue[:0]
	for pid, p := range t.procs {
		if p.state == stLive {
			p.seen = t.gen
			t.queue = append(t.queue, pid)
		}
	}
	var errs error
	// Orphans come back to this process only when a process dies; scan
	// for them when a member died since the last scan, and every
	// orphanEvery samples for those whose parent died unseen.
	if t.died || t.gen%orphanEvery == 1 {
		t.died = false
		errs = t.adoptOrphans()
	}
	for i := 0; i < len(t.queue); i++ {
		var err error
		t.pids, err = t.childrenOf(t.procs[t.queue[i]], t.pids[:0])
		errs = errors.Join(errs, err)
		for _, c := range t.pids {
			if p := t.procs[c]; p != nil && p.seen == t.gen {
				continue
			}
			p, err := t.track(c)
			if err != nil {
				errs = errors.Join(errs, err)
				continue
			}
			if p != nil {
				p.seen = t.gen
				t.queue = append(t.queue, c)
			}
		}
	}
	return errs
}

// childrenOf appends the children of the live member p to dst, read by
// pread from the children files of its threads, which are held open
// between samples as its stat is. Its threads are listed again (an open of
// the task directory, a getdents and an open per new thread, several times
// the cost of the reads) only when the thread count of its last stat
// differs from the number held, or, for a process of several threads,
// every relistEvery samples. One thread cannot take another's place
// unseen in a process of one: a thread group's leader stays listed and
// counted until the whole group has exited.
func (t *Tree) childrenOf(p *proc, dst []int) ([]int, error) {
	if p.listed == 0 || len(p.kids) != p.threads || p.threads > 1 && t.gen-p.listed >= relistEvery {
		var err error
		p.kids, err = t.ls.listThreads(&t.fs, p.pid, p.kids)
		p.listed = t.gen
		if err != nil {
			return dst, err
		}
		// The task directory was opened by path: the held stat descriptor
		// still reading this process afterwards proves that the path
		// named it, and not a new process with its pid.
		if err := t.readStat(p, false); err != nil {
			p.closeKids()
			if gone(err) || errors.Is(err, errReused) {
				return dst, nil // refresh sees it at the next sample
			}
			return dst, err
		}
	}
	return t.ls.readKids(p.pid, p.kids, dst)
}

// adoptOrphans looks at this process's children that the tree does not
// know and adopts those that belong to it (see TreeOptions.Marker). Only
// the main thread's children are read: the kernel re-parents an orphan to
// the first live thread of its subreaper (find_new_reaper), the thread
// group's leader, which in a Go program never exits before the process;
// every other thread's list holds only children this process started, and
// there is one such thread per execution waiting in wait4. An
// orphan comes to this process only when it is a child subreaper; when it
// is not, its children are only what it started, and there is nothing to
// look at. The main processes of other executions, which the Reaper
// protects, are skipped without reading them: in a monitor of N
// executions each scan would otherwise read N stat files.
func (t *Tree) adoptOrphans() error {
	if !t.fs.orphansComeHere() {
		return nil
	}
	var err error
	t.pids, err = t.ls.leaderChildren(&t.fs, t.fs.self, t.pids[:0])
	for _, c := range t.pids {
		if p := t.procs[c]; p != nil && (p.state == stLive || p.state == stZombie) {
			continue
		}
		if t.protected != nil && t.protected(c) {
			continue
		}
		p, oerr := t.open(c)
		if oerr != nil {
			continue // gone, or not ours to read
		}
		if start, ok := t.rejected[c]; ok && start == p.start {
			p.close()
			continue
		}
		if !t.belongs(p) {
			t.rejected[c] = p.start
			p.close()
			continue
		}
		if old := t.procs[c]; old != nil {
			t.retired = append(t.retired, old)
		}
		t.procs[c] = p
		if p.state == stLive {
			p.seen = t.gen
			t.queue = append(t.queue, c)
		}
	}
	return err
}

// belongs reports whether p, a process the walk does not reach, is of the
// tree: same process group as the main process, same session as a member
// (neither being this process's own), or the tree's marker in its
// environment. It never claims a process started before the main one.
func (t *Tree) belongs(p *proc) bool {
	if p.start < t.start || p.pid == t.main {
		return false
	}
	if t.mainPgrp != 0 && p.pgrp == t.mainPgrp {
		return true
	}
	if p.sid != t.selfSid {
		for _, q := range t.procs {
			if q.sid == p.sid && q.pid != p.pid && (q.state == stLive || q.state == stZombie) {
				return true
			}
		}
	}
	if len(t.marker) == 0 || p.state != stLive {
		return false
	}
	b, err := readPath(t.path.pid(t.fs.root, p.pid, "environ"), t.buf)
	t.buf = b
	if err != nil {
		return false
	}
	return environHas(b, t.marker[:len(t.marker)-1])
}

// Sample refreshes the member set (descendants found via
// /proc/PID/task/*/children, or TreeOptions.Members) and reads each
// member's stat by pread on a descriptor held open. It returns the reading
// even when some files failed, with the errors joined.
func (t *Tree) Sample() (TreeSample, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return TreeSample{}, ErrClosed
	}
	errs := t.refresh()
	errs = errors.Join(errs, t.discover())
	var s TreeSample
	for _, p := range t.procs {
		if p.state == stLive {
			s.RSS += p.rss
			s.Procs++
		}
	}
	user, sys, _ := t.cpu()
	s.CPU = user + sys
	t.sampled = true
	t.peakRSS = max(t.peakRSS, s.RSS)
	t.peakProc = max(t.peakProc, s.Procs)
	return s, errs
}

// ticks converts stat ticks to a duration.
func ticks(n uint64) time.Duration { return time.Duration(n) * (time.Second / userHZ) }

// covered reports whether p's CPU and memory are in the rusage of an
// ancestor reaped by this process: p vanished while its parent (itself
// covered, or reaped by us) was alive to wait for it.
func (t *Tree) covered(p *proc) bool {
	for depth := 0; depth < 64 && p.state == stVanished; depth++ {
		q := t.procs[p.ppid]
		if q == nil || q == p || q.start > p.start {
			return false
		}
		if q.state == stReaped {
			return true
		}
		p = q
	}
	return false
}

// each calls f for every record, current and retired.
func (t *Tree) each(f func(*proc)) {
	for _, p := range t.procs {
		f(p)
	}
	for _, p := range t.retired {
		f(p)
	}
}

// cpu sums CPU times; exact is true when all of it is from rusage.
func (t *Tree) cpu() (user, sys time.Duration, exact bool) {
	exact = true
	t.each(func(p *proc) {
		switch {
		case p.state == stReaped:
			user += p.ruUser
			sys += p.ruSys
		case p.state == stVanished && t.covered(p):
		default:
			user += ticks(p.utime)
			sys += ticks(p.stime)
			exact = false
		}
	})
	return user, sys, exact
}

// Pids appends the live tracked pids to dst.
func (t *Tree) Pids(dst []int) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for pid, p := range t.procs {
		if p.state == stLive {
			dst = append(dst, pid)
		}
	}
	return dst
}

// zombieLeft reports whether a member the tree saw exit is still a
// zombie, not reaped yet (its /proc entry is there).
func (t *Tree) zombieLeft() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for pid, p := range t.procs {
		if p.state == stZombie {
			if _, err := os.Stat(filepath.Join(t.fs.root, strconv.Itoa(pid))); err == nil {
				return true
			}
		}
	}
	return false
}

// Owns reports whether pid is or was a member of this tree.
func (t *Tree) Owns(pid int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.procs[pid]; ok {
		return true
	}
	for _, p := range t.retired {
		if p.pid == pid {
			return true
		}
	}
	return false
}

// claim reports whether the zombie child pid (started at start ticks) is
// of the tree, adopting it when it belongs; its final stat and io are read.
func (t *Tree) claim(pid int, start uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if p := t.procs[pid]; p != nil && p.start == start && p.state != stReaped {
		if p.statFd >= 0 {
			_ = t.read(p, false)
		}
		return true
	}
	p, err := t.open(pid)
	if err != nil || p.start != start {
		if p != nil {
			p.close()
		}
		return false
	}
	if !t.belongs(p) {
		p.close()
		return false
	}
	if old := t.procs[pid]; old != nil {
		t.retired = append(t.retired, old)
	}
	t.procs[pid] = p
	return true
}

// adopt makes the zombie pid a member regardless of links (the Reaper's
// sweep at Unregister).
func (t *Tree) adopt(pid int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, err := t.open(pid); err == nil {
		if old := t.procs[pid]; old != nil {
			t.retired = append(t.retired, old)
		}
		t.procs[pid] = p
	}
}

// Reaped accounts a process of this tree that was reaped with rusage ru
// (from wait4; for the main process, exec.Cmd's ProcessState.SysUsage()).
// The rusage includes what the process reaped itself. A pid whose record
// is already reaped is taken as a new process with the same pid.
func (t *Tree) Reaped(pid int, ru *unix.Rusage) {
	if ru == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.procs[pid]
	if p == nil || p.state == stReaped {
		if p != nil {
			t.retired = append(t.retired, p)
		}
		p = &proc{pid: pid, statFd: -1, ioFd: -1}
		t.procs[pid] = p
	}
	p.close()
	p.state = stReaped
	p.rss = 0
	// Its children, if any, are orphans now: the next walk looks for them
	// among this process's children (the main process's double-forked
	// daemon, re-parented to this subreaper, is reached no other way).
	t.died = true
	p.ruUser = time.Duration(ru.Utime.Nano())
	p.ruSys = time.Duration(ru.Stime.Nano())
	p.ruMaxRSS = uint64(max(ru.Maxrss, 0)) * 1024 // kibibytes on Linux
}

// Snapshot reads VmHWM, CPU and IO of every live member right now (call it
// just before killing them at the end). Processes that are gone are
// skipped; other errors are joined.
func (t *Tree) Snapshot() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	errs := t.refresh()
	errs = errors.Join(errs, t.discover())
	for pid, p := range t.procs {
		if p.state != stLive {
			continue
		}
		b, err := readPath(t.path.pid(t.fs.root, pid, "status"), t.buf)
		t.buf = b
		if err != nil {
			if !gone(err) {
				errs = errors.Join(errs, fmt.Errorf("procfallback: /proc/%d/status: %w", pid, err))
			}
			continue
		}
		m, err := ParseStatusMem(b)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("procfallback: /proc/%d/status: %w", pid, err))
			continue
		}
		if m.HasVmHWM {
			p.hwm, p.hwmOK = max(p.hwm, m.VmHWM), true
		}
	}
	return errs
}

// Totals is the final account: CPU of reaped processes (rusage) plus the
// last reading of the others; MaxRSS the maximum of reaped ru_maxrss and
// live VmHWM; PeakRSS the highest sampled RSS sum; Procs the peak; IO from
// /proc/PID/io where readable.
func (t *Tree) Totals() Totals {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out Totals
	user, sys, exact := t.cpu()
	var any bool
	t.each(func(p *proc) { any = true })
	if any {
		srcUser, srcSys, src := metrics.SourceRusageUTime, metrics.SourceRusageSTime, metrics.SourceRusage
		if !exact {
			srcUser, srcSys, src = metrics.SourceSampledProcCPU, metrics.SourceSampledProcCPU, metrics.SourceSampledProcCPU
		}
		out.CPUUser = metrics.Measured(user, srcUser)
		out.CPUSystem = metrics.Measured(sys, srcSys)
		out.CPUTotal = metrics.Measured(user+sys, src)
	} else {
		why := "the main process could not be read in /proc and none of the tree was reaped"
		out.CPUUser, out.CPUSystem, out.CPUTotal = unavailableDur(why), unavailableDur(why), unavailableDur(why)
	}

	var ru, hwm uint64
	var ruOK, hwmOK bool
	var ior, iow uint64
	var ioOK bool
	t.each(func(p *proc) {
		if p.state == stReaped {
			ru, ruOK = max(ru, p.ruMaxRSS), true
		}
		if p.hwmOK {
			hwm, hwmOK = max(hwm, p.hwm), true
		}
		if p.ioOK {
			ioOK = true
			if p.state == stVanished && t.procs[p.ppid] != nil {
				return // in its parent's io once waited for
			}
			ior += p.io.ReadBytes
			iow += p.io.WriteBytes
		}
	})
	switch {
	case ruOK && ru >= hwm:
		out.MaxRSS = metrics.Measured(ru, metrics.SourceRusageMaxRSS)
	case hwmOK:
		out.MaxRSS = metrics.Measured(hwm, metrics.SourceProcVmHWM)
	default:
		out.MaxRSS = unavailableU64("no process of the tree was reaped with rusage nor read by Snapshot")
	}
	if t.sampled {
		out.PeakRSS = metrics.Measured(t.peakRSS, metrics.SourceSampledProcRSS)
		out.Procs = metrics.Measured(uint64(t.peakProc), metrics.SourceSampledProcTree)
	} else {
		out.PeakRSS, out.Procs = unavailableU64("the tree was never sampled"), unavailableU64("the tree was never sampled")
	}
	if ioOK {
		out.IORead = metrics.Measured(ior, metrics.SourceProcIO)
		out.IOWrite = metrics.Measured(iow, metrics.SourceProcIO)
	} else {
		why := "no /proc/PID/io of the tree was read"
		if t.ioErr != nil {
			why += ": " + t.ioErr.Error()
		}
		out.IORead, out.IOWrite = unavailableU64(why), unavailableU64(why)
	}
	return out
}

// Kill sends sig to the main process's process group (when it is not this
// process's own) and to every tracked live pid, through a pidfd checked
// against the held stat fd so that a reused pid is never signalled. For
// SIGKILL it first stops the tree with SIGSTOP, re-walking it until no new
// process appears, so that nothing forks away. It returns how many distinct
// tracked processes were signalled.
func (t *Tree) Kill(sig unix.Signal) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, ErrClosed
	}
	t.killGen++
	var errs error
	if sig == unix.SIGKILL {
		stopGen := t.killGen
		for round := 0; round < 16; round++ {
			_ = t.refresh()
			_ = t.discover()
			fresh := 0
			for _, p := range t.procs {
				if p.state == stLive && p.signalled != stopGen {
					p.signalled = stopGen
					if t.signal(p, unix.SIGSTOP) == nil {
						fresh++
					}
				}
			}
			if fresh == 0 {
				break
			}
		}
		t.killGen++
	} else {
		errs = errors.Join(t.refresh(), t.discover())
	}
	if t.mainPgrp > 0 {
		if err := unix.Kill(-t.mainPgrp, sig); err != nil && err != unix.ESRCH {
			errs = errors.Join(errs, fmt.Errorf("procfallback: kill group %d: %w", t.mainPgrp, err))
		}
	}
	n := 0
	t.killed = t.killed[:0]
	for _, p := range t.procs {
		if p.state != stLive || p.signalled == t.killGen {
			continue
		}
		p.signalled = t.killGen
		switch err := t.signal(p, sig); {
		case err == nil:
			n++
			t.killed = append(t.killed, p.pid)
		case gone(err):
		default:
			errs = errors.Join(errs, err)
		}
	}
	return n, errs
}

// Killed appends to dst the pids that the last Kill signalled.
func (t *Tree) Killed(dst []int) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append(dst, t.killed...)
}

// signal sends sig to p through a pidfd, after checking that the pid still
// names p.
func (t *Tree) signal(p *proc, sig unix.Signal) error {
	if p.pid <= 1 || p.pid == t.fs.self || p.statFd < 0 {
		return unix.ESRCH
	}
	pfd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		if err != unix.ENOSYS {
			return err
		}
		pfd = -1
	}
	// The held stat fd fails once p is reaped; it still reading p's start
	// time after the pidfd was opened proves the pidfd is p's.
	if rerr := t.read(p, false); rerr != nil {
		if pfd >= 0 {
			unix.Close(pfd)
		}
		if errors.Is(rerr, errReused) {
			return unix.ESRCH
		}
		return rerr
	}
	if pfd < 0 { // Linux < 5.3: no pidfd; a tiny window remains.
		return unix.Kill(p.pid, sig)
	}
	err = unix.PidfdSendSignal(pfd, sig, nil, 0)
	unix.Close(pfd)
	return err
}

// Close releases every fd the tree holds. The tree cannot be used after.
func (t *Tree) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	t.each(func(p *proc) { p.close() })
	return nil
}

// RusageOf returns the rusage of a process that exec.Cmd waited for, for
// Reaped; nil when ps is nil or carries none.
func RusageOf(ps *os.ProcessState) *unix.Rusage {
	if ps == nil {
		return nil
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return nil
	}
	return (*unix.Rusage)(unsafe.Pointer(ru))
}
