//go:build linux

package guest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgmon/cgmon/internal/vmtest"
)

const (
	cgroupRoot   = "/sys/fs/cgroup"
	cgroup2Magic = 0x63677270
	cgroup1Magic = 0x27e0eb
	tmpfsMagic   = 0x01021994
	sysfsMagic   = 0x62656572
	childEnv     = "CGMON_GUEST_CHILD"     // re-exec as a workload: "touch" or "sleep"
	childMiBEnv  = "CGMON_GUEST_CHILD_MIB" // MiB the "touch" workload touches
	prefix       = "guest-"                // every cgroup these tests create
	touchMiB     = 16
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "touch":
		os.Exit(touch())
	case "sleep":
		fmt.Println("ready")
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	code := m.Run()
	if os.Getenv(vmtest.EnvScenario) != "" {
		if left := leftovers(); len(left) > 0 {
			fmt.Printf("FAIL: cgroups left behind: %v\n", left)
			code = 1
		}
	}
	os.Exit(code)
}

// touch is the child workload: touch CGMON_GUEST_CHILD_MIB MiB and print
// the cgroup v2 path of this process.
func touch() int {
	mib, err := strconv.Atoi(os.Getenv(childMiBEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	b := make([]byte, mib<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	runtime.KeepAlive(b)
	p, err := ownCgroup()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println(p)
	return 0
}

// leftovers lists directories named guest-* under every cgroup mount.
func leftovers() []string {
	var left []string
	filepath.WalkDir(cgroupRoot, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), prefix) {
			left = append(left, p)
		}
		return nil
	})
	return left
}

// scenario returns the VM scenario, skipping outside the VM.
func scenario(t *testing.T) string {
	t.Helper()
	s := os.Getenv(vmtest.EnvScenario)
	if s == "" {
		t.Skip("guest tests only run inside the VM (make vmtest); " + vmtest.EnvScenario + " is unset")
	}
	return s
}

// check is one check of a scenario's layout, given the scenario's name.
type check struct {
	name string
	fn   func(t *testing.T, scenario string)
}

// checks lists, per scenario, the checks of its layout. TestScenario runs
// those of the booted scenario as its subtests, so that no check skips in
// the scenarios it is not about (the VM harness fails a scenario on a skip
// it does not allow).
var checks = map[string][]check{
	"v2-6.1":                     {{"PureV2Root", checkPureV2Root}, {"CgroupKill", checkCgroupKill}},
	"v2-5.10":                    {{"PureV2Root", checkPureV2Root}, {"CgroupKill", checkCgroupKill}},
	"v2-rootless":                {{"RootlessDelegation", checkRootlessDelegation}},
	"hybrid":                     {{"Hybrid", checkHybrid}, {"CgroupKill", checkCgroupKill}},
	"none":                       {{"NoCgroupFS", checkNoCgroupFS}},
	vmtest.SystemdRootless:       {{"SystemdRootlessHost", checkSystemdRootlessHost}},
	vmtest.ContainerUnprivileged: {{"ContainerSetup", checkContainerSetup}},
	vmtest.ContainerPrivileged:   {{"ContainerSetup", checkContainerSetup}},
}

// TestScenario runs the checks of the booted scenario's layout.
func TestScenario(t *testing.T) {
	s := scenario(t)
	cs, ok := checks[s]
	if !ok {
		t.Fatalf("scenario %s has no checks of its layout", s)
	}
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) { c.fn(t, s) })
	}
}

// TestEveryScenarioIsChecked runs on the host too: a scenario added to
// vmtest.Scenarios without checks of its layout fails here.
func TestEveryScenarioIsChecked(t *testing.T) {
	for _, sc := range vmtest.Scenarios {
		if len(checks[sc.Name]) == 0 {
			t.Errorf("scenario %s has no checks in guest_test.go", sc.Name)
		}
	}
	for name := range checks {
		if _, err := vmtest.LookupScenario(name); err != nil {
			t.Errorf("checks: %v", err)
		}
	}
}

func fsMagic(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return st.Type
}

// ownCgroup returns this process's cgroup v2 path from /proc/self/cgroup.
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 line in /proc/self/cgroup: %q", b)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0); err != nil {
		t.Fatalf("write %q to %s: %v", data, path, err)
	}
}

