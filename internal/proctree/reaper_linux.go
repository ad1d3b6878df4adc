//go:build linux

package proctree

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reaperActive is set while a Reaper's goroutine runs: two would race for
// the same zombies.
var reaperActive atomic.Bool

// Reaper reaps the orphans re-parented to this process once it is a child
// subreaper, and gives their rusage to the Tree they belong to.
//
// Which zombies it reaps (the rule that keeps it from stealing anyone
// else's wait): never a protected pid; at once, a zombie that a registered
// Tree owns or claims (a member, or linked to one by process group,
// session or marker; see TreeOptions.Marker); and when a Tree is
// unregistered, any other zombie child outside this process's own process
// group that started after that tree's main process (to the 10 ms of
// /proc start times) and before every other registered tree's (so it can
// only be that tree's orphan), which is then counted as that tree's.
// Zombies started before every registered tree, and children left in this
// process's process group (as exec.Cmd leaves them without Setpgid), are
// never reaped unless a tree owns them, or they died in a cgroup below one
// given to ReapCgroup (the executions' cgroups). It waits with wait4 on specific
// pids only, never wait4(-1).
//
// Caveat: code in this process that starts its own children while a Reaper
// is on must Protect them (under Starting) until it has waited for them;
// otherwise a child of its in a process group of its own that dies while an execution's Tree is
// registered and is still unwaited when that Tree is unregistered can be
// reaped as the execution's orphan, and its own Wait then fails with
// ECHILD. exec.Cmd children that cgmon starts are protected by cgmon.
type Reaper struct {
	fs FS
	// wasSubreaper: this process was a child subreaper before the Reaper
	// made it one, and stays one after Close.
	wasSubreaper bool
	// gate is read-held by Starting and write-held by every scan, so that
	// no scan runs while a main pid is started but not yet protected.
	gate sync.RWMutex

	mu        sync.Mutex
	protected map[int]int // pid -> protections
	trees     []*Tree
	reaped    int
	swept     int
	// cgroups are the cgroup v2 directories (as /proc/PID/cgroup names
	// them) whose zombies the Reaper reaps even when no tree claims them;
	// self is this process's own, never among them.
	cgroups []string
	self    string

	sig     chan os.Signal
	stop    chan struct{}
	done    chan struct{}
	closing sync.Once

	ls   lister
	path pathBuf
	buf  []byte
	pids []int
}

// EnableReaper makes this process a child subreaper (prctl
// PR_SET_CHILD_SUBREAPER, Linux 3.4+) and starts one goroutine that reaps
// orphans re-parented to it on SIGCHLD, with wait4 on specific pids only,
// never wait4(-1), so that it never steals exec.Cmd's own wait. fs must be
// the real /proc of this process. Only one Reaper may be open at a time.
func EnableReaper(fs FS) (*Reaper, error) {
	if fs.self != os.Getpid() {
		return nil, fmt.Errorf("procfallback: reaper needs this process's /proc, but %s/self is %d", fs.root, fs.self)
	}
	if !reaperActive.CompareAndSwap(false, true) {
		return nil, errors.New("procfallback: a Reaper is already enabled in this process")
	}
	var was int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&was)), 0, 0, 0); err != nil {
		reaperActive.Store(false)
		return nil, fmt.Errorf("procfallback: is this process a child subreaper: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		reaperActive.Store(false)
		return nil, fmt.Errorf("procfallback: become child subreaper: %w", err)
	}
	r := &Reaper{
		wasSubreaper: was != 0,
		fs:           fs,
		protected:    make(map[int]int),
		sig:          make(chan os.Signal, 1),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
		buf:          make([]byte, 0, 4096),
	}
	signal.Notify(r.sig, unix.SIGCHLD)
	go r.run()
	r.sig <- unix.SIGCHLD // an orphan may already be waiting
	return r, nil
}

func (r *Reaper) run() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		case <-r.sig:
			r.scan(nil)
		}
	}
}

// Starting must be held while a main process is started and protected:
// call it, run cmd.Start, Protect the pid, then call the returned func.
func (r *Reaper) Starting() (done func()) {
	r.gate.RLock()
	return sync.OnceFunc(r.gate.RUnlock)
}

