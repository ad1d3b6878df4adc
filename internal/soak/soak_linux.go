package soak

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cgmon/cgmon/cgroupmon"
	"github.com/cgmon/cgmon/internal/proctree"
	"github.com/cgmon/cgmon/internal/workload"
	"github.com/cgmon/cgmon/metrics"
)

// MarkerKey is the environment variable that marks every process a soak
// starts, so that any of them left behind is found in /proc whoever its
// parent has become.
const MarkerKey = "CGMON_SOAK"

// Soak is one soak run: where it reports, what it runs, and what it found
// wrong so far.
type Soak struct {
	// Out receives the progress lines and the figures.
	Out io.Writer
	// Cgmon is the cgmon binary the CLI scenarios run.
	Cgmon string
	// Backend is the Monitor's backend in the library scenarios.
	Backend cgroupmon.BackendChoice
	// Parallel is how many executions run at once in the mixed scenarios.
	Parallel int
	// VM adds the kinds that need a cgroup v2 host with the memory and
	// pids controllers: an OOM kill and a fork bomb held by pids.max.
	VM bool
	// HeapProfiles, when not empty, is a directory where Mixed writes a
	// heap profile at each checkpoint (heap-DONE.pprof), to find what
	// grew with go tool pprof -diff_base, and Alive keeps the CPU profile
	// of its window (alive-BACKEND.pprof).
	HeapProfiles string
	// NoSink runs Mixed without a Collector as the Monitor's Sink.
	NoSink bool

	token    string
	mount    string // the cgroup v2 mount searched for leaves; "" when none
	problems []string
}

// New prepares a soak: a fresh token (the environment marker and the
// prefix of every execution id) and the cgroup v2 mount to search.
func New(out io.Writer) (*Soak, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &Soak{Out: out, Parallel: 8, token: "soak" + strconv.Itoa(os.Getpid()) + hex.EncodeToString(b[:])}
	p, err := cgroupmon.ProbeHost(cgroupmon.Options{})
	if err != nil {
		return nil, err
	}
	s.mount = p.Mount
	return s, nil
}

// Token is the soak's marker: the value of MarkerKey in its executions'
// environment and the prefix of their ids.
func (s *Soak) Token() string { return s.token }

// Problems lists every check that failed so far.
func (s *Soak) Problems() []string { return s.problems }

func (s *Soak) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.problems = append(s.problems, msg)
	fmt.Fprintln(s.Out, "  PROBLEM:", msg)
}

func (s *Soak) printf(format string, args ...any) { fmt.Fprintf(s.Out, format, args...) }

// env is the environment of everything the soak starts.
func (s *Soak) env() []string { return append(os.Environ(), MarkerKey+"="+s.token) }

// id is the execution id of the i-th execution of a scenario.
func (s *Soak) id(scenario string, i int) string {
	return fmt.Sprintf("%s-%s-%d", s.token, scenario, i)
}

// leftovers returns the pids of live processes carrying the soak's marker,
// other than this process and except.
func (s *Soak) leftovers(except ...int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		s.problem("listing /proc: %v", err)
		return nil
	}
	want := []byte(MarkerKey + "=" + s.token + "\x00")
	self := os.Getpid()
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || slices.Contains(except, pid) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		if bytes.HasPrefix(b, want) || bytes.Contains(b, append([]byte{0}, want...)) {
			out = append(out, pid)
		}
	}
	return out
}

// children describes the children of process pid (0: this one), each
// as "PID STATE COMMAND": none may be left once every execution has been
// waited for, not even a zombie (which carries no environment to find it
// by).
func children(pid int) []string {
	dir := "/proc/self"
	if pid != 0 {
		dir = fmt.Sprintf("/proc/%d", pid)
	}
	tasks, _ := filepath.Glob(dir + "/task/*/children")
	var out []string
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, c := range strings.Fields(string(b)) {
			st, _ := os.ReadFile("/proc/" + c + "/stat")
			desc := c
			if i, j := bytes.IndexByte(st, '('), bytes.LastIndexByte(st, ')'); i > 0 && j > i && len(st) > j+2 {
				desc += " " + string(st[j+2]) + " " + string(st[i+1:j])
			}
			out = append(out, desc)
		}
	}
	return out
}

