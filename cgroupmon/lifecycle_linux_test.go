package cgroupmon

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

// The life of cgmon itself (issue "nothing left behind"): a monitor that
// dies, the cgroups it leaves, who may remove what, and the workloads that
// try to outlive their execution.

// Helper processes: the test binary runs again as one of these when
// envHelper is set.
const (
	envHelper = "CGMON_TEST_HELPER" // "monitor" or "bomb"
	envRoot   = "CGMON_TEST_ROOT"   // monitor: the cgroup root
	envCmd    = "CGMON_TEST_CMD"    // monitor: the command, fields split by \x1f
	envCount  = "CGMON_TEST_COUNT"  // monitor: how many executions to start
	envBomb   = "CGMON_TEST_BOMB"   // bomb: the fork bomb to exec
	envUser   = "CGMON_TEST_USER"   // monitor: run the executions as uid and gid 65534 when "nobody"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envHelper) {
	case "monitor":
		os.Exit(monitorHelper())
	case "bomb":
		os.Exit(bombHelper())
	}
	os.Exit(m.Run())
}

// monitorHelper is a monitor process to be killed: it starts the
// executions, prints "READY <cgroup> <pid>" for each, and waits for ever.
func monitorHelper() int {
	m, err := New(Options{CgroupRoot: os.Getenv(envRoot), Interval: 50 * time.Millisecond})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	n, _ := strconv.Atoi(os.Getenv(envCount))
	for i := 0; i < max(n, 1); i++ {
		s := Spec{ID: "helper", Command: strings.Split(os.Getenv(envCmd), "\x1f")}
		if os.Getenv(envUser) == "nobody" {
			s.User = &nobody
		}
		h, err := m.Start(context.Background(), s)
		if err != nil {
			fmt.Println("ERROR", err)
			return 1
		}
		fmt.Printf("READY %s %d\n", h.CgroupPath(), h.Pid())
	}
	select {}
}

// bombHelper becomes the unprivileged user nobody under RLIMIT_NPROC and
// execs the fork bomb: root ignores RLIMIT_NPROC, so a bomb run as root is
// bounded by nothing but cgmon's kill.
func bombHelper() int {
	lim := unix.Rlimit{Cur: 64, Max: 64}
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 1
	}
	if err := syscall.Setgroups(nil); err != nil {
		fmt.Fprintln(os.Stderr, "setgroups:", err)
		return 1
	}
	if err := syscall.Setgid(65534); err != nil {
		fmt.Fprintln(os.Stderr, "setgid:", err)
		return 1
	}
	if err := syscall.Setuid(65534); err != nil {
		fmt.Fprintln(os.Stderr, "setuid:", err)
		return 1
	}
	bomb := os.Getenv(envBomb)
	err := syscall.Exec(bomb, []string{bomb}, nil)
	fmt.Fprintln(os.Stderr, "exec:", err)
	return 1
}

var rootSeq atomic.Int64

// testRoot returns the path of a cgroup root of this test's own, which
// does not exist yet: New makes it (marked as cgmon's) and the last Close
// removes it. It is under the cgroup v2 mount, or under this process's
// own cgroup where only that is writable (a delegated rootless one). The
// test skips where neither is writable.
func testRoot(t *testing.T) string {
	t.Helper()
	p, err := ProbeHost(Options{})
	require.NoError(t, err)
	if p.Mount == "" {
		t.Skip("needs a cgroup v2 hierarchy: " + p.RootReason)
	}
	name := fmt.Sprintf("cgmon-test-%d-%d", os.Getpid(), rootSeq.Add(1))
	for _, dir := range []string{p.Mount, filepath.Join(p.Mount, p.OwnCgroup)} {
		if writableDir(dir) == nil {
			root := filepath.Join(dir, name)
			t.Cleanup(func() {
				if _, err := os.Stat(root); err == nil {
					t.Errorf("cgroup root %s left behind", root)
					_ = removeTree(root)
				}
			})
			return root
		}
	}
	t.Skipf("needs a writable cgroup v2 directory: neither %s nor the own cgroup %s is writable", p.Mount, p.OwnCgroup)
	return ""
}

