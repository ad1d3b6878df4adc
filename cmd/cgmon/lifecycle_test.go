package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgmon/cgmon/cgroupmon"
)

// The CLI's side of "nothing left behind": cgmon killed mid-run, cgmon
// reap, roots cgmon did not make, many cgmon processes on one root, and
// the hostile workloads, each through the binary.

// cliRoot returns a cgroup root path of this test's own under the cgroup
// v2 mount (it does not exist yet: cgmon makes it), and fails the test if
// it is left behind. It skips where the mount is not writable.
func cliRoot(t *testing.T) string {
	t.Helper()
	p, err := cgroupmon.ProbeHost(cgroupmon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Mount == "" || syscall.Access(p.Mount, 2 /* W_OK */) != nil {
		t.Skipf("needs a writable cgroup v2 mount (root): %s", p.RootReason)
	}
	root := filepath.Join(p.Mount, fmt.Sprintf("cgmon-cli-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-")))
	t.Cleanup(func() {
		if _, err := os.Stat(root); err == nil {
			t.Errorf("cgroup root %s left behind", root)
			exec.Command(cgmonBin, "reap", "--cgroup-root", root).Run()
			os.Remove(root)
		}
	})
	return root
}

// leafDirs lists the execution cgroups under root.
func leafDirs(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(root)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && regexp.MustCompile(`-\d+-\d+$`).MatchString(e.Name()) {
			out = append(out, filepath.Join(root, e.Name()))
		}
	}
	return out
}

// procsIn lists the pids in a cgroup.
func procsIn(dir string) []string {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	return strings.Fields(string(b))
}

// aliveS is alive for a pid as cgroup.procs lists it.
func aliveS(pid string) bool {
	n, err := strconv.Atoi(pid)
	return err == nil && alive(n)
}

// eventually polls f for up to 5 s.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !f(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestKilledCgmonIsReaped: `kill -9` of a `cgmon run` takes the command's
// main process with it (parent-death signal); its leaf and the rest of
// the tree stay until `doctor` lists them, the next `cgmon run` reaps one
// and says so on stderr, and `cgmon reap` the other.
func TestKilledCgmonIsReaped(t *testing.T) {
	root := cliRoot(t)
	// Both run at once: the second's start would reap the first's leaf.
	var cmds []*exec.Cmd
	var leaves, rest []string
	for i := range 2 {
		cmd := exec.Command(cgmonBin, "run", "--cgroup-root", root, "--id", fmt.Sprintf("victim%d", i), "-o", os.DevNull,
			"--", "sh", "-c", "sleep 300 & exec sleep 301")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		var leaf string
		eventually(t, "the execution's two processes", func() bool {
			for _, l := range leafDirs(t, root) {
				if strings.Contains(l, fmt.Sprintf("victim%d-", i)) && len(procsIn(l)) == 2 {
					leaf = l
					return true
				}
			}
			return false
		})
		leaves = append(leaves, leaf)
	}
	for i, cmd := range cmds {
		cmd.Process.Kill()
		cmd.Wait()
		// The main process (sleep 301) dies with cgmon; the other lives on.
		eventually(t, "the main process to die with cgmon", func() bool { return len(procsIn(leaves[i])) == 1 })
		rest = append(rest, procsIn(leaves[i])...)
	}

	doc := cgmon(t, "", "doctor", "--cgroup-root", root)
	for _, l := range leaves {
		if !strings.Contains(doc.stdout, l) {
			t.Errorf("doctor does not list the stale %s:\n%s", l, doc.stdout)
		}
	}

	run := cgmon(t, "", "run", "--cgroup-root", root, "-o", os.DevNull, "--", "true")
	if run.code != 0 {
		t.Fatalf("run: exit %d: %s", run.code, run.stderr)
	}
	want := "cgmon: reaped 2 stale cgroup(s) under " + root + " left by a monitor that died (2 process(es) killed)\n"
	if run.stderr != want {
		t.Errorf("run's stderr %q, want %q", run.stderr, want)
	}
	for _, l := range leaves {
		if _, err := os.Stat(l); err == nil {
			t.Errorf("%s not reaped", l)
		}
	}
	for _, p := range rest {
		eventually(t, "pid "+p+" to be killed", func() bool { return !aliveS(p) })
	}
	rep := cgmon(t, "", "reap", "--cgroup-root", root)
	if rep.code != 0 || rep.stdout != "nothing to reap under "+root+"\n" {
		t.Errorf("reap: exit %d, stdout %q, stderr %q", rep.code, rep.stdout, rep.stderr)
	}
}