// leaves returns the cgroup directories named after this soak's executions
// anywhere under the cgroup v2 mount.
func (s *Soak) leaves() []string {
	if s.mount == "" {
		return nil
	}
	var out []string
	_ = filepath.WalkDir(s.mount, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a cgroup removed while walking
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), s.token) {
			out = append(out, p)
			return fs.SkipDir
		}
		return nil
	})
	return out
}

// settle waits up to d for f to report nothing, and returns what it
// reports last: an emptied cgroup is removed at the sampler's next tick,
// an exec.Cmd goroutine ends just after the run.
func settle[T any](d time.Duration, f func() []T) []T {
	deadline := time.Now().Add(d)
	for {
		v := f()
		if len(v) == 0 || time.Now().After(deadline) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settleAtMost waits up to d for f to be at most limit, and returns its
// last value.
func settleAtMost(d time.Duration, limit int, f func() int) int {
	deadline := time.Now().Add(d)
	for {
		v := f()
		if v <= limit || time.Now().After(deadline) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkNothingLeft reports leftover processes and cgroups of the soak.
func (s *Soak) checkNothingLeft(where string, except ...int) (procs, leaves int) {
	p := settle(2*time.Second, func() []int { return s.leftovers(except...) })
	l := settle(2*time.Second, s.leaves)
	if len(p) > 0 {
		s.problem("%s: %d processes left: %v", where, len(p), describe(p))
	}
	if len(l) > 0 {
		s.problem("%s: %d cgroups left: %v", where, len(l), first(l, 5))
	}
	return len(p), len(l)
}

// describe names up to five pids with their command lines.
func describe(pids []int) []string {
	var out []string
	for _, pid := range first(pids, 5) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, fmt.Sprintf("%d %q", pid, strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")))
	}
	return out
}

func first[T any](v []T, n int) []T {
	if len(v) > n {
		return v[:n]
	}
	return v
}

// countFDs counts the open descriptors of process pid (0: this one).
func countFDs(pid int) int {
	dir := "/proc/self/fd"
	if pid != 0 {
		dir = fmt.Sprintf("/proc/%d/fd", pid)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	if pid == 0 {
		return len(ents) - 1 // ReadDir's own descriptor
	}
	return len(ents)
}

// statusKiB returns a "Key:   N kB" (or plain number) line of
// /proc/PID/status (0: this process).
func statusField(pid int, key string) uint64 {
	p := "/proc/self/status"
	if pid != 0 {
		p = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.ParseUint(f[0], 10, 64)
			if len(f) > 1 && f[1] == "kB" {
				n <<= 10
			}
			return n
		}
	}
	return 0
}

// goroutines counts goroutines other than os/signal's loop, which the
// first signal.Notify starts for good.
func goroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.TrimSpace(g) != "" && !strings.Contains(g, "os/signal.loop") && !strings.Contains(g, "os/signal.signal_recv") {
			n++
		}
	}
	return n
}

// heap returns the live heap after a collection, in bytes.
func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// selfCPU returns this process's CPU time (user + system) from
// /proc/self/stat, with its 10 ms resolution.
func selfCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	st, err := proctree.ParseStat(b)
	if err != nil {
		return 0, err
	}
	return time.Duration(st.UTimeTicks+st.STimeTicks) * 10 * time.Millisecond, nil
}

// mib formats bytes in MiB.
func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// median of ds; 0 when empty.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := slices.Clone(ds)
	slices.Sort(c)
	return c[len(c)/2]
}