// otherCgroup makes a cgroup beside root for a workload to escape into,
// removed at the end of the test.
func otherCgroup(t *testing.T, root string) string {
	t.Helper()
	dir := root + "-other"
	require.NoError(t, os.Mkdir(dir, 0o755))
	t.Cleanup(func() {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		assert.Empty(t, strings.TrimSpace(string(b)), "a process left in %s", dir)
		for _, pid := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(pid)
			_ = unix.Kill(n, unix.SIGKILL)
		}
		_ = removeTree(dir)
	})
	return dir
}

// helper is a monitor process started by startHelper.
type helper struct {
	cmd   *exec.Cmd
	leafs []string
	pids  []int
}

// startHelper starts a monitor process on root that runs n executions of
// cmd; extra tunes its SysProcAttr (a pid namespace).
func startHelper(t *testing.T, root string, n int, attr *syscall.SysProcAttr, cmd ...string) *helper {
	t.Helper()
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), envHelper+"=monitor", envRoot+"="+root, envCmd+"="+strings.Join(cmd, "\x1f"), envCount+"="+strconv.Itoa(n))
	c.SysProcAttr = attr
	c.Stderr = os.Stderr
	out, err := c.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, c.Start())
	h := &helper{cmd: c}
	t.Cleanup(h.kill)
	sc := bufio.NewScanner(out)
	for len(h.leafs) < n && sc.Scan() {
		f := strings.Fields(sc.Text())
		require.Equal(t, "READY", f[0], "helper: %s", sc.Text())
		pid, err := strconv.Atoi(f[2])
		require.NoError(t, err)
		h.leafs, h.pids = append(h.leafs, f[1]), append(h.pids, pid)
	}
	require.Len(t, h.leafs, n, "the helper monitor ended early")
	return h
}

// kill kills the monitor process with SIGKILL and waits for it.
func (h *helper) kill() {
	if h.cmd.ProcessState == nil {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
	}
}

// leafPids lists the processes in a cgroup and below it.
func leafPids(t *testing.T, dir string) []int {
	t.Helper()
	pids, err := subtreePids(dir, nil, true)
	require.NoError(t, err)
	return pids
}

// reapOwn waits for those of pids that are this process's zombie children
// (re-parented here when this test process is a subreaper).
func reapOwn(pids []int) {
	for _, pid := range pids {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	}
}

// TestMonitorDeathIsReaped: a monitor killed with SIGKILL mid-run takes
// its execution's main process with it (the parent-death signal), and
// leaves its leaf and the rest of the tree; the next New reaps them and
// says so.
func TestMonitorDeathIsReaped(t *testing.T) {
	root := testRoot(t)
	h := startHelper(t, root, 1, nil, "/bin/sh", "-c", "sleep 300 & exec sleep 301")
	leaf, main := h.leafs[0], h.pids[0]
	require.Eventually(t, func() bool { return len(leafPids(t, leaf)) == 2 }, 5*time.Second, 10*time.Millisecond, "the background sleep in %s", leaf)
	others := slices.DeleteFunc(leafPids(t, leaf), func(p int) bool { return p == main })
	h.kill()
	assertGone(t, main) // Pdeathsig
	defer reapOwn(append(others, main))
	// The rest of the tree lives on until a monitor reaps the leaf.
	assert.Equal(t, others, slices.DeleteFunc(leafPids(t, leaf), func(p int) bool { return p == main }))

	stale, err := FindStale(root)
	require.NoError(t, err)
	require.Len(t, stale, 1)
	assert.Equal(t, leaf, stale[0].Path)
	assert.Contains(t, stale[0].Owner, "pid="+strconv.Itoa(h.cmd.Process.Pid)+" ")
	assert.Equal(t, 1, stale[0].Processes)

	m := newMonitor(t, Options{CgroupRoot: root})
	rep := m.Reaped()
	assert.Empty(t, rep.Failed)
	require.Len(t, rep.Leaves, 1)
	assert.Equal(t, leaf, rep.Leaves[0].Path)
	assert.Equal(t, 1, rep.ProcessesKilled)
	assert.Contains(t, rep.String(), "reaped 1 stale cgroup(s) under "+root)
	assert.NoDirExists(t, leaf)
	for _, p := range others {
		assertGone(t, p)
	}
}

