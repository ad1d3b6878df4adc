//go:build linux

package proctree

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/internal/workload"
	"github.com/cgmon/cgmon/metrics"
)

// helperEnv names the helper role a re-executed test binary plays.
const helperEnv = "CGMON_HELPER"

// TestMain runs the test binary as a helper process when helperEnv is set:
//
//	hold:       allocate and touch CGMON_MIB MiB, print "ready", sleep
//	sleep:      print "ready", sleep
//	ignoreterm: ignore SIGTERM, print "ready", sleep
//	parent:     start the children CGMON_CHILDREN lists (comma-separated
//	            roles, "setsid:" to put one in a new session), print their
//	            pids and "ready" once each is ready, sleep
func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		helper(role)
		os.Exit(0)
	}
	// os/signal starts one goroutine for the life of the process on first
	// use; start it now so that leak checks do not count it.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGURG)
	signal.Stop(c)
	os.Exit(m.Run())
}

var sink []byte

func helper(role string) {
	switch role {
	case "hold":
		mib, _ := strconv.Atoi(os.Getenv("CGMON_MIB"))
		sink = make([]byte, mib<<20)
		for i := 0; i < len(sink); i += 4096 {
			sink[i] = 1
		}
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
	case "sleep":
	case "zombiecheck":
		// A fresh process, so that no child of an earlier test is about.
		if err := zombieCheck(); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	case "parent":
		for _, c := range strings.Split(os.Getenv("CGMON_CHILDREN"), ",") {
			setsid := strings.HasPrefix(c, "setsid:")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+strings.TrimPrefix(c, "setsid:"))
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
			out, err := cmd.StdoutPipe()
			if err != nil {
				os.Exit(3)
			}
			if err := cmd.Start(); err != nil {
				os.Exit(3)
			}
			if l, _ := bufio.NewReader(out).ReadString('\n'); l != "ready\n" {
				os.Exit(4)
			}
			fmt.Printf("%d\n", cmd.Process.Pid)
		}
	default:
		os.Exit(5)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
}

// leakCheck fails t when it ends with more fds or goroutines than it began.
func leakCheck(t *testing.T) {
	t.Helper()
	fds, gs := countFDs(t), runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > gs && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > gs {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutines: %d before, %d after\n%s", gs, n, buf[:runtime.Stack(buf, true)])
		}
		if n := countFDs(t); n != fds {
			t.Errorf("open fds: %d before, %d after", fds, n)
		}
	})
}

// reaper enables a Reaper for one test. Being a subreaper is process-wide
// and stays on; the Reaper's goroutine is stopped at cleanup.
func reaper(t *testing.T, fs FS) *Reaper {
	t.Helper()
	r, err := EnableReaper(fs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func procFS(t testing.TB) FS {
	t.Helper()
	fs, err := NewFS("")
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// execution is one started command under a Tree.
type execution struct {
	cmd  *exec.Cmd
	tree *Tree
	out  *bufio.Reader
	pids []int // printed by a parent helper
}

// start starts cmd in its own process group, protected from r, and tracks
// it with a Tree registered with r.
func start(t *testing.T, fs FS, r *Reaper, cmd *exec.Cmd, opts TreeOptions) *execution {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	done := r.Starting()
	err = cmd.Start()
	if err == nil {
		r.Protect(cmd.Process.Pid)
	}
	done()
	if err != nil {
		t.Fatal(err)
	}
	e := &execution{cmd: cmd, tree: fs.NewTree(cmd.Process.Pid, opts), out: bufio.NewReader(out)}
	r.Register(e.tree)
	t.Cleanup(func() {
		if e.cmd.ProcessState == nil {
			e.tree.Kill(unix.SIGKILL)
			e.wait(t, r)
		}
		r.Unregister(e.tree)
		e.tree.Close()
	})
	return e
}

// helperCmd re-executes the test binary as role.
func helperCmd(role string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+role), env...)
	return cmd
}

// ready reads the helper's pid lines up to "ready".
func (e *execution) ready(t *testing.T) {
	t.Helper()
	for {
		l, err := e.out.ReadString('\n')
		if err != nil {
			t.Fatalf("helper did not get ready: %v", err)
		}
		if l == "ready\n" {
			return
		}
		pid, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil {
			t.Fatalf("helper said %q", l)
		}
		e.pids = append(e.pids, pid)
	}
}

// wait waits for the main process, accounts its rusage and unprotects it.
func (e *execution) wait(t *testing.T, r *Reaper) {
	t.Helper()
	e.cmd.Wait()
	e.tree.Reaped(e.cmd.Process.Pid, RusageOf(e.cmd.ProcessState))
	r.Unprotect(e.cmd.Process.Pid)
}

// alive reports whether pid names a process that is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st, err := ParseStat(b)
	return err == nil && st.State != 'Z'
}