// Protect marks pid as a main process that exec.Cmd (or other code) will
// wait for: the Reaper never reaps it. Protections nest.
func (r *Reaper) Protect(pid int) {
	r.mu.Lock()
	r.protected[pid]++
	r.mu.Unlock()
}

// Unprotect undoes one Protect of pid (call it after waiting for it).
func (r *Reaper) Unprotect(pid int) {
	r.mu.Lock()
	if r.protected[pid]--; r.protected[pid] <= 0 {
		delete(r.protected, pid)
	}
	r.mu.Unlock()
}

// Register routes the reaped pids that t owns or claims to t.Reaped.
func (r *Reaper) Register(t *Tree) {
	t.mu.Lock()
	t.protected = r.protects
	t.mu.Unlock()
	r.mu.Lock()
	r.trees = append(r.trees, t)
	r.mu.Unlock()
	r.kick()
}

// protects reports whether pid is protected (a main process that its own
// code will wait for).
func (r *Reaper) protects(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.protected[pid] > 0
}

// Unregister stops routing to t, after a last scan that reaps t's zombies
// and those only t can own (see Reaper). Call it after the execution's
// processes are dead and before t.Totals.
func (r *Reaper) Unregister(t *Tree) {
	r.scan(t)
	// A member the tree saw as a zombie may not be reapable yet: the
	// leader of a killed multi-threaded process shows Z while its other
	// threads still exit, and only then does it come to this process.
	// Left behind, no tree would claim it. Wait for it, briefly.
	for i := 0; i < 100 && t.zombieLeft(); i++ {
		time.Sleep(2 * time.Millisecond)
		r.scan(t)
	}
	t.mu.Lock()
	t.protected = nil
	t.mu.Unlock()
	r.mu.Lock()
	for i, u := range r.trees {
		if u == t {
			r.trees = append(r.trees[:i], r.trees[i+1:]...)
			break
		}
	}
	r.mu.Unlock()
}

// ReapCgroup makes the Reaper reap, with the rest, every zombie child
// whose cgroup v2 directory is below dir (a path as /proc/PID/cgroup names
// it, e.g. "/cgmon"), whether or not a registered tree claims it: a
// process of an execution that died in its cgroup, such as a leftover
// killed with the cgroup or at a timeout before any sample saw it, which
// was re-parented to this subreaper in the same process group. Its CPU and
// memory are in the cgroup's own counters. Zombies of this process's own
// cgroup are never taken by this rule.
func (r *Reaper) ReapCgroup(dir string) {
	dir = strings.TrimSuffix(dir, "/")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.self == "" {
		var path pathBuf // r.path is the scan's
		b, _ := readPath(path.pid(r.fs.root, r.fs.self, "cgroup"), nil)
		r.self, _ = cgroupV2Path(b)
	}
	r.cgroups = append(r.cgroups, dir)
	r.kick()
}

// inCgroups reports whether the zombie pid died in a cgroup below one of
// r.cgroups, other than this process's own.
func (r *Reaper) inCgroups(pid int) bool {
	r.mu.Lock()
	dirs, self := r.cgroups, r.self
	r.mu.Unlock()
	if len(dirs) == 0 {
		return false
	}
	b, err := readPath(r.path.pid(r.fs.root, pid, "cgroup"), r.buf)
	r.buf = b
	if err != nil {
		return false
	}
	cg, ok := cgroupV2Path(b)
	if !ok || cg == self {
		return false
	}
	for _, d := range dirs {
		if strings.HasPrefix(cg, d+"/") {
			return true
		}
	}
	return false
}

// cgroupV2Path returns the path of the cgroup v2 line ("0::PATH") of a
// /proc/PID/cgroup file.
func cgroupV2Path(b []byte) (string, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if p, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			return string(p), true
		}
	}
	return "", false
}

// Stats returns how many zombies were reaped, and how many of those were
// given to a tree by the start-time rule at Unregister rather than by
// membership.
func (r *Reaper) Stats() (reaped, swept int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reaped, r.swept
}

// kick asks the goroutine for a scan.
func (r *Reaper) kick() {
	select {
	case r.sig <- unix.SIGCHLD:
	default:
	}
}