// TestReap: Reap (what `cgmon reap` runs) removes a dead monitor's leaf
// and what is in it, leaves a live monitor's alone, and removes the root
// cgmon made once it is empty.
func TestReap(t *testing.T) {
	root := testRoot(t)
	dead := startHelper(t, root, 1, nil, "/bin/sh", "-c", "sleep 300 & exec sleep 301")
	live := startHelper(t, root, 1, nil, "sleep", "300")
	require.Eventually(t, func() bool { return len(leafPids(t, dead.leafs[0])) == 2 }, 5*time.Second, 10*time.Millisecond)
	dead.kill()
	assertGone(t, dead.pids[0])
	left := leafPids(t, dead.leafs[0])
	defer reapOwn(append(left, dead.pids...))

	r, err := Reap(Options{CgroupRoot: root})
	require.NoError(t, err)
	assert.Equal(t, root, r.Root)
	require.Len(t, r.Leaves, 1)
	assert.Equal(t, dead.leafs[0], r.Leaves[0].Path)
	assert.Equal(t, 1, r.ProcessesKilled)
	for _, p := range left {
		assertGone(t, p)
	}
	assert.DirExists(t, live.leafs[0], "a live monitor's leaf")
	assert.DirExists(t, root, "the root holds a live monitor's leaf")

	live.kill()
	assertGone(t, live.pids[0])
	reapOwn(live.pids)
	r, err = Reap(Options{CgroupRoot: root})
	require.NoError(t, err)
	require.Len(t, r.Leaves, 1)
	assert.NoDirExists(t, root, "the root cgmon made, empty")

	r, err = Reap(Options{CgroupRoot: root})
	require.NoError(t, err, "a root that does not exist has nothing to reap")
	assert.Empty(t, r.Leaves)
}

// TestLiveLeafIsNotReaped: two monitors side by side on one root, in one
// process and in different pid namespaces: neither touches the other's
// live leaf; once the other dies, its leaf is reaped.
func TestLiveLeafIsNotReaped(t *testing.T) {
	t.Run("same process", func(t *testing.T) {
		root := testRoot(t)
		a := newMonitor(t, Options{CgroupRoot: root})
		h, err := a.Start(context.Background(), Spec{Command: []string{"sleep", "30"}})
		require.NoError(t, err)
		b, err := New(Options{CgroupRoot: root})
		require.NoError(t, err)
		assert.Empty(t, b.Reaped().Leaves)
		stale, err := FindStale(root)
		require.NoError(t, err)
		assert.Empty(t, stale)
		require.NoError(t, b.Close())
		assert.DirExists(t, h.CgroupPath(), "b's Close removed a's leaf")
		require.NoError(t, h.Kill())
		ex, err := h.Wait()
		require.NoError(t, err)
		assert.Equal(t, metrics.StatusCanceled, ex.Status)
	})
	t.Run("other pid namespace", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("a new pid namespace needs root (CAP_SYS_ADMIN)")
		}
		root := testRoot(t)
		// Two helpers, each pid 1 of its own namespace: same pid, same
		// names but for the sequence; the marks tell their namespaces apart.
		a := startHelper(t, root, 1, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}, "sleep", "300")
		b := startHelper(t, root, 1, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}, "sleep", "300")
		assert.NotEqual(t, a.leafs[0], b.leafs[0])
		assert.Contains(t, a.leafs[0], "-1-", "pid 1 in its namespace")
		m, err := New(Options{CgroupRoot: root})
		require.NoError(t, err)
		assert.Empty(t, m.Reaped().Leaves, "live monitors' leaves were reaped")
		require.NoError(t, m.Close())
		assert.DirExists(t, a.leafs[0])
		assert.DirExists(t, b.leafs[0])
		a.kill() // the namespace's init: every process of it dies
		m, err = New(Options{CgroupRoot: root})
		require.NoError(t, err)
		require.Len(t, m.Reaped().Leaves, 1)
		assert.Equal(t, a.leafs[0], m.Reaped().Leaves[0].Path)
		assert.DirExists(t, b.leafs[0])
		require.NoError(t, m.Close())
		b.kill()
		m = newMonitor(t, Options{CgroupRoot: root})
		require.Len(t, m.Reaped().Leaves, 1)
		assert.Equal(t, b.leafs[0], m.Reaped().Leaves[0].Path)
	})
}