// keyed reads one "key value" line of a flat-keyed cgroup file.
func keyed(t *testing.T, path, key string) int64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == key {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("%s: %s: %v", path, key, err)
			}
			return v
		}
	}
	t.Fatalf("%s has no %s", path, key)
	return 0
}

func number(t *testing.T, path string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(strings.TrimSpace(readFile(t, path)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// mkCgroup creates a guest-* cgroup under parent and removes it when the
// test ends, killing whatever is left in it first.
func mkCgroup(t *testing.T, parent string) string {
	t.Helper()
	dir, err := os.MkdirTemp(parent, prefix+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatalf("mkdir cgroup under %s: %v", parent, err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("remove cgroup %s: %v", dir, err)
				return
			}
			if b, _ := os.ReadFile(dir + "/cgroup.procs"); len(b) > 0 {
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return dir
}

// childIn re-executes this test binary as a workload started directly in
// the cgroup dir through CLONE_INTO_CGROUP.
func childIn(t *testing.T, dir, mode string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	fd, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childMiBEnv+"="+strconv.Itoa(touchMiB))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child with CLONE_INTO_CGROUP into %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &out
}

// runTouch runs the touch workload in dir and checks where it ran.
func runTouch(t *testing.T, dir string) {
	t.Helper()
	cmd, out := childIn(t, dir, "touch")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	mnt := cgroupRoot
	if s := os.Getenv(vmtest.EnvScenario); s == "hybrid" {
		mnt = cgroupRoot + "/unified"
	}
	want := strings.TrimPrefix(dir, mnt)
	if got := strings.TrimSpace(out.String()); got != want {
		t.Fatalf("child ran in cgroup %q, want %q (CLONE_INTO_CGROUP)", got, want)
	}
	if usage := keyed(t, dir+"/cpu.stat", "usage_usec"); usage <= 0 {
		t.Errorf("cpu.stat usage_usec = %d after the child ran, want > 0", usage)
	}
}

func TestKernelVersion(t *testing.T) {
	s, err := vmtest.LookupScenario(scenario(t))
	if err != nil {
		t.Fatal(err)
	}
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var rel []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	if !strings.HasPrefix(string(rel), s.Kernel.Version+".") {
		t.Fatalf("kernel %s, scenario %s wants %s", rel, s.Name, s.Kernel.Version)
	}
}

// wantFiles fails for each file of want missing from, or of absent present in, dir.
func wantFiles(t *testing.T, dir string, want, absent []string) {
	t.Helper()
	for _, f := range want {
		if !exists(dir + "/" + f) {
			t.Errorf("%s/%s missing", dir, f)
		}
	}
	for _, f := range absent {
		if exists(dir + "/" + f) {
			t.Errorf("%s/%s present, but this kernel should not have it", dir, f)
		}
	}
}

var v2Common = []string{"cgroup.procs", "cgroup.events", "cpu.stat", "cpu.max", "memory.current",
	"memory.max", "memory.events", "memory.stat", "pids.current", "pids.max", "io.stat", "cgroup.freeze"}

func checkPureV2Root(t *testing.T, s string) {
	if m := fsMagic(t, cgroupRoot); m != cgroup2Magic {
		t.Fatalf("%s is fs type %#x, want cgroup2", cgroupRoot, m)
	}
	if os.Getuid() != 0 {
		t.Fatalf("uid %d, scenario %s runs the tests as root", os.Getuid(), s)
	}
	sub := strings.Fields(readFile(t, cgroupRoot+"/cgroup.subtree_control"))
	for _, c := range []string{"cpu", "memory", "pids", "io"} {
		if !contains(sub, c) {
			t.Errorf("root cgroup.subtree_control %v lacks %s", sub, c)
		}
	}
	dir := mkCgroup(t, cgroupRoot)
	newer := []string{"memory.peak", "pids.peak", "cgroup.kill"}
	if s == "v2-6.1" {
		wantFiles(t, dir, append(v2Common, newer...), nil)
	} else {
		// memory.peak arrived in 5.19, pids.peak in 6.1, cgroup.kill in 5.14.
		wantFiles(t, dir, v2Common, newer)
	}
	runTouch(t, dir)
	if s == "v2-6.1" {
		if peak := number(t, dir+"/memory.peak"); peak < touchMiB<<20 {
			t.Errorf("memory.peak = %d after touching %d MiB", peak, touchMiB)
		}
		if peak := number(t, dir+"/pids.peak"); peak < 1 {
			t.Errorf("pids.peak = %d after a child ran", peak)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkCgroupKill(t *testing.T, s string) {
	base := cgroupRoot
	if s == "hybrid" {
		base = cgroupRoot + "/unified"
	}
	dir := mkCgroup(t, base)
	cmd, out := childIn(t, dir, "sleep")
	if s == "v2-5.10" {
		if exists(dir + "/cgroup.kill") {
			t.Fatal("cgroup.kill exists on 5.10 (it arrived in 5.14)")
		}
		// The fallback: freeze, SIGKILL every member, thaw.
		writeFile(t, dir+"/cgroup.freeze", "1")
		for _, f := range strings.Fields(readFile(t, dir+"/cgroup.procs")) {
			pid, _ := strconv.Atoi(f)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Errorf("kill %d: %v", pid, err)
			}
		}
		writeFile(t, dir+"/cgroup.freeze", "0")
	} else {
		writeFile(t, dir+"/cgroup.kill", "1")
	}
	err := cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL\n%s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for keyed(t, dir+"/cgroup.events", "populated") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("cgroup still populated 5s after the kill")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func checkRootlessDelegation(t *testing.T, _ string) {
	if os.Getuid() != 1000 || os.Getgid() != 1000 {
		t.Fatalf("running as %d:%d, want 1000:1000", os.Getuid(), os.Getgid())
	}
	for _, env := range []string{"HOME", "TMPDIR"} {
		f, err := os.CreateTemp(os.Getenv(env), "w")
		if err != nil {
			t.Fatalf("%s=%q is not writable: %v", env, os.Getenv(env), err)
		}
		f.Close()
		os.Remove(f.Name())
	}
	own, err := ownCgroup()
	if err != nil {
		t.Fatal(err)
	}
	if own != "/user.slice/delegated" {
		t.Fatalf("tests run in cgroup %q, want /user.slice/delegated", own)
	}
	del := cgroupRoot + own
	for _, p := range []string{"", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads"} {
		var st syscall.Stat_t
		if err := syscall.Stat(del+p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 1000 {
			t.Errorf("%s%s is owned by uid %d, want 1000", del, p, st.Uid)
		}
	}
	ctl := strings.Fields(readFile(t, del+"/cgroup.controllers"))
	for _, c := range []string{"cpu", "memory", "pids", "io"} {
		if !contains(ctl, c) {
			t.Errorf("delegated cgroup.controllers %v lacks %s", ctl, c)
		}
	}
	// Nothing above the delegation is ours.
	if err := os.Mkdir(cgroupRoot+"/"+prefix+"outside", 0o755); !errors.Is(err, fs.ErrPermission) {
		os.Remove(cgroupRoot + "/" + prefix + "outside")
		t.Errorf("mkdir in the cgroup root as uid 1000: %v, want permission denied", err)
	}
	if err := os.WriteFile(cgroupRoot+"/user.slice/cgroup.procs", []byte(strconv.Itoa(os.Getpid())), 0); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("moving into user.slice as uid 1000: %v, want permission denied", err)
	}

	// Leave the delegated cgroup for a leaf so that it may enable
	// controllers (no internal processes), then nest a workload inside.
	leaf := mkCgroup(t, del)
	writeFile(t, leaf+"/cgroup.procs", strconv.Itoa(os.Getpid()))
	t.Cleanup(func() {
		os.WriteFile(del+"/cgroup.subtree_control", []byte("-cpu -memory -pids -io"), 0)
		if err := os.WriteFile(del+"/cgroup.procs", []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			t.Errorf("moving back to %s: %v", del, err)
		}
	})
	writeFile(t, del+"/cgroup.subtree_control", "+cpu +memory +pids +io")
	work := mkCgroup(t, del)
	wantFiles(t, work, append(v2Common, "memory.peak", "pids.peak", "cgroup.kill"), nil)
	runTouch(t, work)
	if peak := number(t, work+"/memory.peak"); peak < touchMiB<<20 {
		t.Errorf("memory.peak = %d after touching %d MiB", peak, touchMiB)
	}
}

// checkSystemdRootlessHost checks the systemd scenario is what a rootless
// CI runner sees: the tests run unprivileged in a cgroup that is not
// theirs (no pre-made delegation), the user's manager is up on its bus
// and Debian delegates cpu, memory and pids to it, not io.
func checkSystemdRootlessHost(t *testing.T, _ string) {
	if os.Getuid() != vmtest.RunnerUID {
		t.Fatalf("running as uid %d, want %d", os.Getuid(), vmtest.RunnerUID)
	}
	if m := fsMagic(t, cgroupRoot); m != cgroup2Magic {
		t.Fatalf("%s is fs type %#x, want cgroup2 (systemd.unified_cgroup_hierarchy=1)", cgroupRoot, m)
	}
	if data, err := os.ReadFile("/proc/1/comm"); err != nil || strings.TrimSpace(string(data)) != "systemd" {
		t.Fatalf("PID 1 is %q (%v), want systemd", data, err)
	}
	bus := os.Getenv("XDG_RUNTIME_DIR") + "/bus"
	if st, err := os.Stat(bus); err != nil || st.Mode().Type() != fs.ModeSocket {
		t.Fatalf("user bus %s: %v (mode %v)", bus, err, st)
	}
	own, err := ownCgroup()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/system.slice/" + vmtest.UnitName; own != want {
		t.Errorf("tests run in cgroup %q, want the unit's %q", own, want)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(cgroupRoot+own+"/cgroup.procs", &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid == uint32(os.Getuid()) {
		t.Errorf("%s%s/cgroup.procs is ours: the scenario must not delegate anything in advance", cgroupRoot, own)
	}
	mgr := fmt.Sprintf("%s/user.slice/user-%d.slice/user@%d.service", cgroupRoot, vmtest.RunnerUID, vmtest.RunnerUID)
	ctl := strings.Fields(readFile(t, mgr+"/cgroup.controllers"))
	for _, c := range []string{"cpu", "memory", "pids"} {
		if !contains(ctl, c) {
			t.Errorf("%s/cgroup.controllers %v lacks %s", mgr, ctl, c)
		}
	}
	if contains(ctl, "io") {
		t.Errorf("%s/cgroup.controllers %v has io, which Debian does not delegate to users: the io checks would test nothing", mgr, ctl)
	}
}

func checkHybrid(t *testing.T, _ string) {
	if m := fsMagic(t, cgroupRoot); m != tmpfsMagic {
		t.Errorf("%s is fs type %#x, want tmpfs", cgroupRoot, m)
	}
	for _, c := range []string{"cpu", "cpuacct", "memory", "pids"} {
		if m := fsMagic(t, cgroupRoot+"/"+c); m != cgroup1Magic {
			t.Errorf("%s/%s is fs type %#x, want cgroup v1", cgroupRoot, c, m)
		}
	}
	mem := mkCgroup(t, cgroupRoot+"/memory")
	wantFiles(t, mem, []string{"memory.max_usage_in_bytes", "memory.limit_in_bytes", "memory.usage_in_bytes"}, nil)

	uni := cgroupRoot + "/unified"
	if m := fsMagic(t, uni); m != cgroup2Magic {
		t.Fatalf("%s is fs type %#x, want cgroup2", uni, m)
	}
	ctl := strings.Fields(readFile(t, uni+"/cgroup.controllers"))
	for _, c := range []string{"cpu", "memory", "pids", "io"} {
		if contains(ctl, c) {
			t.Errorf("%s/cgroup.controllers %v offers %s, which v1 holds", uni, ctl, c)
		}
	}
	dir := mkCgroup(t, uni)
	wantFiles(t, dir, []string{"cgroup.procs", "cgroup.kill", "cgroup.events", "cpu.stat"},
		[]string{"memory.current", "memory.peak", "pids.max"})
	runTouch(t, dir)
}

func checkNoCgroupFS(t *testing.T, _ string) {
	b := readFile(t, "/proc/self/mountinfo")
	for _, l := range strings.Split(b, "\n") {
		if _, after, ok := strings.Cut(l, " - "); ok {
			if f := strings.Fields(after); len(f) > 0 && (f[0] == "cgroup" || f[0] == "cgroup2") {
				t.Errorf("a cgroup filesystem is mounted: %s", l)
			}
		}
	}
	if m := fsMagic(t, cgroupRoot); m != sysfsMagic {
		t.Errorf("%s is fs type %#x, want the bare sysfs directory", cgroupRoot, m)
	}
	if exists(cgroupRoot + "/cgroup.controllers") {
		t.Errorf("%s/cgroup.controllers exists", cgroupRoot)
	}
}
