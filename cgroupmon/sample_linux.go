package cgroupmon

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

// sampler is the one goroutine and one ticker that sample every live
// execution of a Monitor. It starts with the first execution and ends at
// the first tick that finds nothing to do, or at once when the Monitor
// closes. Adding and removing an execution only takes the lock: waking or
// starting a goroutine (a futex call to rouse an idle thread) per
// execution costs more than the rest of the bookkeeping together.
//
// It also removes the cgroups of ended executions (see reclaim): the
// kernel's rmdir of a cgroup is a third of what cgmon adds to a short
// execution, and nothing needs it done before the record is handed over.
type sampler struct {
	interval time.Duration
	// maxPending is how many emptied cgroups may wait for a tick
	// (defaultMaxPending; tests lower it).
	maxPending int

	mu      sync.Mutex
	runs    []*run
	active  bool
	closed  bool
	wg      sync.WaitGroup
	pending []pendingLeaf // emptied cgroups to remove
	spare   []pendingLeaf // the loop's last batch, reused
	errs    []error       // cgroups that could not be removed

	batch []*run        // reused by the loop: no allocation per tick
	quit  chan struct{} // closed by stop

	// checks are the live runs with a CPU-time limit, each with when it
	// is checked next (between ticks: see run.checkCPU); due is the loop's
	// reused list of those to check now.
	checks []cpuCheck
	due    []cpuCheck
	// wake tells the loop that a run with a CPU-time limit was added, so
	// that its first check need not wait for a tick. Only such runs pay
	// for the wake-up.
	wake chan struct{}
}

// cpuCheck is a run with a CPU-time limit, the CPUs it can use at once,
// and when the sampler checks its CPU time next.
type cpuCheck struct {
	r    *run
	cpus int
	next time.Time
}

// pendingLeaf is an ended execution's cgroup, empty, its descriptors
// closed but the directory's (the owner's lock), waiting for the next tick
// to be removed.
type pendingLeaf struct {
	l     *leaf
	tries int
}

// reclaimTries is how many ticks an emptied cgroup that the kernel still
// reports busy is retried before it is given up: reported (Monitor.Close)
// and left, unlocked, to the next monitor's reaping.
const reclaimTries = 10