// TestReapersTakeEachLeafOnce: monitors started at once on a root with
// stale leaves reap each of them exactly once (the lock serialises them).
func TestReapersTakeEachLeafOnce(t *testing.T) {
	root := testRoot(t)
	h := startHelper(t, root, 6, nil, "sleep", "300")
	h.kill()
	for _, p := range h.pids {
		assertGone(t, p)
	}
	reapOwn(h.pids)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var reaped []string
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := New(Options{CgroupRoot: root})
			if !assert.NoError(t, err) {
				return
			}
			mu.Lock()
			for _, l := range m.Reaped().Leaves {
				reaped = append(reaped, l.Path)
			}
			mu.Unlock()
			assert.NoError(t, m.Close())
		}()
	}
	wg.Wait()
	slices.Sort(reaped)
	want := slices.Clone(h.leafs)
	slices.Sort(want)
	assert.Equal(t, want, reaped)
}

// TestOperatorRootSurvives: a root that existed before cgmon, with a
// setting in it, is used and never removed; a missing root is made,
// marked, and removed when its last monitor closes.
func TestOperatorRootSurvives(t *testing.T) {
	root := testRoot(t)
	require.NoError(t, os.Mkdir(root, 0o755)) // the operator's
	defer os.Remove(root)
	setting := filepath.Join(root, "cgroup.max.descendants")
	require.NoError(t, os.WriteFile(setting, []byte("77"), 0))
	for range 2 {
		m, err := New(Options{CgroupRoot: root})
		require.NoError(t, err)
		ex := mustRun(t, m, Spec{Command: []string{"/bin/true"}})
		assert.Equal(t, metrics.StatusSuccess, ex.Status)
		require.NoError(t, m.Close())
		require.DirExists(t, root, "the operator's root was removed")
		b, err := os.ReadFile(setting)
		require.NoError(t, err)
		assert.Equal(t, "77", strings.TrimSpace(string(b)), "the operator's setting")
	}
}

// TestMissingRootIsMade: an explicit root that does not exist is made
// when its parent allows (issue 12 item 5), with the controllers its
// parent offers, and removed by the last monitor out; one whose parent
// does not exist is an error that says it does not exist.
func TestMissingRootIsMade(t *testing.T) {
	root := testRoot(t)
	m, err := New(Options{CgroupRoot: root})
	require.NoError(t, err)
	assert.Equal(t, PathGiven, m.Probe().Path)
	k, err := readMark(root)
	require.NoError(t, err)
	assert.True(t, k.kind == markRoot || k.noXattr, "the root New made is marked: %+v", k)
	ex := mustRun(t, m, Spec{Command: []string{"/bin/true"}})
	assert.Equal(t, metrics.StatusSuccess, ex.Status)
	require.NoError(t, m.Close())
	assert.NoDirExists(t, root)

	deep := filepath.Join(root, "no", "such")
	_, err = New(Options{CgroupRoot: deep})
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.NotErrorIs(t, err, ErrNotDelegated)
	assert.Contains(t, err.Error(), deep+" does not exist")
	assert.NoDirExists(t, root)
}

