package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cgmon/cgmon/cgroupmon"
	"github.com/cgmon/cgmon/metrics"
)

// Checkpoint is what a scenario measured after a round of executions, all
// of them ended.
type Checkpoint struct {
	Done    int
	Elapsed time.Duration
	// Heap is the live heap after a collection, in bytes (0: not
	// measurable, as in another process).
	Heap uint64
	// RSS is the resident set size of the monitor's process, in bytes.
	RSS uint64
	// FDs and Goroutines are the monitor's (for another process, Threads
	// stands for Goroutines).
	FDs, Goroutines, Threads int
	// Procs and Leaves count what the soak's executions left behind.
	Procs, Leaves int
}

func (s *Soak) printCheckpoint(c Checkpoint, total int) {
	heap := "heap n/a"
	if c.Heap > 0 {
		heap = "heap " + mib(c.Heap)
	}
	g := fmt.Sprintf("goroutines %d", c.Goroutines)
	if c.Threads > 0 {
		g = fmt.Sprintf("threads %d", c.Threads)
	}
	s.printf("  %6d/%d  %7.1f s  %s  rss %s  fds %d  %s  processes left %d  cgroups left %d\n",
		c.Done, total, c.Elapsed.Seconds(), heap, mib(c.RSS), c.FDs, g, c.Procs, c.Leaves)
}

// flat checks that the heap and RSS of the last checkpoint are within the
// larger of slack and a quarter of the first checkpoint after warm-up (the
// first round), and that descriptors match it exactly.
func (s *Soak) flat(where string, cps []Checkpoint) {
	if len(cps) < 2 {
		return
	}
	warm, last := cps[0], cps[len(cps)-1]
	grew := func(name string, a, b, slack uint64) {
		if b > a && b-a > max(slack, a/4) {
			s.problem("%s: %s grew from %s after warm-up to %s", where, name, mib(a), mib(b))
		}
	}
	if warm.Heap > 0 {
		grew("heap", warm.Heap, last.Heap, 4<<20)
	}
	grew("RSS", warm.RSS, last.RSS, 8<<20)
	for _, c := range cps[1:] {
		if c.FDs != warm.FDs {
			s.problem("%s: %d descriptors after %d executions, %d after warm-up", where, c.FDs, c.Done, warm.FDs)
			break
		}
	}
}

