package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cgmon/cgmon/cgroupmon"
)

// remedyFix matches a command a remedy quotes, and " fails" after one it
// quotes as what does not work.
var remedyFix = regexp.MustCompile("`([^`]+)`( fails)?")

// fixesOf returns the commands a remedy gives to run, and those it quotes
// as failing.
func fixesOf(remedy string) (fixes, failing []string) {
	for _, m := range remedyFix.FindAllStringSubmatch(remedy, -1) {
		if m[2] == "" {
			fixes = append(fixes, m[1])
		} else {
			failing = append(failing, m[1])
		}
	}
	return fixes, failing
}

// gapWith returns the gap whose What begins with prefix, if any.
func gapWith(p *cgroupmon.Probe, prefix string) (cgroupmon.Gap, bool) {
	for _, g := range p.Gaps {
		if strings.HasPrefix(g.What, prefix) {
			return g, true
		}
	}
	return cgroupmon.Gap{}, false
}

// sh runs a remedy's command as the guest's root runs it.
func sh(t *testing.T, cmd string) error {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", cmd).CombinedOutput()
	if err != nil {
		return errors.New(err.Error() + ": " + strings.TrimSpace(string(out)))
	}
	return nil
}

// TestVMRemediesWork follows doctor's remedies in the VM scenarios, on
// real kernels, where they can be followed without a reboot: on a host
// without cgroups the printed mount gives cgroup v2 with its controllers;
// on pure cgroup v2, the printed writes enable a controller that cgroups
// above the root do not pass down (and, while one of them holds a
// process, the remedy says to move it, as the kernel refuses the write
// until then). On the hybrid host, where cgroup v1 holds the controllers,
// the write the remedy quotes as failing does fail (ENOENT): only the
// boot parameters it gives free them.
func TestVMRemediesWork(t *testing.T) {
	switch os.Getenv("CGMON_VM_SCENARIO") {
	case "":
		t.Skip("follows doctor's remedies on a VM's kernel: runs in make vmtest only")
	case "none":
		vmMountRemedy(t)
	case "hybrid":
		vmHybridRemedy(t)
	case "v2-6.1", "v2-5.10":
		vmEnableRemedy(t)
	default:
		t.Skip("no remedy of this scenario can be followed in the guest")
	}
}

func probe(t *testing.T, opts cgroupmon.Options) *cgroupmon.Probe {
	t.Helper()
	p, err := cgroupmon.ProbeHost(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// vmMountRemedy: no cgroup filesystem is mounted; the remedy's command
// mounts cgroup2 and enables the controllers, after which the probe finds
// a unified host whose root offers cpu, memory, pids and io. The mount
// is undone.
func vmMountRemedy(t *testing.T) {
	p := probe(t, cgroupmon.Options{})
	g, ok := gapWith(p, "no cgroup v2 hierarchy")
	if !ok {
		t.Fatalf("no gap for the missing cgroup v2 hierarchy: %+v", p.Gaps)
	}
	fixes, _ := fixesOf(g.Remedy)
	if len(fixes) != 2 || !strings.HasPrefix(fixes[0], "mount -t cgroup2 ") {
		t.Fatalf("remedy %q: want the mount, then systemd's boot parameter", g.Remedy)
	}
	t.Cleanup(func() {
		_ = os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("-cpu -memory -pids -io"), 0)
		if err := syscall.Unmount("/sys/fs/cgroup", 0); err != nil {
			t.Errorf("unmounting the cgroup2 the remedy mounted: %v", err)
		}
	})
	if err := sh(t, fixes[0]); err != nil {
		t.Fatalf("the remedy's command %q: %v", fixes[0], err)
	}
	p = probe(t, cgroupmon.Options{})
	if p.Mode != cgroupmon.ModeUnified || p.Mount != "/sys/fs/cgroup" {
		t.Fatalf("after the remedy: mode %s, mount %q", p.Mode, p.Mount)
	}
	for _, c := range []string{"cpu", "memory", "pids", "io"} {
		if !p.HasController(c) {
			t.Errorf("after the remedy the root does not offer %s (%v); gaps %+v", c, p.Available, p.Gaps)
		}
	}
	if _, ok := gapWith(p, "no cgroup v2 hierarchy"); ok {
		t.Error("the gap is still there after its remedy")
	}
}

// vmHybridRemedy: cgroup v1 holds cpu, memory, pids and io; the remedy
// gives boot parameters, and the write it quotes as failing fails.
func vmHybridRemedy(t *testing.T) {
	p := probe(t, cgroupmon.Options{})
	g, ok := gapWith(p, "cgroup v1 holds the ")
	if !ok {
		t.Fatalf("no gap for the controllers cgroup v1 holds: %+v", p.Gaps)
	}
	for _, c := range []string{"cpu", "memory", "pids", "io"} {
		if !strings.Contains(g.What, c) {
			t.Errorf("gap %q does not name %s", g.What, c)
		}
	}
	fixes, failing := fixesOf(g.Remedy)
	if len(failing) != 1 || !strings.Contains(strings.Join(fixes, " "), "cgroup_no_v1=cpu,memory,pids,io") {
		t.Fatalf("remedy %q: want one write quoted as failing and the boot parameter", g.Remedy)
	}
	m := regexp.MustCompile(`^echo \+(\w+) > (\S+)$`).FindStringSubmatch(failing[0])
	if m == nil {
		t.Fatalf("the failing command %q is not a write to cgroup.subtree_control", failing[0])
	}
	err := os.WriteFile(m[2], []byte("+"+m[1]), 0)
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("%s: %v; the remedy says it fails with No such file or directory", failing[0], err)
	}
}

