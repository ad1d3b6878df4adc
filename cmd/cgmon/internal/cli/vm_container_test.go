package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgmon/cgmon/cgroupmon"
	"github.com/cgmon/cgmon/internal/workload"
)

// TestVMMoveOthersCLI is --move-others inside the privileged container
// scenario (make vmtest): `cgmon doctor --move-others` describes what run
// would do and moves nothing (compared with
// testdata/cli/doctor-vm-container-privileged-move-others.txt.golden,
// printed between markers when it differs, as TestVMDoctorGolden does);
// `cgmon run --move-others --memory-max 32M -- alloc 96 100` moves the
// container's processes and ends in an OOM kill; a later run without the
// flag finds the container arranged and measures memory.peak exactly.
// The test puts the container back as it was for the tests that follow.
func TestVMMoveOthersCLI(t *testing.T) {
	sc := os.Getenv("CGMON_VM_SCENARIO")
	if sc != "container-privileged" {
		t.Skipf("--move-others inside the privileged container: runs in make vmtest, scenario container-privileged; scenario %q", sc)
	}
	const mount = "/sys/fs/cgroup"
	var b bytes.Buffer
	if code := Main([]string{"doctor", "--move-others"}, IO{In: strings.NewReader(""), Out: &b, Err: &b}); code != 0 {
		t.Fatalf("cgmon doctor --move-others: exit %d: %s", code, b.String())
	}
	got := normaliseVM(b.String())
	name := "doctor-vm-" + sc + "-move-others"
	path := filepath.Join("..", "..", "..", "..", "testdata", "cli", name+".txt.golden")
	want, err := os.ReadFile(path)
	if err != nil || string(want) != got {
		t.Errorf("%s differs or is missing (%v):\n-----BEGIN GOLDEN %s-----\n%s-----END GOLDEN-----", path, err, name, got)
	}
	if _, err := os.Stat(mount + "/init"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("doctor --move-others moved something (%s/init: %v): it must only describe", mount, err)
	}

	wl, err := workload.Path("alloc")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", filepath.Dir(wl)+":"+os.Getenv("PATH")) // so that the commands read as printed
	t.Cleanup(func() { restoreNamespaceRoot(t, mount) })
	var out bytes.Buffer
	stdio := IO{In: strings.NewReader(""), Out: &out, Err: &out}
	if code := Main([]string{"run", "--move-others", "--memory-max", "32M", "--", "alloc", "96", "100"}, stdio); code != 137 {
		t.Fatalf("cgmon run --move-others --memory-max 32M -- alloc 96 100: exit %d, want 137 (OOM kill):\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "OOM killed:                 yes") {
		t.Errorf("the report does not say OOM killed:\n%s", out.String())
	}
	if procs, _ := os.ReadFile(mount + "/cgroup.procs"); len(bytes.TrimSpace(procs)) > 0 {
		t.Errorf("the namespace root still holds %q after --move-others", procs)
	}

	t.Chdir(t.TempDir())
	report := "peak.json"
	out.Reset()
	if code := Main([]string{"run", "--format", "json", "-o", report, "--", "alloc", "48", "10"}, stdio); code != 0 {
		t.Fatalf("cgmon run -- alloc 48 10 after the move: exit %d:\n%s", code, out.String())
	}
	var r struct {
		MemoryPeakBytes *uint64           `json:"memory_peak_bytes"`
		Sources         map[string]string `json:"sources"`
		Unavailable     map[string]string `json:"unavailable"`
	}
	rb, err := os.ReadFile(report)
	if err == nil {
		err = json.Unmarshal(rb, &r)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.MemoryPeakBytes == nil || r.Sources["memory_peak_bytes"] != "cgroup2:memory.peak" {
		t.Fatalf("memory peak %v from %q (%s), want memory.peak: the container stays arranged, no flag needed", r.MemoryPeakBytes, r.Sources["memory_peak_bytes"], r.Unavailable["memory_peak_bytes"])
	}
	if d := float64(*r.MemoryPeakBytes)/float64(48<<20) - 1; d < -0.1 || d > 0.1 {
		t.Errorf("memory.peak %d is %.1f%% off 48 MiB", *r.MemoryPeakBytes, 100*d)
	}
	if _, err := os.Stat(mount + "/init"); err != nil {
		t.Errorf("%s/init: %v: it is not cgmon's and stays", mount, err)
	}
}

// restoreNamespaceRoot puts the container back as it was before
// --move-others, for the tests that follow: the controllers off again, the
// processes of init back in the root, init removed. cgmon itself never
// does this; every monitor must be closed (their shared root gone).
func restoreNamespaceRoot(t *testing.T, mount string) {
	t.Helper()
	b, err := os.ReadFile(mount + "/cgroup.subtree_control")
	if err != nil {
		t.Fatal(err)
	}
	var off []string
	for _, c := range strings.Fields(string(b)) {
		off = append(off, "-"+c)
	}
	if len(off) > 0 {
		if err := os.WriteFile(mount+"/cgroup.subtree_control", []byte(strings.Join(off, " ")), 0); err != nil {
			t.Fatalf("putting the container back: %v", err)
		}
	}
	sibling := filepath.Join(mount, "init")
	for deadline := time.Now().Add(5 * time.Second); ; {
		procs, _ := os.ReadFile(sibling + "/cgroup.procs")
		for _, pid := range strings.Fields(string(procs)) {
			_ = os.WriteFile(mount+"/cgroup.procs", []byte(pid), 0)
		}
		err := os.Remove(sibling)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("putting the container back: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestVMWatchContainerByPrefix lays out a cgroup as Docker's systemd driver
// does (<mount>/system.slice/docker-<64 hex>.scope), runs a workload in
// it and watches it with `cgmon watch --container <prefix>`: the container
// is found without any runtime, and the report names it and measures the
// workload.
func TestVMWatchContainerByPrefix(t *testing.T) {
	sc := os.Getenv("CGMON_VM_SCENARIO")
	switch sc {
	case "v2-6.1", "v2-5.10", "hybrid", "container-privileged":
	default:
		t.Skipf("needs a writable cgroup v2 tree as root (make vmtest: v2-6.1, v2-5.10, hybrid, container-privileged); scenario %q", sc)
	}
	p, err := cgroupmon.ProbeHost(cgroupmon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(raw)
	slice := filepath.Join(p.Mount, "system.slice")
	scope := filepath.Join(slice, "docker-"+id+".scope")
	if err := os.Mkdir(slice, 0o755); err == nil {
		t.Cleanup(func() { removeCgroup(t, slice) })
	} else if !errors.Is(err, fs.ErrExist) {
		t.Fatal(err)
	}
	// A systemd slice hands its scopes the controllers its parent gives it.
	if b, err := os.ReadFile(filepath.Join(p.Mount, "cgroup.subtree_control")); err == nil && len(bytes.TrimSpace(b)) > 0 {
		on := "+" + strings.Join(strings.Fields(string(b)), " +")
		if err := os.WriteFile(filepath.Join(slice, "cgroup.subtree_control"), []byte(on), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(scope, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroup(t, scope) })

	alloc, err := workload.Path("alloc")
	if err != nil {
		t.Fatal(err)
	}
	// The shell moves itself into the scope before it becomes the
	// workload, so that everything the workload uses is counted there.
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$1/cgroup.procs" && exec "$2" 32 1500`, "sh", scope, alloc)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := strconv.Itoa(cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); ; {
		b, _ := os.ReadFile(filepath.Join(scope, "cgroup.procs"))
		if strings.Contains(" "+strings.Join(strings.Fields(string(b)), " ")+" ", " "+pid+" ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workload never joined %s: %s", scope, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	report := filepath.Join(t.TempDir(), "r.json")
	var stderr bytes.Buffer
	code := Main([]string{"watch", "--container", id[:12], "--interval", "50ms", "--format", "json", "-o", report},
		IO{In: strings.NewReader(""), Out: &stderr, Err: &stderr})
	if code != 0 {
		t.Fatalf("cgmon watch --container %s: exit %d: %s", id[:12], code, stderr.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("workload: %v: %s", err, out.String())
	}
	var r struct {
		ID              string            `json:"id"`
		Status          string            `json:"status"`
		Command         []string          `json:"command"`
		MemoryPeakBytes *uint64           `json:"memory_peak_bytes"`
		Sources         map[string]string `json:"sources"`
		Unavailable     map[string]string `json:"unavailable"`
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	t.Logf("report: %s", b)
	if r.Status != "ended" || r.ID != "container-"+id[:12] {
		t.Errorf("status %q id %q, want ended and container-%s", r.Status, r.ID, id[:12])
	}
	if len(r.Command) != 2 || r.Command[0] != "container:"+id || r.Command[1] != "cgroup:"+scope {
		t.Errorf("command %q, want the container's full id and its cgroup %s", r.Command, scope)
	}
	if r.MemoryPeakBytes == nil {
		t.Fatalf("memory peak unknown: %s", r.Unavailable["memory_peak_bytes"])
	}
	src := r.Sources["memory_peak_bytes"]
	if *r.MemoryPeakBytes < 30<<20 {
		t.Errorf("memory peak %d from %s, want at least the 32 MiB the workload touched", *r.MemoryPeakBytes, src)
	}
	want := map[string]string{"v2-6.1": "cgroup2:memory.peak", "v2-5.10": "sampled:memory.current"}[sc]
	if want != "" && src != want {
		t.Errorf("memory peak from %s, want %s (the scope has the memory controller)", src, want)
	}
}

// removeCgroup removes a cgroup the test made, waiting for its processes
// to be gone.
func removeCgroup(t *testing.T, dir string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("removing %s: %v", dir, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
