package soak

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/cgroupmon"
)

// cgmonBin is the cgmon binary TestMain builds for the CLI scenarios; ""
// in the VM, where no Go toolchain is.
var cgmonBin string

func TestMain(m *testing.M) {
	// os/signal starts one goroutine for the life of the process on first
	// use (the subreaper's SIGCHLD); start it now so that the goroutine
	// counts do not see it.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGURG)
	signal.Stop(c)
	if os.Getenv("CGMON_VM") != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "cgmon-soak-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cgmonBin = filepath.Join(dir, "cgmon")
	build := exec.Command("go", "build", "-o", cgmonBin, "../../cmd/cgmon")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building cgmon:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newSoak returns a soak reporting to the test log.
func newSoak(t *testing.T) *Soak {
	t.Helper()
	s, err := New(testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	s.Cgmon = cgmonBin
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func checkProblems(t *testing.T, s *Soak) {
	t.Helper()
	for _, p := range s.Problems() {
		t.Error(p)
	}
}

// TestSoakShort is make soak at a small size, in make test: mixed
// executions through one Monitor (both backends) and through cgmon batch,
// sequential and simultaneous cgmon runs, and executions alive at once;
// every one must end as its kind must, with one result, leaving nothing.
func TestSoakShort(t *testing.T) {
	if os.Getenv("CGMON_VM") != "" {
		t.Skip("the VM runs TestVMSoak instead: no cgmon binary in the guest")
	}
	for _, b := range []cgroupmon.BackendChoice{cgroupmon.BackendAuto, cgroupmon.BackendProcfs} {
		t.Run("mixed-"+string(b), func(t *testing.T) {
			s := newSoak(t)
			s.Backend = b
			cps := s.Mixed(240, 80)
			checkProblems(t, s)
			if len(cps) != 3 {
				t.Errorf("%d checkpoints, want 3", len(cps))
			}
		})
	}
	t.Run("batch", func(t *testing.T) {
		s := newSoak(t)
		s.Batch(120, 60)
		checkProblems(t, s)
	})
	t.Run("sequential", func(t *testing.T) {
		s := newSoak(t)
		r := s.Sequential(20, 10)
		checkProblems(t, s)
		if r.TrueFirst <= 0 || r.DaemonLast <= 0 {
			t.Errorf("no timings: %+v", r)
		}
	})
	t.Run("alive", func(t *testing.T) {
		s := newSoak(t)
		r := s.Alive(100, 100*time.Millisecond, time.Second, false)
		checkProblems(t, s)
		if r.Status["success"] != 100 {
			t.Errorf("ended %v, want 100 successes", r.Status)
		}
	})
	t.Run("together", func(t *testing.T) {
		s := newSoak(t)
		s.Together(10)
		checkProblems(t, s)
	})
}

// TestSoakFindsLeftovers: the soak's own checks must see what they look
// for, or a clean soak proves nothing. A process carrying the marker and
// a cgroup named after an execution id are each reported.
func TestSoakFindsLeftovers(t *testing.T) {
	if os.Getenv("CGMON_VM") != "" {
		t.Skip("the soak's checks are tested on the host")
	}
	s := newSoak(t)
	cmd := exec.Command("/bin/sleep", "30")
	cmd.Env = s.env()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var out bytes.Buffer
	s.Out = &out
	if p, _ := s.checkNothingLeft("probe"); p != 1 || len(s.Problems()) != 1 || !strings.Contains(s.Problems()[0], "sleep 30") {
		t.Errorf("a marked sleep: %d processes, problems %q", p, s.Problems())
	}
	cmd.Process.Kill()
	cmd.Wait()
	if s.mount == "" {
		return
	}
	m, err := cgroupmon.New(cgroupmon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	root := m.Probe().Root
	if root == "" {
		t.Logf("no writable cgroup v2 root here (%s): the cgroup check is not exercised", m.Probe().RootReason)
		return
	}
	dir := filepath.Join(root, s.id("probe", 0))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer unix.Rmdir(dir)
	if _, l := s.checkNothingLeft("probe"); l != 1 {
		t.Errorf("a cgroup named after an execution id: %d cgroups found", l)
	}
}

// TestVMSoak is the Monitor's part of make soak in a cgroup v2 guest (make
// soak-vm), where the mix also holds OOM kills and fork bombs under
// pids.max, and a thousand executions are alive at once with the guest's
// descriptor limit raised. Its subtests are sizes, chosen with -run:
// mixed-1000 and mixed-10000, alive-1000.
func TestVMSoak(t *testing.T) {
	if os.Getenv("CGMON_VM") == "" {
		t.Skip("the full-size soak runs in the VM: make soak-vm")
	}
	p, err := cgroupmon.ProbeHost(cgroupmon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.HasController("memory") || !p.HasController("pids") {
		t.Fatalf("the guest's root %q offers %v: the soak needs memory and pids", p.Root, p.Available)
	}
	lim := unix.Rlimit{Cur: 1 << 16, Max: 1 << 16}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raising the descriptor limit: %v", err)
	}
	for _, n := range []int{1000, 10000} {
		t.Run(fmt.Sprintf("mixed-%d", n), func(t *testing.T) {
			s := newSoak(t)
			s.VM = true
			s.Out = os.Stdout // progress on the console as it comes
			s.Mixed(n, n/10)
			checkProblems(t, s)
		})
	}
	t.Run("alive-1000", func(t *testing.T) {
		s := newSoak(t)
		s.Out = os.Stdout
		r := s.Alive(1000, 100*time.Millisecond, 10*time.Second, false)
		checkProblems(t, s)
		if r.Status["success"] != 1000 {
			t.Errorf("ended %v, want 1000 successes", r.Status)
		}
	})
}