// vmEnableRemedy makes <mount>/cgmon-remedy-PID/a/root, whose parents do
// not pass the controllers down, and follows the remedies doctor gives
// for it, first while a holds a process (the remedy says to move it; the
// kernel refuses the writes until then), then after moving it.
func vmEnableRemedy(t *testing.T) {
	top := filepath.Join("/sys/fs/cgroup", "cgmon-remedy-"+strconv.Itoa(os.Getpid()))
	a := filepath.Join(top, "a")
	root := filepath.Join(a, "root")
	held := filepath.Join(a, "held")
	for _, d := range []string{top, a, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sleeper := exec.Command("sleep", "60")
	t.Cleanup(func() {
		if sleeper.Process != nil {
			_ = sleeper.Process.Kill()
			_ = sleeper.Wait()
		}
		for _, d := range []string{held, root, a, top} {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("removing %s: %v", d, err)
			}
		}
	})
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	sleeper.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fa.Fd())}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}

	p := probe(t, cgroupmon.Options{CgroupRoot: root})
	if p.Root != root {
		t.Fatalf("root %q: %s", p.Root, p.RootReason)
	}
	var fixes []string
	for _, c := range []string{"cpu", "memory", "pids", "io"} {
		g, ok := gapWith(p, "the "+c+" controller ")
		if !ok {
			t.Fatalf("no gap for %s: %+v", c, p.Gaps)
		}
		if !strings.Contains(g.Remedy, "move the processes of "+a+" into a child cgroup") {
			t.Errorf("remedy %q does not say to move the process out of %s", g.Remedy, a)
		}
		f, _ := fixesOf(g.Remedy)
		if len(f) != 1 {
			t.Fatalf("remedy %q: want one command", g.Remedy)
		}
		fixes = append(fixes, f[0])
	}
	// memory is a domain controller: the kernel refuses to pass it on
	// from a cgroup that holds a process. (cpu and pids are threaded
	// controllers, which it lets through; enabling one there would make
	// a a thread root whose children take no process, which is why the
	// remedy moves the process first, whatever the controller.)
	if err := sh(t, fixes[1]); !strings.Contains(errString(err), "busy") {
		t.Errorf("%q while %s holds a process: %v; the remedy says the kernel refuses it (busy)", fixes[1], a, err)
	}
	// Move the process, as the remedy says, and follow it.
	if err := os.Mkdir(held, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(held, "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	for _, f := range fixes {
		if err := sh(t, f); err != nil {
			t.Errorf("the remedy's command %q: %v", f, err)
		}
	}
	p = probe(t, cgroupmon.Options{CgroupRoot: root})
	for _, c := range []string{"cpu", "memory", "pids", "io"} {
		if !p.HasController(c) {
			t.Errorf("after the remedies %s offers no %s (%v)", root, c, p.Available)
		}
		if g, ok := gapWith(p, "the "+c+" controller "); ok {
			t.Errorf("gap still there after its remedy: %q", g.What)
		}
	}
	// The controllers are the test's to turn off again before rmdir.
	_ = os.WriteFile(filepath.Join(a, "cgroup.subtree_control"), []byte("-cpu -memory -pids -io"), 0)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return strings.ToLower(err.Error())
}