// eventually polls cond every 10 ms for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func within(got, want uint64, frac float64) bool {
	d := float64(got) - float64(want)
	return d <= frac*float64(want) && -d <= frac*float64(want)
}

func TestMaxRSS64MiB(t *testing.T) {
	leakCheck(t)
	fs := procFS(t)
	r := reaper(t, fs)
	alloc, err := workload.Path("alloc")
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, fs, r, exec.Command(alloc, "64", "400"), TreeOptions{})
	const want = 64 << 20
	// While it holds the memory: sampled RSS and VmHWM.
	var peak uint64
	eventually(2*time.Second, func() bool {
		s, _ := e.tree.Sample()
		peak = max(peak, s.RSS)
		return peak >= want
	})
	if err := e.tree.Snapshot(); err != nil {
		t.Fatal(err)
	}
	live := e.tree.Totals()
	if v, ok := live.MaxRSS.Get(); !ok || !within(v, want, 0.10) || live.MaxRSS.Source() != metrics.SourceProcVmHWM {
		t.Errorf("live MaxRSS = %d (%v, %q), want 64 MiB ± 10%% from VmHWM", v, ok, live.MaxRSS.Source())
	}
	e.wait(t, r)
	tot := e.tree.Totals()
	if v, ok := tot.MaxRSS.Get(); !ok || !within(v, want, 0.10) {
		t.Errorf("MaxRSS = %d (%v), want 64 MiB ± 10%%", v, ok)
	}
	if src := tot.MaxRSS.Source(); src != metrics.SourceRusageMaxRSS && src != metrics.SourceProcVmHWM {
		t.Errorf("MaxRSS source = %q", src)
	}
	if v, ok := tot.PeakRSS.Get(); !ok || !within(v, want, 0.10) {
		t.Errorf("PeakRSS = %d (%v), want 64 MiB ± 10%%", v, ok)
	}
	if tot.CPUTotal.Source() != metrics.SourceRusage {
		t.Errorf("CPU source after the only process was reaped = %q, want rusage", tot.CPUTotal.Source())
	}
}

func TestSampleSumsRSS(t *testing.T) {
	leakCheck(t)
	fs := procFS(t)
	r := reaper(t, fs)
	e := start(t, fs, r, helperCmd("parent", "CGMON_CHILDREN=hold,hold,setsid:hold", "CGMON_MIB=16"), TreeOptions{})
	e.ready(t)
	s, err := e.tree.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if s.Procs != 4 {
		t.Fatalf("Procs = %d, want 4 (pids %v)", s.Procs, e.tree.Pids(nil))
	}
	// The sum of VmRSS read independently, just after.
	var sum uint64
	for _, pid := range append([]int{e.cmd.Process.Pid}, e.pids...) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseStatusMem(b)
		if err != nil {
			t.Fatal(err)
		}
		sum += m.VmRSS
	}
	if sum < 3*16<<20 {
		t.Fatalf("helpers hold only %d bytes", sum)
	}
	if !within(s.RSS, sum, 0.05) {
		t.Errorf("sampled RSS = %d, VmRSS sum = %d", s.RSS, sum)
	}
	n, err := e.tree.Kill(unix.SIGKILL)
	if err != nil || n != 4 {
		t.Errorf("Kill = %d, %v; want 4", n, err)
	}
	e.wait(t, r)
	for _, pid := range e.pids {
		if !eventually(2*time.Second, func() bool { return !alive(pid) }) {
			t.Errorf("pid %d survived", pid)
		}
	}
}

func TestKillTreeIgnoringSIGTERM(t *testing.T) {
	leakCheck(t)
	fs := procFS(t)
	r := reaper(t, fs)
	e := start(t, fs, r, helperCmd("parent", "CGMON_CHILDREN=ignoreterm,setsid:ignoreterm,setsid:sleep"), TreeOptions{})
	e.ready(t)
	if s, err := e.tree.Sample(); err != nil || s.Procs != 4 {
		t.Fatalf("Sample = %+v, %v; want 4 processes", s, err)
	}
	n, err := e.tree.Kill(unix.SIGTERM)
	if err != nil || n != 4 {
		t.Errorf("Kill(SIGTERM) = %d, %v; want 4", n, err)
	}
	e.wait(t, r) // the Go parent dies of SIGTERM
	if !eventually(2*time.Second, func() bool { return !alive(e.pids[2]) }) {
		t.Error("the setsid'd sleeper survived SIGTERM")
	}
	time.Sleep(50 * time.Millisecond)
	if !alive(e.pids[0]) || !alive(e.pids[1]) {
		t.Fatal("a child ignoring SIGTERM died of it")
	}
	// The survivors are orphans now (one in a session of its own, out of
	// reach of the group kill); the tree still tracks them.
	n, err = e.tree.Kill(unix.SIGKILL)
	if err != nil || n != 2 {
		t.Errorf("Kill(SIGKILL) = %d, %v; want 2", n, err)
	}
	for _, pid := range e.pids {
		if !eventually(2*time.Second, func() bool { return !alive(pid) }) {
			t.Errorf("pid %d survived SIGKILL", pid)
		}
	}
	// The reaper reaps the orphans it owns: none stays a zombie.
	for _, pid := range e.pids {
		if !eventually(2*time.Second, func() bool {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
			return err != nil
		}) {
			t.Errorf("pid %d not reaped", pid)
		}
	}
}

