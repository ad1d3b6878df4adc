package cgroupmon

import (
	"errors"
	"fmt"
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
	return &sampler{interval: interval, maxPending: defaultMaxPending, quit: make(chan struct{})}
}

func (s *sampler) add(r *run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = append(s.runs, r)
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
	for {
		select {
		case <-t.C:
		case <-s.quit:
			return
		}
		s.mu.Lock()
		if len(s.runs) == 0 && len(s.pending) == 0 {
			s.active = false
			s.mu.Unlock()
			return
		}
		s.batch = append(s.batch[:0], s.runs...)
		s.mu.Unlock()
		for _, r := range s.batch {
			r.tick()
		}
		clear(s.batch)
		// After the samples, so that removing cgroups never delays them.
		s.removePending()
	}
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