// TestReapCommand: `cgmon reap` removes a killed cgmon's leaf, kills what
// is in it, and says so; a root it may not write is a clear error.
func TestReapCommand(t *testing.T) {
	root := cliRoot(t)
	cmd := exec.Command(cgmonBin, "run", "--cgroup-root", root, "-o", os.DevNull, "--", "sh", "-c", "sleep 300 & exec sleep 301")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the execution", func() bool { l := leafDirs(t, root); return len(l) == 1 && len(procsIn(l[0])) == 2 })
	leaf := leafDirs(t, root)[0]
	cmd.Process.Kill()
	cmd.Wait()
	eventually(t, "the main process to die with cgmon", func() bool { return len(procsIn(leaf)) == 1 })
	left := procsIn(leaf)[0]

	r := cgmon(t, "", "reap", "--cgroup-root", root)
	if r.code != 0 {
		t.Fatalf("reap: exit %d: %s", r.code, r.stderr)
	}
	head := "reaped 1 stale cgroup(s) under " + root + ", 1 process(es) killed:\n  " + leaf + " (pid="
	if !strings.HasPrefix(r.stdout, head) {
		t.Errorf("reap said %q, want it to start with %q", r.stdout, head)
	}
	eventually(t, "the leftover sleep to die", func() bool { return !aliveS(left) })
	if _, err := os.Stat(leaf); err == nil {
		t.Errorf("%s left", leaf)
	}
	if _, err := os.Stat(root); err == nil {
		t.Errorf("reap left the root cgmon made, empty: %s", root)
	}

	nobody := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", cgmonBin, "reap", "--cgroup-root", filepath.Dir(root))
	res := cgmonCmd(t, nobody, "")
	if res.code != 125 || !strings.Contains(res.stderr, "cgmon: reap: "+filepath.Dir(root)+": not writable by this user (permission denied)") {
		t.Errorf("reap as nobody: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestOperatorRootSurvivesRuns: a --cgroup-root that an operator made,
// with a setting in it, is still there with its setting after runs.
func TestOperatorRootSurvivesRuns(t *testing.T) {
	root := cliRoot(t)
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(root)
	setting := filepath.Join(root, "cgroup.max.descendants")
	if err := os.WriteFile(setting, []byte("77"), 0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r := cgmon(t, "", "run", "--cgroup-root", root, "-o", os.DevNull, "--", "true"); r.code != 0 {
			t.Fatalf("run: exit %d: %s", r.code, r.stderr)
		}
		b, err := os.ReadFile(setting)
		if err != nil {
			t.Fatalf("the operator's root is gone: %v", err)
		}
		if strings.TrimSpace(string(b)) != "77" {
			t.Errorf("the operator's setting is now %q", b)
		}
	}
	if l := leafDirs(t, root); len(l) > 0 {
		t.Errorf("leaves left: %v", l)
	}
}

// TestFiftyRunsAtOnce: 50 `cgmon run` processes started at once on the
// default root all succeed and leave nothing, though each makes, shares
// and may remove the root.
func TestFiftyRunsAtOnce(t *testing.T) {
	p, err := cgroupmon.ProbeHost(cgroupmon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Path != cgroupmon.PathSharedRoot {
		t.Skipf("the default root is not the shared <mount>/cgmon here: %s", p.RootReason)
	}
	var wg sync.WaitGroup
	pids := make([]int, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(cgmonBin, "run", "--id", "fifty", "-o", os.DevNull, "--", "true")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			pids[i] = cmd.Process.Pid
			if err != nil {
				t.Errorf("run %d: %v: %s", i, err, stderr.String())
			}
		}()
	}
	wg.Wait()
	for _, l := range leafDirs(t, p.Root) {
		for _, pid := range pids {
			if strings.HasPrefix(filepath.Base(l), "fifty-"+strconv.Itoa(pid)+"-") {
				t.Errorf("%s left", l)
			}
		}
	}
}

// runJSON runs `cgmon run --format json` with args and returns its exit
// status and report.
func runJSON(t *testing.T, args ...string) (int, map[string]any) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "r.json")
	r := cgmon(t, "", append([]string{"run", "--format", "json", "-o", out}, args...)...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no report (exit %d, stderr %q): %v", r.code, r.stderr, err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return r.code, rep
}

// TestHostileWorkloadsThroughTheCLI: each hostile workload of issue 11
// ends with nothing left and a true report when `cgmon run` runs it.
func TestHostileWorkloadsThroughTheCLI(t *testing.T) {
	root := cliRoot(t)
	wl := func(name string) string { return wl(t, name) }
	num := func(rep map[string]any, key string) float64 { v, _ := rep[key].(float64); return v }

	t.Run("escape", func(t *testing.T) {
		other := root + "-other"
		if err := os.Mkdir(other, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(other)
		procs := filepath.Join(other, "cgroup.procs")
		code, rep := runJSON(t, "--cgroup-root", root, "--", "sh", "-c",
			`echo $$ > `+procs+`; sleep 30 & `+wl("burn")+` 1 300`)
		if code != 0 || num(rep, "escaped_processes_killed") != 1 {
			t.Errorf("exit %d, escaped_processes_killed %v", code, rep["escaped_processes_killed"])
		}
		lb, _ := rep["lower_bounds"].(map[string]any)
		if why, _ := lb["cpu_total_seconds"].(string); !strings.Contains(why, "out of the execution's cgroup") {
			t.Errorf("cpu_total_seconds is not marked a lower bound: %v", rep["lower_bounds"])
		}
		if p := procsIn(other); len(p) > 0 {
			t.Errorf("processes left in %s: %v", other, p)
		}
	})
	t.Run("sub-cgroups", func(t *testing.T) {
		t0 := time.Now()
		script := `L=$MNT$(sed -n 's/^0:://p' /proc/self/cgroup)
mkdir -p $L/a/b/c/d || exit 1
sh -c 'echo $$ > '$L'/a/b/c/d/cgroup.procs; exec sleep 30' &
sleep 0.3
echo 1 > $L/a/b/cgroup.freeze || exit 2
chmod 000 $L/a/b/c/* || exit 3`
		p, _ := cgroupmon.ProbeHost(cgroupmon.Options{})
		cmd := exec.Command(cgmonBin, "run", "--format", "json", "-o", filepath.Join(t.TempDir(), "r.json"), "--cgroup-root", root, "--", "sh", "-c", script)
		cmd.Env = append(os.Environ(), "MNT="+p.Mount)
		out := cmd.Args[5]
		res := cgmonCmd(t, cmd, "")
		rep, _ := readReportMap(t, out)
		if res.code != 0 || num(rep, "leftover_processes_killed") != 1 {
			t.Errorf("exit %d (%s), leftover_processes_killed %v", res.code, res.stderr, rep["leftover_processes_killed"])
		}
		if el := time.Since(t0); el > 10*time.Second {
			t.Errorf("cgmon waited %v for the sleep in a sub-cgroup", el)
		}
		if l := leafDirs(t, root); len(l) > 0 {
			t.Errorf("left: %v", l)
		}
	})
	t.Run("timeout counts what it killed", func(t *testing.T) {
		code, rep := runJSON(t, "--cgroup-root", root, "--timeout", "300ms", "--", "sh", "-c", "sleep 5 & sleep 6 & wait")
		if code != 124 || num(rep, "leftover_processes_killed") != 2 {
			t.Errorf("exit %d, leftover_processes_killed %v", code, rep["leftover_processes_killed"])
		}
	})
	t.Run("ignores SIGTERM", func(t *testing.T) {
		code, rep := runJSON(t, "--cgroup-root", root, "--timeout", "200ms", "--", wl("stubborn"))
		if code != 124 || num(rep, "leftover_processes_killed") != 1 {
			t.Errorf("exit %d, leftover_processes_killed %v", code, rep["leftover_processes_killed"])
		}
	})
	t.Run("double fork with setsid", func(t *testing.T) {
		code, rep := runJSON(t, "--cgroup-root", root, "--", "sh", "-c", `setsid sh -c 'sleep 30 & exit 0'; sleep 0.2`)
		if code != 0 || num(rep, "leftover_processes_killed") != 1 {
			t.Errorf("exit %d, leftover_processes_killed %v", code, rep["leftover_processes_killed"])
		}
	})
	t.Run("leader exits first", func(t *testing.T) {
		code, rep := runJSON(t, "--cgroup-root", root, "--", wl("leader"), "300")
		if code != 0 || num(rep, "cpu_total_seconds") < 0.28 {
			t.Errorf("exit %d, cpu_total_seconds %v", code, rep["cpu_total_seconds"])
		}
	})
	t.Run("fork bomb as nobody", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("becoming nobody needs root")
		}
		dir, err := os.MkdirTemp("", "cgmon-bomb-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o755)
		b, err := os.ReadFile(wl("bomb"))
		if err != nil {
			t.Fatal(err)
		}
		bomb := filepath.Join(dir, "bomb")
		if err := os.WriteFile(bomb, b, 0o755); err != nil {
			t.Fatal(err)
		}
		// Root ignores RLIMIT_NPROC: the bomb runs as nobody, under it.
		code, rep := runJSON(t, "--cgroup-root", root, "--timeout", "1s", "--",
			"prlimit", "--nproc=64", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bomb)
		if code != 124 || num(rep, "leftover_processes_killed") < 1 {
			t.Errorf("exit %d, leftover_processes_killed %v, reason %v", code, rep["leftover_processes_killed"], rep["reason"])
		}
		if out, err := exec.Command("pgrep", "-u", "65534", "-x", "bomb").Output(); err == nil {
			t.Errorf("bomb processes left: %s", out)
		}
	})
	if l := leafDirs(t, root); len(l) > 0 {
		t.Errorf("left: %v", l)
	}
}

// readReportMap reads a JSON report into a map.
func readReportMap(t *testing.T, path string) (map[string]any, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rep map[string]any
	err = json.NewDecoder(bufio.NewReader(f)).Decode(&rep)
	if err != nil {
		t.Fatal(err)
	}
	return rep, nil
}

// TestReapAsPrinted runs `cgmon reap` as the README prints it, on this
// host's default root: it says what it reaped, or that there was nothing.
func TestReapAsPrinted(t *testing.T) {
	p, err := cgroupmon.ProbeHost(cgroupmon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := cgmon(t, "", "reap")
	if p.Root == "" {
		if r.code != 125 || !strings.HasPrefix(r.stderr, "cgmon: reap: cgroup root not delegated: ") {
			t.Errorf("reap without a root: exit %d, stderr %q", r.code, r.stderr)
		}
		return
	}
	if r.code != 0 || !(strings.HasPrefix(r.stdout, "nothing to reap under "+p.Root+"\n") || strings.HasPrefix(r.stdout, "reaped ")) {
		t.Errorf("reap: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