func TestReaperAdoptsDoubleFork(t *testing.T) {
	daemon, err := workload.Path("daemon")
	if err != nil {
		t.Fatal(err)
	}
	for _, marker := range []bool{true, false} {
		t.Run(fmt.Sprintf("marker=%v", marker), func(t *testing.T) {
			leakCheck(t)
			fs := procFS(t)
			r := reaper(t, fs)
			cmd := exec.Command(daemon, "0", "300") // grandchild burns 300 ms
			var opts TreeOptions
			if marker {
				opts.Marker = NewMarker()
				cmd.Env = append(os.Environ(), opts.Marker)
			}
			e := start(t, fs, r, cmd, opts)
			l, err := e.out.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			g, _ := strconv.Atoi(strings.TrimSpace(l))
			e.wait(t, r)
			reaped0, swept0 := r.Stats()
			for alive(g) {
				e.tree.Sample()
				time.Sleep(10 * time.Millisecond)
			}
			if marker {
				if !e.tree.Owns(g) {
					t.Fatalf("grandchild %d not adopted", g)
				}
				if !eventually(2*time.Second, func() bool { reaped, _ := r.Stats(); return reaped > reaped0 }) {
					t.Fatal("the reaper did not reap the grandchild")
				}
			}
			r.Unregister(e.tree) // the sweep takes an orphan no tree claimed
			reaped, swept := r.Stats()
			if reaped <= reaped0 {
				t.Errorf("grandchild not reaped")
			}
			// Without a marker the grandchild is claimed while it still
			// shares the main process's group (the daemon workload prints
			// its pid before it calls setsid), else swept at Unregister.
			if !marker && swept <= swept0 && !e.tree.Owns(g) {
				t.Errorf("without a marker the unclaimed grandchild should be reaped by the Unregister sweep")
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", g)); err == nil {
				t.Errorf("grandchild %d still exists", g)
			}
			tot := e.tree.Totals()
			if v, ok := tot.CPUTotal.Get(); !ok || v < 270*time.Millisecond || v > 600*time.Millisecond {
				t.Errorf("CPUTotal = %v (%v), want the grandchild's 300 ms", v, ok)
			}
			if tot.CPUTotal.Source() != metrics.SourceRusage {
				t.Errorf("CPU source = %q, want rusage", tot.CPUTotal.Source())
			}
		})
	}
}

func TestReaperLeavesProtectedAndForeign(t *testing.T) {
	leakCheck(t)
	fs := procFS(t)
	r := reaper(t, fs)
	// A child of ours that no tree owns and that started before any tree:
	// the reaper must leave its zombie to its own Wait.
	foreign := exec.Command("/bin/true")
	if err := foreign.Start(); err != nil {
		t.Fatal(err)
	}
	e := start(t, fs, r, exec.Command("/bin/sh", "-c", "exit 3"), TreeOptions{})
	time.Sleep(100 * time.Millisecond)
	r.kick()
	e.wait(t, r)
	if e.cmd.ProcessState.ExitCode() != 3 {
		t.Errorf("exec.Cmd's wait saw exit %d, want 3: the reaper stole it", e.cmd.ProcessState.ExitCode())
	}
	r.Unregister(e.tree)
	if err := foreign.Wait(); err != nil {
		t.Errorf("foreign child's Wait: %v (reaped by the Reaper?)", err)
	}
}

// TestZombieChild: the reaper's one-call check sees an exited child that
// nobody has waited for, and nothing once it is waited for, and leaves it
// waitable. It runs in a fresh helper process: earlier tests leave this
// one a subreaper with orphans it never waits for, by design.
func TestZombieChild(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=zombiecheck")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

func zombieCheck() error {
	if zombieChild() {
		return fmt.Errorf("a zombie child before the check started one")
	}
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for !zombieChild() {
		if time.Now().After(deadline) {
			return fmt.Errorf("the exited child never showed as a zombie")
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("wait after the check: %w (the check must leave the child waitable)", err)
	}
	if zombieChild() {
		return fmt.Errorf("a zombie child after it was waited for")
	}
	return nil
}