// kind is one kind of execution in the mix and what it must end as.
type kind struct {
	name    string
	command []string
	timeout time.Duration
	limits  *specs.LinuxResources
	status  metrics.Status
	// orTimeout also accepts the end by its timeout.
	orTimeout bool
	exit      int // checked when status is error
	signal    int // checked when status is signaled
	// leftovers is the least number of leftover processes cgmon must
	// have killed.
	leftovers int
	// maxPids, when not 0, is the most processes the execution may have
	// had at once (the fork bomb under pids.max), where measured.
	maxPids uint64
}

// kinds returns the mix: success, error, timeout, killed by a signal,
// failed start, a leftover daemon, and with vm an OOM kill and a fork
// bomb held by pids.max.
func kinds(vm bool) ([]kind, error) {
	wl := map[string]string{}
	for _, n := range []string{"stubborn", "daemon", "alloc", "forkbomb"} {
		p, err := workload.Path(n)
		if err != nil {
			return nil, err
		}
		wl[n] = p
	}
	ks := []kind{
		{name: "success", command: []string{"/bin/true"}, status: metrics.StatusSuccess},
		{name: "error", command: []string{"/bin/sh", "-c", "exit 3"}, status: metrics.StatusError, exit: 3},
		{name: "timeout", command: []string{wl["stubborn"]}, timeout: 30 * time.Millisecond, status: metrics.StatusTimeout},
		{name: "signal", command: []string{"/bin/sh", "-c", "kill -KILL $$"}, status: metrics.StatusSignaled, signal: 9},
		{name: "nostart", command: []string{"/nonexistent/cgmon-soak-no-such-command"}, status: metrics.StatusFailedToStart},
		{name: "daemon", command: []string{wl["daemon"], "30000"}, status: metrics.StatusSuccess, leftovers: 1},
	}
	if vm {
		memLimit, pidsLimit := int64(16<<20), int64(16)
		ks = append(ks,
			kind{name: "oom", command: []string{wl["alloc"], "64", "100"}, status: metrics.StatusOOM,
				limits: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &memLimit}}},
			// How many of its children outlive it depends on how long its
			// failing forks take (under emulation, longer than their 2 s
			// sleep), and a loaded guest can keep it past its timeout (4
			// in 1250 of a 10 000 run): held by pids.max and ended by
			// itself or by cgmon's timeout and kill.
			kind{name: "forkbomb", command: []string{wl["forkbomb"], "200"}, timeout: 10 * time.Second, status: metrics.StatusSuccess,
				orTimeout: true, limits: &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &pidsLimit}}, maxPids: uint64(pidsLimit)},
		)
	}
	return ks, nil
}

// check compares one execution's end with what its kind must end as.
func (k kind) check(status metrics.Status, exit, signal, leftovers int, pidsPeak uint64, pidsOK bool) error {
	var errs []string
	if status != k.status && !(k.orTimeout && status == metrics.StatusTimeout) {
		errs = append(errs, fmt.Sprintf("status %s, want %s", status, k.status))
	}
	if k.status == metrics.StatusError && exit != k.exit {
		errs = append(errs, fmt.Sprintf("exit code %d, want %d", exit, k.exit))
	}
	if k.status == metrics.StatusSignaled && signal != k.signal {
		errs = append(errs, fmt.Sprintf("signal %d, want %d", signal, k.signal))
	}
	if leftovers < k.leftovers {
		errs = append(errs, fmt.Sprintf("%d leftover processes killed, want at least %d", leftovers, k.leftovers))
	}
	if k.maxPids > 0 && pidsOK && pidsPeak > k.maxPids {
		errs = append(errs, fmt.Sprintf("pids peak %d above pids.max %d", pidsPeak, k.maxPids))
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// tally counts problems of one kind, so that a systematic failure is one
// line with a count and an example rather than thousands.
type tally map[string]*struct {
	n       int
	example string
}

func (t tally) add(key, example string) {
	e := t[key]
	if e == nil {
		e = &struct {
			n       int
			example string
		}{example: example}
		t[key] = e
	}
	e.n++
}

func (t tally) report(s *Soak, where string) {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.problem("%s: %d × %s (e.g. %s)", where, t[k].n, k, t[k].example)
	}
}