// Mixed runs n executions of the mix through one Monitor, Parallel at a
// time, and checks every every executions that they all ended as their
// kind must, each with exactly one record (to the caller and to the
// Sink), and that nothing is left: no process, cgroup, descriptor or
// goroutine, with heap and RSS flat after the first round. It returns the
// checkpoints.
func (s *Soak) Mixed(n, every int) []Checkpoint {
	s.printf("mixed: %d executions through one Monitor (backend %s), %d at a time\n", n, s.backend(), s.Parallel)
	ks, err := kinds(s.VM)
	if err != nil {
		s.problem("mixed: workloads: %v", err)
		return nil
	}
	fds0, gs0 := countFDs(0), goroutines()
	coll := metrics.NewCollector()
	opts := cgroupmon.Options{Backend: s.Backend, Sink: coll, Subreaper: true}
	if s.NoSink {
		opts.Sink = nil
	}
	m, err := cgroupmon.New(opts)
	if err != nil {
		s.problem("mixed: New: %v", err)
		return nil
	}
	s.printf("  backend %s, root %q\n", m.Backend(), m.Probe().Root)
	// The Monitor's starter, one goroutine locked to its thread, is made
	// at the first Start and lives until Close.
	gsMon := goroutines() + 1
	env := s.env()
	bad := tally{}
	var mu sync.Mutex
	// Made before the first checkpoint, so that the soak's own
	// bookkeeping does not grow with the executions it counts.
	seen := make([]int32, n)
	ends := make([]kindEnds, len(ks))
	var cps []Checkpoint
	start := time.Now()
	for done := 0; done < n; {
		round := min(every, n-done)
		var wg sync.WaitGroup
		next := make(chan int)
		for range s.Parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					k := ks[i%len(ks)]
					spec := cgroupmon.Spec{
						ID: s.id("mixed", i), Language: k.name, Command: k.command,
						Env: env, Timeout: k.timeout, Limits: k.limits,
					}
					ex, err := m.Run(context.Background(), spec)
					mu.Lock()
					seen[i]++
					mu.Unlock()
					if err != nil && !errors.Is(err, cgroupmon.ErrStart) {
						bad.addSync(&mu, "Run failed: "+firstWords(err.Error()), err.Error())
						continue
					}
					if ex.ID != spec.ID {
						bad.addSync(&mu, "record of another id", ex.ID+" for "+spec.ID)
					}
					pids, ok := ex.Usage.PidsPeak.Get()
					mu.Lock()
					ends[i%len(ks)].add(ex.Status, ex.LeftoverProcessesKilled, pids, ok)
					mu.Unlock()
					if err := k.check(ex.Status, ex.ExitCode, ex.Signal, ex.LeftoverProcessesKilled, pids, ok); err != nil {
						bad.addSync(&mu, k.name+": "+err.Error(), spec.ID+" ("+ex.Reason+")")
					}
				}
			}()
		}
		for i := done; i < done+round; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		done += round
		c := Checkpoint{Done: done, Elapsed: time.Since(start)}
		c.Procs, c.Leaves = s.checkNothingLeft(fmt.Sprintf("mixed after %d", done))
		if z := settle(2*time.Second, func() []string { return children(0) }); len(z) > 0 {
			s.problem("mixed after %d: %d children of the monitor left: %v", done, len(z), first(z, 5))
		}
		c.Goroutines = settleAtMost(2*time.Second, gsMon, goroutines)
		if c.Goroutines > gsMon {
			s.problem("mixed after %d: %d goroutines, %d after New with the starter", done, c.Goroutines, gsMon)
		}
		c.Heap, c.RSS, c.FDs = heap(), statusField(0, "VmRSS"), countFDs(0)
		if s.HeapProfiles != "" {
			s.writeHeapProfile(done)
		}
		s.printCheckpoint(c, n)
		cps = append(cps, c)
	}
	for i, k := range ks {
		s.printf("  %-8s %s\n", k.name, ends[i])
	}
	bad.report(s, "mixed")
	for i, k := range seen {
		if k != 1 {
			s.problem("mixed: %s ran %d times", s.id("mixed", i), k)
		}
	}
	if got := coll.Summary().TotalExecutions; got != uint64(n) && !s.NoSink {
		s.problem("mixed: the sink got %d records for %d executions", got, n)
	}
	if err := m.Close(); err != nil {
		s.problem("mixed: Close: %v", err)
	}
	s.checkNothingLeft("mixed after Close")
	g := settleAtMost(2*time.Second, gs0, goroutines)
	if g > gs0 {
		s.problem("mixed: %d goroutines after Close, %d before New", g, gs0)
	}
	if f := countFDs(0); f != fds0 {
		s.problem("mixed: %d descriptors after Close, %d before New", f, fds0)
	}
	s.flat("mixed", cps)
	return cps
}

// writeHeapProfile writes the heap profile of checkpoint done.
func (s *Soak) writeHeapProfile(done int) {
	f, err := os.Create(filepath.Join(s.HeapProfiles, fmt.Sprintf("heap-%d.pprof", done)))
	if err == nil {
		err = pprof.Lookup("heap").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.problem("heap profile: %v", err)
	}
}

// kindEnds counts how the executions of one kind ended.
type kindEnds struct {
	status             map[metrics.Status]int
	leftovers, maxPids uint64
	pidsMeasured       int
}

func (e *kindEnds) add(st metrics.Status, leftovers int, pids uint64, pidsOK bool) {
	if e.status == nil {
		e.status = map[metrics.Status]int{}
	}
	e.status[st]++
	e.leftovers += uint64(max(leftovers, 0))
	if pidsOK {
		e.pidsMeasured++
		e.maxPids = max(e.maxPids, pids)
	}
}

func (e kindEnds) String() string {
	out := fmt.Sprint(e.status) + fmt.Sprintf(", leftover processes killed %d", e.leftovers)
	if e.pidsMeasured > 0 {
		out += fmt.Sprintf(", highest pids peak %d", e.maxPids)
	}
	return out
}

func (t tally) addSync(mu *sync.Mutex, key, example string) {
	mu.Lock()
	defer mu.Unlock()
	t.add(key, example)
}

// firstWords keeps the start of an error message as a tally key.
func firstWords(s string) string {
	if i := strings.IndexAny(s, ":("); i > 0 {
		return s[:i]
	}
	return s
}