// TestUnremovableLeafIsLeftToReaping: a leaf that cannot be removed (a
// process was put in it after its execution ended) is not retried in a
// loop: Close returns at once with an error naming it, and the next
// monitor reaps it.
func TestUnremovableLeafIsLeftToReaping(t *testing.T) {
	root := testRoot(t)
	m, err := New(Options{CgroupRoot: root, Interval: time.Hour})
	require.NoError(t, err)
	h, err := m.Start(context.Background(), Spec{Command: []string{"/bin/true"}})
	require.NoError(t, err)
	leaf := h.CgroupPath()
	_, err = h.Wait()
	require.NoError(t, err)
	// A process of this test's own, put in the ended execution's leaf.
	sleep := exec.Command("sleep", "300")
	require.NoError(t, sleep.Start())
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	require.NoError(t, os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)), 0))
	t0 := time.Now()
	err = m.Close()
	took := time.Since(t0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), leaf)
	assert.Contains(t, err.Error(), "left for the next cgmon to reap")
	t.Logf("Close took %v", took)
	stale, err := FindStale(root)
	require.NoError(t, err)
	require.Len(t, stale, 1, "the leaf is unlocked: stale")

	m2 := newMonitor(t, Options{CgroupRoot: root})
	require.Len(t, m2.Reaped().Leaves, 1)
	assert.Equal(t, 1, m2.Reaped().ProcessesKilled)
	assert.NoDirExists(t, leaf)
	_ = sleep.Wait()
	assert.Equal(t, "signal: killed", sleep.ProcessState.String())
}

// TestExecutionSurvivesItsStartersThread: an execution started from a
// goroutine that then exits locked to its thread (Go ends that thread)
// is not killed by its parent-death signal: every execution is forked
// from the Monitor's own starter thread.
func TestExecutionSurvivesItsStartersThread(t *testing.T) {
	m := newMonitor(t, Options{})
	hc := make(chan *Handle)
	var start func()
	start = func() {
		runtime.LockOSThread()
		if unix.Gettid() == os.Getpid() {
			// Go never ends the main thread: try from another one.
			runtime.UnlockOSThread()
			go start()
			return
		}
		// Never unlocked: Go ends the thread when this goroutine returns.
		h, err := m.Start(context.Background(), Spec{Command: []string{"sleep", "0.5"}})
		assert.NoError(t, err)
		hc <- h
	}
	go start()
	h := <-hc
	ex, err := h.Wait()
	require.NoError(t, err)
	assert.Equal(t, metrics.StatusSuccess, ex.Status, "%s (signal %d)", ex.Reason, ex.Signal)
}

// TestEscapedProcessesAreKilled: a process that moves itself out of its
// leaf (root may write any cgroup.procs) is still a descendant of the
// subreaper: it is found, killed, counted as escaped, and the CPU times
// are marked as lower bounds with the reason; its children die with it.
func TestEscapedProcessesAreKilled(t *testing.T) {
	root := testRoot(t)
	other := otherCgroup(t, root)
	procs := filepath.Join(other, "cgroup.procs")
	burn := wl(t, "burn")
	m := newMonitor(t, Options{CgroupRoot: root, Subreaper: true, Interval: 50 * time.Millisecond})
	cases := []struct {
		name, script string
		timeout      time.Duration
		escaped      int
		status       metrics.Status
	}{
		// A child moves out and sleeps on after the main process exits.
		{"child", `sh -c 'echo $$ > ` + procs + `; exec sleep 30' & sleep 0.3`, 0, 1, metrics.StatusSuccess},
		// The main process moves out, leaves a child behind there, burns
		// CPU in a child it waits for, and exits.
		{"main", `echo $$ > ` + procs + `; sleep 30 & ` + burn + ` 1 300`, 0, 1, metrics.StatusSuccess},
		// The main process moves out and burns until the timeout.
		{"main timeout", `echo $$ > ` + procs + `; exec ` + burn + ` 1 30000`, 300 * time.Millisecond, 1, metrics.StatusTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t0 := time.Now()
			ex := mustRun(t, m, Spec{Command: []string{"/bin/sh", "-c", c.script}, Timeout: c.timeout})
			assert.Less(t, time.Since(t0), 10*time.Second, "the escaped sleep was waited for")
			assert.Equal(t, c.status, ex.Status, ex.Reason)
			assert.Equal(t, c.escaped, ex.EscapedProcessesKilled)
			why := ex.LowerBounds[metrics.MetricCPUTotal]
			assert.Contains(t, why, "out of the execution's cgroup", "lower bounds: %v", ex.LowerBounds)
			assert.Contains(t, ex.LowerBounds, metrics.MetricCPUAveragePercent)
			b, err := os.ReadFile(procs)
			require.NoError(t, err)
			assert.Empty(t, strings.TrimSpace(string(b)), "processes left in %s", other)
			assert.Empty(t, childrenOfSelf(t), "processes or zombies left to this process")
		})
	}
	// Nothing escaped: no lower bound.
	ex := mustRun(t, m, Spec{Command: []string{burn, "1", "100"}})
	assert.Zero(t, ex.EscapedProcessesKilled)
	assert.Nil(t, ex.LowerBounds)
}