// scan reaps the zombie children it may reap; sweep, when not nil, is a
// tree being unregistered.
func (r *Reaper) scan(sweep *Tree) {
	if !zombieChild() {
		return // nothing to reap: no listing of every thread's children
	}
	r.gate.Lock()
	defer r.gate.Unlock()
	var err error
	r.pids, err = r.ls.children(&r.fs, r.fs.self, r.pids[:0])
	_ = err // a child we could not list shows up at the next SIGCHLD
	selfPgrp := unix.Getpgrp()
	for _, pid := range r.pids {
		r.mu.Lock()
		_, prot := r.protected[pid]
		trees := append([]*Tree(nil), r.trees...)
		r.mu.Unlock()
		if prot {
			continue
		}
		b, err := readPath(r.path.pid(r.fs.root, pid, "stat"), r.buf)
		r.buf = b
		if err != nil {
			continue
		}
		st, err := ParseStat(b)
		if err != nil || st.State != 'Z' {
			continue
		}
		var owner *Tree
		for _, t := range trees {
			if t.claim(pid, st.StartTimeTicks) {
				owner = t
				break
			}
		}
		bySweep := false
		if owner == nil && sweep != nil && st.StartTimeTicks >= sweep.start && st.PGRP != selfPgrp {
			owner, bySweep = sweep, true
			for _, t := range trees {
				if t != sweep && t.start <= st.StartTimeTicks {
					owner, bySweep = nil, false // could be t's
					break
				}
			}
			if owner != nil {
				owner.adopt(pid)
			}
		}
		byCgroup := owner == nil && r.inCgroups(pid)
		if owner == nil && !byCgroup {
			continue
		}
		var ws unix.WaitStatus
		var ru unix.Rusage
		wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, &ru)
		if err != nil || wpid != pid {
			continue // someone else reaped it
		}
		if owner != nil {
			owner.Reaped(pid, &ru)
		}
		r.mu.Lock()
		r.reaped++
		if bySweep {
			r.swept++
		}
		r.mu.Unlock()
	}
}

// Sweep describes what one execution may have left among this process's
// children once its cgroup is empty; see Reaper.Sweep.
type Sweep struct {
	// Cgroup is the execution's cgroup v2 path as /proc/PID/cgroup shows
	// it, e.g. "/cgmon/job-1-4242-7".
	Cgroup string
	// Marker is the entry "KEY=VALUE" in the execution's environment
	// (NewMarker). A live child outside Cgroup is the execution's only if
	// its environment holds it; empty, no process is taken for escaped.
	Marker string
	// Elsewhere, when not nil, reports whether a cgroup v2 path belongs to
	// another live execution: a process there is that one's, left alone.
	Elsewhere func(cgroup string) bool
	// Tree, when not nil, gets the rusage of the zombies reaped.
	Tree *Tree
}

// Swept is what Sweep did.
type Swept struct {
	// Escaped counts the live processes outside the cgroup that held the
	// marker, which Sweep killed and reaped (with the children they had,
	// which came back to this process one generation at a time).
	Escaped int
	// Cgroups are the cgroups the escaped processes were found in.
	Cgroups []string
	// Reaped counts the zombies of the cgroup (processes killed with it
	// whose parent had died) that Sweep reaped, rather than leaving them
	// to this process's exit and PID 1.
	Reaped int
}

// sweepWait is how long Sweep waits for the processes it killed to die.
const sweepWait = 5 * time.Second