func newSampler(interval time.Duration) *sampler {
	return &sampler{interval: interval, maxPending: defaultMaxPending, quit: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// add makes r one of the runs the sampler ticks for. A run with a
// CPU-time limit is also checked between ticks: first when it could have
// used its whole budget on every CPU it can use, which r.usableCPUs
// reads from its cgroup (outside the sampler's lock).
func (s *sampler) add(r *run) {
	var c cpuCheck
	if limit := r.spec.CPUTimeLimit; limit > 0 {
		c = cpuCheck{r: r, cpus: r.usableCPUs(onlineCPUs())}
		c.next = r.start.Add(checkDelay(limit, c.cpus, s.interval))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = append(s.runs, r)
	if c.r != nil {
		s.checks = append(s.checks, c)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	s.startLocked()
}

func (s *sampler) startLocked() {
	if !s.active && !s.closed {
		s.active = true
		s.wg.Add(1)
		go s.loop()
	}
}

// reclaim queues the cgroup of an ended execution, which must be empty
// and its file descriptors closed, for removal after the next tick (or by
// stop). It reports false, queueing nothing, once the sampler is stopped:
// the caller then removes it itself. With a long interval the queue would
// grow without bound, so beyond s.maxPending the caller removes the oldest.
func (s *sampler) reclaim(l *leaf) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	var oldest pendingLeaf
	if len(s.pending) >= s.maxPending {
		oldest = s.pending[0]
		s.pending = append(s.pending[:0], s.pending[1:]...)
	}
	s.pending = append(s.pending, pendingLeaf{l: l})
	s.startLocked()
	s.mu.Unlock()
	if oldest.l != nil {
		retry, err := tryRemove(&oldest)
		s.mu.Lock()
		if retry {
			s.pending = append(s.pending, oldest)
		} else if err != nil {
			s.errs = append(s.errs, err)
		}
		s.mu.Unlock()
	}
	return true
}

// defaultMaxPending is how many emptied cgroups may wait for a tick.
const defaultMaxPending = 1024

// tryRemove tries once to remove p's directory, and the cgroups the
// workload made below it. retry says the kernel still reports it busy and
// it has tries left (counted in p); err says it was given up, and left to
// the next monitor's reaping.
func tryRemove(p *pendingLeaf) (retry bool, err error) {
	err = removeTree(p.l.path)
	switch {
	case err == nil:
		p.l.unlock()
		return false, nil
	case errors.Is(err, unix.EBUSY) && p.tries+1 < reclaimTries:
		p.tries++
		return true, nil
	}
	p.l.unlock()
	return false, leftToReap(err)
}

// leftToReap says that a cgroup that could not be removed is left to the
// next monitor's reaping.
func leftToReap(err error) error {
	return fmt.Errorf("%w; it is left for the next cgmon to reap", err)
}

// removePending tries to remove each queued cgroup once. The rmdirs run
// without the lock: Start and the end of an execution take it.
func (s *sampler) removePending() {
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return
	}
	todo := s.pending
	s.pending = s.spare[:0]
	s.mu.Unlock()
	var retry []pendingLeaf
	var errs []error
	for i := range todo {
		again, err := tryRemove(&todo[i])
		if again {
			retry = append(retry, todo[i])
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	clear(todo)
	s.mu.Lock()
	s.pending = append(s.pending, retry...)
	s.errs = append(s.errs, errs...)
	s.spare = todo[:0]
	s.mu.Unlock()
}

func (s *sampler) remove(r *run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropCheckLocked(r)
	for i, x := range s.runs {
		if x == r {
			last := len(s.runs) - 1
			s.runs[i] = s.runs[last]
			s.runs[last] = nil
			s.runs = s.runs[:last]
			return
		}
	}
}

func (s *sampler) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	check := time.NewTimer(time.Hour)
	defer check.Stop()
	for {
		s.armCheck(check)
		select {
		case <-t.C:
			if !s.tickAll() {
				return
			}
		case <-check.C:
		case <-s.wake:
		case <-s.quit:
			return
		}
		s.checkDue(time.Now())
	}
}

// tickAll samples every live run and removes the queued cgroups. It
// reports false, ending the loop, when it finds nothing to do.
func (s *sampler) tickAll() bool {
	s.mu.Lock()
	if len(s.runs) == 0 && len(s.pending) == 0 {
		s.active = false
		s.mu.Unlock()
		return false
	}
	s.batch = append(s.batch[:0], s.runs...)
	s.mu.Unlock()
	for _, r := range s.batch {
		r.tick()
	}
	clear(s.batch)
	// After the samples, so that removing cgroups never delays them.
	s.removePending()
	return true
}

// armCheck sets t to fire at the earliest CPU-time check, or stops it
// when no run has a CPU-time limit.
func (s *sampler) armCheck(t *time.Timer) {
	s.mu.Lock()
	var first time.Time
	for _, c := range s.checks {
		if first.IsZero() || c.next.Before(first) {
			first = c.next
		}
	}
	s.mu.Unlock()
	if first.IsZero() {
		t.Stop()
		return
	}
	t.Reset(time.Until(first))
}

// checkDue checks the CPU time of every run whose check is due at now
// (run.checkCPU), and schedules its next check, or drops it once it has
// ended or been killed. The reads run without the sampler's lock.
func (s *sampler) checkDue(now time.Time) {
	s.mu.Lock()
	s.due = s.due[:0]
	for _, c := range s.checks {
		if !c.next.After(now) {
			s.due = append(s.due, c)
		}
	}
	due := s.due
	s.mu.Unlock()
	if len(due) == 0 {
		return
	}
	for i := range due {
		c := &due[i]
		next, live := c.r.checkCPU(c.next, c.cpus, s.interval)
		c.next = next
		if !live {
			c.cpus = 0 // dropped below
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range due {
		if d.cpus == 0 {
			s.dropCheckLocked(d.r)
			continue
		}
		for i := range s.checks {
			if s.checks[i].r == d.r {
				s.checks[i].next = d.next
			}
		}
	}
	clear(due)
}

// dropCheckLocked stops the CPU-time checks of r.
func (s *sampler) dropCheckLocked(r *run) {
	s.checks = slices.DeleteFunc(s.checks, func(c cpuCheck) bool { return c.r == r })
}

// stop ends the loop now and waits for it, then tries once more to remove
// each queued cgroup; nothing starts it again. Call it once no execution
// is live (Monitor.Close). It returns the cgroups that could not be
// removed, which are left to the next monitor's reaping.
func (s *sampler) stop() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	pending, errs := s.pending, s.errs
	s.pending, s.errs = nil, nil
	s.mu.Unlock()
	for i := range pending {
		p := &pending[i]
		p.tries = reclaimTries // the last try
		_, err := tryRemove(p)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tick takes one sample of a run: it reads the counters and accounts them
// at the time they were read, not the time of the tick (a run read late in
// a long batch would otherwise get another's wall time).
func (r *run) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	x, ok, err := r.readLocked()
	if err != nil {
		r.noteErrLocked(err)
	}
	if ok {
		r.addLocked(x.at, x)
	}
}

// readLocked reads the run's counters: CPU, memory and processes from the
// leaf where its controllers give them, the rest from the procfs tree. ok
// is false when the CPU time could not be read: the reading is not used.
// x.at is when the CPU time was read, which the percentage is taken over.
func (r *run) readLocked() (x reading, ok bool, err error) {
	if l := r.leaf; l != nil {
		st, err := l.readCPU()
		if err != nil {
			return x, false, err
		}
		x.at, x.cpu, ok = time.Now(), time.Duration(st.UsageUsec)*time.Microsecond, true
		if r.sources.is(metrics.MetricMemoryAnonPeak, metrics.SourceSampledMemoryAnon) {
			if x.anon, err = l.readAnon(); err == nil {
				x.anonOK = true
			} else {
				r.noteErrLocked(err)
			}
		}
		if l.memory {
			if x.mem, err = l.readMemoryCurrent(); err == nil {
				x.memOK = true
			} else {
				r.noteErrLocked(err)
			}
		}
		switch {
		case l.pidsCtl:
			x.procs, err = l.readPidsCurrent()
			x.procsOK = err == nil
		case r.tree == nil:
			x.procs, err = l.countProcs()
			x.procsOK = err == nil
		}
	}
	if r.tree == nil {
		return x, ok, nil
	}
	if r.attached {
		_ = r.tree.Snapshot() // not our child: its VmHWM must be read while it lives
	}
	ts, err := r.tree.Sample()
	if err != nil {
		return x, ok, err
	}
	if r.leaf == nil {
		x.at = time.Now()
	}
	if !x.memOK && ts.Procs > 0 {
		// A tree with no live process has no RSS to tell, not 0.
		x.mem, x.memOK = ts.RSS, true
	}
	if r.leaf == nil {
		x.cpu, ok = ts.CPU, true
	}
	if !x.procsOK {
		x.procs, x.procsOK = uint64(ts.Procs), true
	}
	return x, ok, nil
}

// minCPUCheck is the shortest wait between two checks of an execution's
// CPU time. A run that uses fewer CPUs than it could is checked more and
// more often as its budget runs out (each wait is what is left spread over
// every CPU); this floor bounds how often, and adds at most minCPUCheck
// of CPU time per usable CPU to the overshoot.
const minCPUCheck = time.Millisecond

// checkDelay is how long an execution that can use cpus CPUs at once
// and has left of its CPU-time budget cannot use it up: the wait before
// its next check, within [minCPUCheck, interval].
func checkDelay(left time.Duration, cpus int, interval time.Duration) time.Duration {
	d := left / time.Duration(max(cpus, 1))
	return min(max(d, minCPUCheck), max(interval, minCPUCheck))
}

// checkCPU enforces Spec.CPUTimeLimit: it reads the execution's CPU time,
// all its processes and threads together (cpu.stat of its cgroup, else
// its procfs tree), and kills it as cpu_timeout once that reaches the
// limit. Otherwise it returns when to check next: checkDelay of what is
// left after the moment of the read. live is false once the run has
// ended or has been killed: it needs no more checks. due is when the
// check was meant to run; how late it ended (its kill included) is
// recorded, the sampler's delay of the bound Spec.CPUTimeLimit states.
func (r *run) checkCPU(due time.Time, cpus int, interval time.Duration) (next time.Time, live bool) {
	defer func() { r.checkedLate(time.Since(due)) }()
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return next, false
	}
	at := time.Now() // before the read: the next check is never later than meant
	used, ok, err := r.cpuNowLocked()
	if err != nil {
		r.noteErrLocked(err)
	}
	r.mu.Unlock()
	if !ok {
		return at.Add(interval), true // tried again at the pace of the ticks
	}
	left := r.spec.CPUTimeLimit - used
	if left <= 0 {
		r.kill(metrics.StatusCPUTimeout)
		return next, false
	}
	return at.Add(checkDelay(left, cpus, interval)), true
}

// cpuNowLocked reads the CPU time the execution has used so far: its
// leaf's cpu.stat usage_usec, else the sum over its procfs tree (live
// processes' utime and stime, the rusage of those reaped). ok is false
// when cpu.stat could not be read; the tree's sum is used even when a
// process's files failed (it vanished during the walk), as a lower bound.
func (r *run) cpuNowLocked() (used time.Duration, ok bool, err error) {
	if l := r.leaf; l != nil {
		st, err := l.readCPU()
		if err != nil {
			return 0, false, err
		}
		return time.Duration(st.UsageUsec) * time.Microsecond, true, nil
	}
	ts, err := r.tree.Sample()
	return ts.CPU, true, err
}

// usableCPUs is how many CPUs the execution's processes can run on at
// once: online CPUs, or fewer where its cgroup's cpuset.cpus.effective
// (cpuset controller) or cpu.max quota (the quota divided by the period,
// rounded up) says so (leaf.capacity). Counting too many only makes the
// checks more frequent; a cpu.max of a cgroup above the leaf is not read.
func (r *run) usableCPUs(online int) int {
	l := r.leaf
	if l == nil {
		return max(online, 1)
	}
	c := l.capacity()
	n := min(online, c.cpus)
	if c.quota > 0 && c.period > 0 {
		n = min(n, int((c.quota+c.period-1)/c.period))
	}
	return max(n, 1)
}