// subcgroupScript makes cgroups inside its own leaf, several deep, with a
// process in the deepest, one level frozen and one unreadable, and exits
// while they run. MNT is the cgroup v2 mount.
const subcgroupScript = `L=$MNT$(sed -n 's/^0:://p' /proc/self/cgroup)
mkdir -p $L/a/b/c/d || exit 1
sh -c 'echo $$ > '$L'/a/b/c/d/cgroup.procs; exec sleep 30' &
sh -c 'echo $$ > '$L'/a/cgroup.procs; exec $ALLOC 8 30000' &
sleep 0.3
echo 1 > $L/a/b/cgroup.freeze || exit 2
chmod 000 $L/a/b/c/* || exit 3
sleep 0.2`

// TestSubCgroupsAreKilledAndRemoved: cgroups a workload makes in its own
// leaf do not keep its processes alive nor its leaf behind: they are
// killed as leftovers, counted, counted in pids_peak, and every level is
// removed bottom-up.
func TestSubCgroupsAreKilledAndRemoved(t *testing.T) {
	root := testRoot(t)
	m := newMonitor(t, Options{CgroupRoot: root, Interval: 50 * time.Millisecond, Subreaper: true})
	t0 := time.Now()
	h, err := m.Start(context.Background(), Spec{
		Command: []string{"/bin/sh", "-c", subcgroupScript},
		Env:     append(os.Environ(), "MNT="+m.Probe().Mount, "ALLOC="+wl(t, "alloc")),
	})
	require.NoError(t, err)
	leaf := h.CgroupPath()
	ex, err := h.Wait()
	require.NoError(t, err)
	assertLabelled(t, ex)
	assert.Less(t, time.Since(t0), 10*time.Second, "the sleep in the sub-cgroup was waited for")
	require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
	assert.Equal(t, 2, ex.LeftoverProcessesKilled)
	peak, ok := ex.Usage.PidsPeak.Get()
	require.True(t, ok, ex.Usage.PidsPeak.Reason())
	assert.GreaterOrEqual(t, peak, uint64(3), "sh, sleep and alloc (source %s)", ex.Usage.PidsPeak.Source())
	mem, ok := ex.Usage.MemoryPeak.Get()
	require.True(t, ok, ex.Usage.MemoryPeak.Reason())
	assert.GreaterOrEqual(t, mem, uint64(8<<20), "alloc's 8 MiB in a sub-cgroup (source %s)", ex.Usage.MemoryPeak.Source())
	require.NoError(t, m.Close())
	assert.NoDirExists(t, leaf)
}