// Sweep ends what an execution left among this process's children, as
// its subreaper: the zombies whose cgroup is s.Cgroup (or below it) are
// reaped, and each live child outside it that holds s.Marker, a process
// that moved itself out of the execution's cgroup, is killed and reaped,
// then its children, which are re-parented here as it dies, and so on
// until none is left. It looks only at the children of this process's
// main thread, where the kernel re-parents orphans: when there is none
// besides protected main processes, it costs one read of a proc file.
func (r *Reaper) Sweep(s Sweep) (Swept, error) {
	var out Swept
	killed := map[int]bool{}
	deadline := time.Now().Add(sweepWait)
	marker := []byte(s.Marker)
	for {
		kids, err := r.sweepRound(&s, marker, killed, &out)
		if err != nil {
			return out, err
		}
		for pid := range killed {
			if !slices.Contains(kids, pid) {
				delete(killed, pid) // reaped (by the SIGCHLD scan, or here)
			}
		}
		if len(killed) == 0 {
			return out, nil
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("procfallback: %d killed process(es) of %s did not die within %v", len(killed), s.Cgroup, sweepWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// sweepRound looks once at the main thread's children for Sweep: it reaps
// the zombies it may, kills the escaped processes it finds (adding them to
// killed), and returns the children it listed.
func (r *Reaper) sweepRound(s *Sweep, marker []byte, killed map[int]bool, out *Swept) ([]int, error) {
	r.gate.Lock()
	defer r.gate.Unlock()
	b, err := readPath(r.path.task(r.fs.root, r.fs.self, r.fs.self, "children"), r.buf)
	r.buf = b
	if err != nil {
		return nil, fmt.Errorf("procfallback: children of this process: %w", err)
	}
	kids, err := parseChildren(b, r.pids[:0])
	r.pids = kids
	if err != nil {
		return nil, err
	}
	kids = slices.Clone(kids) // r.pids is the SIGCHLD scan's once the gate is released
	for _, pid := range kids {
		r.mu.Lock()
		_, prot := r.protected[pid]
		r.mu.Unlock()
		if prot {
			continue
		}
		b, err := readPath(r.path.pid(r.fs.root, pid, "stat"), r.buf)
		r.buf = b
		if err != nil {
			continue // gone
		}
		st, err := ParseStat(b)
		if err != nil {
			continue
		}
		b, err = readPath(r.path.pid(r.fs.root, pid, "cgroup"), r.buf)
		r.buf = b
		if err != nil {
			continue
		}
		cg, ok := CgroupV2Path(b)
		if !ok {
			continue
		}
		inside := cg == s.Cgroup || strings.HasPrefix(cg, s.Cgroup+"/")
		switch {
		case st.State == 'Z':
			if !inside && !killed[pid] {
				continue // not the execution's to reap
			}
			var ws unix.WaitStatus
			var ru unix.Rusage
			if wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, &ru); err != nil || wpid != pid {
				continue // someone else reaped it
			}
			if s.Tree != nil {
				s.Tree.Reaped(pid, &ru)
			}
			if !killed[pid] {
				out.Reaped++
			}
			delete(killed, pid)
			r.mu.Lock()
			r.reaped++
			r.mu.Unlock()
		case killed[pid], inside, len(marker) == 0:
		case s.Elsewhere != nil && s.Elsewhere(cg):
		default:
			b, err := readPath(r.path.pid(r.fs.root, pid, "environ"), r.buf)
			r.buf = b
			if err != nil || !environHas(b, marker) {
				continue
			}
			// A child of this process: its pid cannot be reused before
			// it is reaped, so kill(2) is safe.
			if err := unix.Kill(pid, unix.SIGKILL); err == nil {
				killed[pid] = true
				out.Escaped++
				if !slices.Contains(out.Cgroups, cg) {
					out.Cgroups = append(out.Cgroups, cg)
				}
			}
		}
	}
	return kids, nil
}

// zombieChild reports whether this process has a child that has exited
// and is not waited for yet (waitid WNOWAIT: it stays waitable), or true
// when that cannot be told. One system call, against listing the
// children of every thread: most SIGCHLDs are for a main process that
// exec.Cmd waits for, and by the time a tree is unregistered it is gone.
func zombieChild() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if errors.Is(err, unix.ECHILD) {
		return false
	}
	// Linux sets si_signo to SIGCHLD when it found one, else to 0.
	return err != nil || info.Signo != 0
}

// Close stops the goroutine and, unless this process was a child
// subreaper before EnableReaper, makes it stop being one: orphans that
// arrive later go to init, which reaps them. Zombies already here stay
// until someone waits for them.
func (r *Reaper) Close() error {
	var err error
	r.closing.Do(func() {
		signal.Stop(r.sig)
		close(r.stop)
		<-r.done
		// Orphans from now on go to init again, as before the Reaper:
		// nothing here would reap them.
		if !r.wasSubreaper {
			if e := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); e != nil {
				err = fmt.Errorf("procfallback: stop being a child subreaper: %w", e)
			}
		}
		reaperActive.Store(false)
	})
	return err
}