// AliveResult is what Alive measured.
type AliveResult struct {
	N int
	// FDsPerExecution is the monitor's descriptors per live execution.
	FDsPerExecution float64
	// Window is the steady window over which CPU was measured.
	Window time.Duration
	// CPU is the monitor's own CPU time over the window (/proc/self/stat).
	CPU time.Duration
	// Parts is the CPU time of the sampler's parts over the window, from
	// a CPU profile of it: "cgroup" (cpu.stat reads), "tree" (the procfs
	// tree's Sample), "tick" (the whole per-execution tick), "loop" (the
	// sampler's loop); nil when no profile was asked for.
	Parts map[string]time.Duration
	// Status counts the executions by how they ended.
	Status map[metrics.Status]int
	// Getpid is the median time of a getpid system call just before the
	// window: the floor under every read of the sampler, which a loaded
	// machine raises many times over.
	Getpid time.Duration
	// CPUStatRead is the median time of a pread of one execution's
	// cpu.stat on a held descriptor, right after the window (0 without a
	// cgroup): what the cgroup part costs per execution per tick, less
	// the parse and the bookkeeping.
	CPUStatRead time.Duration
}

// profiled names the functions whose cumulative CPU Alive reports.
var profiled = map[string]string{
	"cgroup": "github.com/cgmon/cgmon/cgroupmon.(*leaf).readCPU",
	"tree":   "github.com/cgmon/cgmon/internal/proctree.(*Tree).Sample",
	"tick":   "github.com/cgmon/cgmon/cgroupmon.(*run).tick",
	"loop":   "github.com/cgmon/cgmon/cgroupmon.(*sampler).loop",
}