// TestTimeoutCountsAndReapsWhatItKilled: a timeout that kills a shell and
// its two children counts the two as leftovers killed, and the subreaper
// reaps the children that came back to it instead of leaving zombies.
func TestTimeoutCountsAndReapsWhatItKilled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: true})
		// Time for sh to start both sleeps: under the VM suite's
		// emulation an exec can take longer than 300 ms.
		timeout := 300 * time.Millisecond
		if scenario != "" {
			timeout = 1500 * time.Millisecond
		}
		ex := mustRun(t, m, Spec{Command: []string{"/bin/sh", "-c", "sleep 5 & sleep 6 & wait"}, Timeout: timeout})
		assert.Equal(t, metrics.StatusTimeout, ex.Status)
		assert.Equal(t, 2, ex.LeftoverProcessesKilled, "the kill ended two sleeps")
		assert.Empty(t, childrenOfSelf(t), "zombies handed to this process and left")
	})
}

// TestHostileWorkloads: a process that ignores SIGTERM, a double fork
// with setsid, and a thread-group leader that exits while its other
// thread runs: each ends with nothing left and a true report.
func TestHostileWorkloads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: true})
		t.Run("ignores SIGTERM", func(t *testing.T) {
			// Time for stubborn to fork its child first: under the VM
			// suite's emulation an exec alone can take longer than 200 ms.
			timeout := 200 * time.Millisecond
			if scenario != "" {
				timeout = time.Second
			}
			ex := mustRun(t, m, Spec{Command: []string{wl(t, "stubborn")}, Timeout: timeout})
			assert.Equal(t, metrics.StatusTimeout, ex.Status)
			assert.Equal(t, 1, ex.LeftoverProcessesKilled, "stubborn's child")
		})
		t.Run("double fork with setsid", func(t *testing.T) {
			ex := mustRun(t, m, Spec{Command: []string{"/bin/sh", "-c", `setsid sh -c 'sleep 30 & exit 0'; sleep 0.2`}})
			assert.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
			assert.Equal(t, 1, ex.LeftoverProcessesKilled, "the sleep in its own session")
		})
		t.Run("leader exits first", func(t *testing.T) {
			ex := mustRun(t, m, Spec{Command: []string{wl(t, "leader"), "300"}})
			assert.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
			cpu, ok := ex.Usage.CPUTotal.Get()
			require.True(t, ok, ex.Usage.CPUTotal.Reason())
			assert.GreaterOrEqual(t, cpu.Seconds(), 0.28, "the other thread's 300 ms (source %s)", ex.Usage.CPUTotal.Source())
			assert.GreaterOrEqual(t, ex.Duration().Seconds(), 0.3, "the execution lasts as long as its last thread")
		})
		assert.Empty(t, childrenOfSelf(t))
	})
}

// TestForkBombIsContained: an unbounded fork bomb, run as nobody under
// RLIMIT_NPROC (root ignores that limit), ends at cgmon's timeout with
// every process killed and nothing left.
func TestForkBombIsContained(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("becoming nobody needs root")
	}
	// nobody must reach the program: not through the user's cache, nor a
	// private TMPDIR.
	dir, err := os.MkdirTemp("/tmp", "cgmon-bomb-")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	require.NoError(t, os.Chmod(dir, 0o755))
	bomb := filepath.Join(dir, "bomb")
	b, err := os.ReadFile(wl(t, "bomb"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bomb, b, 0o755))
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: true})
		var stderr strings.Builder
		ex := mustRun(t, m, Spec{
			Command: []string{os.Args[0], "-test.run=^$"},
			Env:     []string{envHelper + "=bomb", envBomb + "=" + bomb},
			Stderr:  &stderr,
			// Time for the helper, a race-enabled test binary, to start.
			Timeout: 2 * time.Second,
		})
		assert.Equal(t, metrics.StatusTimeout, ex.Status, "%s: %s", ex.Reason, stderr.String())
		assert.Greater(t, ex.LeftoverProcessesKilled, 0)
		assert.Empty(t, childrenOfSelf(t))
		assert.Empty(t, processesNamed("bomb"), "bomb processes left")
	})
}

// processesNamed lists the live processes whose comm is name.
func processesNamed(name string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		open, end := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
		if open < 0 || end < open || string(b[open+1:end]) != name || len(b) < end+3 || b[end+2] == 'Z' {
			continue
		}
		out = append(out, pid)
	}
	return out
}