// Alive starts n executions in one Monitor that each block reading a
// shared pipe until all have started (the start barrier: closing the
// pipe's write end ends them all; one that starts late reads the end at
// once, so nothing can hang), measures the monitor's own CPU over a
// steady window with all of them sleeping, then releases them and checks
// that each succeeded. With profile, the window is also CPU-profiled to
// split the sampler's cost into its cgroup and procfs tree parts (go tool
// pprof reads the profile).
func (s *Soak) Alive(n int, interval, window time.Duration, profile bool) AliveResult {
	res := AliveResult{N: n, Window: window, Status: map[metrics.Status]int{}}
	s.printf("alive: %d executions at once in one Monitor (backend %s, interval %v)\n", n, s.backend(), interval)
	fds0 := countFDs(0)
	m, err := cgroupmon.New(cgroupmon.Options{Backend: s.Backend, Interval: interval, Subreaper: true})
	if err != nil {
		s.problem("alive: New: %v", err)
		return res
	}
	defer func() {
		if err := m.Close(); err != nil {
			s.problem("alive: Close: %v", err)
		}
		s.checkNothingLeft("alive after Close")
		if f := countFDs(0); f != fds0 {
			s.problem("alive: %d descriptors after Close, %d before New", f, fds0)
		}
	}()
	s.printf("  backend %s, root %q\n", m.Backend(), m.Probe().Root)
	rd, wr, err := os.Pipe()
	if err != nil {
		s.problem("alive: pipe: %v", err)
		return res
	}
	defer rd.Close()
	released := false
	release := func() {
		if !released {
			released = true
			wr.Close()
		}
	}
	defer release()
	fdsMon := countFDs(0)
	env := s.env()
	hs := make([]*cgroupmon.Handle, 0, n)
	t0 := time.Now()
	for i := range n {
		h, err := m.Start(context.Background(), cgroupmon.Spec{
			ID: s.id("alive", i), Command: []string{"/bin/cat"}, Env: env, Stdin: rd,
		})
		if err != nil {
			s.problem("alive: Start %d: %v", i, err)
			break
		}
		hs = append(hs, h)
	}
	s.printf("  started %d in %.1f s\n", len(hs), time.Since(t0).Seconds())
	// All started: each is cat, asleep on the pipe.
	deadline := time.Now().Add(time.Minute)
	for i := 0; i < len(hs); {
		if blocked(hs[i].Pid(), "cat") {
			i++
			continue
		}
		if time.Now().After(deadline) {
			s.problem("alive: execution %d (pid %d) is not asleep in cat after a minute", i, hs[i].Pid())
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(hs) > 0 {
		res.FDsPerExecution = float64(countFDs(0)-fdsMon) / float64(len(hs))
	}
	s.printf("  all asleep after %.1f s; %.2f monitor descriptors per execution\n", time.Since(t0).Seconds(), res.FDsPerExecution)
	time.Sleep(2 * interval) // every run has been ticked: steady state

	var prof *os.File
	if profile {
		if prof, err = os.CreateTemp("", "cgmon-soak-*.pprof"); err != nil {
			s.problem("alive: profile: %v", err)
		} else if err := pprof.StartCPUProfile(prof); err != nil {
			s.problem("alive: profile: %v", err)
			prof.Close()
			os.Remove(prof.Name())
			prof = nil
		}
	}
	res.Getpid = getpidCost()
	c0, err0 := selfCPU()
	time.Sleep(window)
	c1, err1 := selfCPU()
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
		path := prof.Name()
		if s.HeapProfiles != "" { // keep it beside the heap profiles
			keep := filepath.Join(s.HeapProfiles, "alive-"+string(m.Backend())+".pprof")
			if os.Rename(path, keep) == nil {
				path = keep
				s.printf("  CPU profile of the window: %s\n", keep)
			}
		}
		if path == prof.Name() {
			defer os.Remove(path)
		}
		if res.Parts, err = profileParts(path); err != nil {
			s.problem("alive: reading the profile: %v", err)
		}
	}
	if err0 != nil || err1 != nil {
		s.problem("alive: /proc/self/stat: %v", errors.Join(err0, err1))
	}
	if len(hs) > 0 && hs[0].CgroupPath() != "" {
		res.CPUStatRead = preadCost(filepath.Join(hs[0].CgroupPath(), "cpu.stat"))
	}
	res.CPU = c1 - c0
	pct := func(d time.Duration) string { return fmt.Sprintf("%.2f%%", 100*d.Seconds()/window.Seconds()) }
	s.printf("  monitor CPU over %v: %v = %s of one core (/proc/self/stat); a getpid took %v", window, res.CPU, pct(res.CPU), res.Getpid)
	if res.CPUStatRead > 0 {
		s.printf(", a pread of one cpu.stat %v", res.CPUStatRead)
	}
	s.printf("\n")
	for _, k := range []string{"loop", "tick", "cgroup", "tree"} {
		if d, ok := res.Parts[k]; ok {
			s.printf("    %-6s %-55s %8v  %s of one core (profile)\n", k, profiled[k], d, pct(d))
		}
	}

	release()
	for i, h := range hs {
		ex, err := h.Wait()
		if err != nil {
			s.problem("alive: execution %d: %v", i, err)
			continue
		}
		res.Status[ex.Status]++
		if ex.Status != metrics.StatusSuccess || ex.ExitCode != 0 {
			s.problem("alive: execution %d ended %s, exit %d (%s)", i, ex.Status, ex.ExitCode, ex.Reason)
		}
	}
	if len(hs) != n {
		s.problem("alive: %d of %d started", len(hs), n)
	}
	s.printf("  ended: %v\n", res.Status)
	return res
}

// getpidCost returns the median of 21 timings of 1000 getpid system calls
// each, per call.
func getpidCost() time.Duration {
	ts := make([]time.Duration, 21)
	for i := range ts {
		t0 := time.Now()
		for range 1000 {
			syscall.Getpid()
		}
		ts[i] = time.Since(t0) / 1000
	}
	return median(ts)
}

// preadCost returns the median of 21 timings of 500 preads each of the
// file at path on one held descriptor, per pread; 0 if it cannot be read.
func preadCost(path string) time.Duration {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, 4096)
	ts := make([]time.Duration, 21)
	for i := range ts {
		t0 := time.Now()
		for range 500 {
			if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
				return 0
			}
		}
		ts[i] = time.Since(t0) / 500
	}
	return median(ts)
}

// blocked reports whether pid runs comm and sleeps.
func blocked(pid int, comm string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st := string(b)
	i, j := strings.IndexByte(st, '('), strings.LastIndexByte(st, ')')
	if i < 0 || j < i || len(st) < j+3 {
		return false
	}
	return st[i+1:j] == comm && st[j+2] == 'S'
}

// profileParts reads the cumulative CPU of the profiled functions from a
// CPU profile with go tool pprof.
func profileParts(path string) (map[string]time.Duration, error) {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=100000", path).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof: %w", err)
	}
	parts := map[string]time.Duration{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		for k, fn := range profiled {
			if f[len(f)-1] == fn {
				d, err := time.ParseDuration(f[3])
				if err != nil {
					return nil, fmt.Errorf("pprof line %q: %w", sc.Text(), err)
				}
				parts[k] = d
			}
		}
	}
	for k := range profiled {
		if _, ok := parts[k]; !ok {
			parts[k] = 0 // not sampled at all in the window
		}
	}
	return parts, nil
}
