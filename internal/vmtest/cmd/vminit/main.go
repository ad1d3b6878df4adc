//go:build linux

// Command vminit is the /init of the VM test initramfs (a static binary,
// PID 1). It mounts the basic filesystems, sets up the cgroup layout of the
// scenario named by the kernel parameter cgmon.scenario, runs every test
// binary of /tests/manifest with -test.v, streams their output to the serial
// console, prints one result line and powers the machine off.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgmon/cgmon/internal/vmtest"
	"github.com/cgmon/cgmon/internal/workload"
	"golang.org/x/sys/unix"
)

const (
	cgroupRoot   = "/sys/fs/cgroup"
	rootlessUID  = 1000
	delegatedRel = "user.slice/delegated"
	controllers  = "+cpu +memory +pids +io"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case vmtest.UnitFlag:
			os.Exit(unitMain())
		case vmtest.ContainerFlag:
			os.Exit(containerMain(os.Args[2:]))
		case vmtest.ContainerInitFlag:
			os.Exit(containerInitMain(os.Args[2:]))
		}
	}
	res := vmtest.Result{Scenario: "unknown", Status: vmtest.StatusFail}
	defer func() {
		if p := recover(); p != nil {
			res.Status, res.Reason = vmtest.StatusFail, fmt.Sprintf("vminit panic: %v", p)
		}
		fmt.Println(res.String())
		poweroff()
	}()
	res = run()
}

func poweroff() {
	syscall.Sync()
	err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Println("vminit: power off failed:", err)
	os.Exit(1) // the kernel panics and qemu (-no-reboot) exits
}

// bootParams reads the scenario and the test timeout from the kernel
// command line; res.Scenario is set as soon as it is known.
func bootParams(res *vmtest.Result) (map[string]string, vmtest.Scenario, time.Duration, error) {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, vmtest.Scenario{}, 0, err
	}
	params := parseCmdline(string(cmdline))
	res.Scenario = params[vmtest.ParamScenario]
	sc, err := vmtest.LookupScenario(res.Scenario)
	if err != nil {
		return nil, vmtest.Scenario{}, 0, err
	}
	testTimeout, err := time.ParseDuration(params[vmtest.ParamTestTimeout])
	if err != nil {
		return nil, vmtest.Scenario{}, 0, fmt.Errorf("%s: %w", vmtest.ParamTestTimeout, err)
	}
	return params, sc, testTimeout, nil
}

// kernelRelease is uname's release string.
func kernelRelease() string {
	var uname syscall.Utsname
	syscall.Uname(&uname)
	return utsString(uname.Release[:])
}

func fail(res vmtest.Result, format string, args ...any) vmtest.Result {
	res.Status = vmtest.StatusFail
	res.Reason = fmt.Sprintf(format, args...)
	return res
}

func run() vmtest.Result {
	res := vmtest.Result{Scenario: "unknown", Status: vmtest.StatusFail}
	if err := mountBasics(); err != nil {
		return fail(res, "mount: %v", err)
	}
	params, sc, testTimeout, err := bootParams(&res)
	if err != nil {
		return fail(res, "%v", err)
	}
	fmt.Printf("vminit: scenario %s on kernel %s\n", sc.Name, kernelRelease())

	run := runSpec{env: []string{"PATH=/bin:/tests", workload.DirEnv + "=" + vmtest.GuestWorkload, vmtest.EnvVM + "=1", vmtest.EnvScenario + "=" + sc.Name}}
	run.testArgs = testArgs(params)
	if err := setup(sc.Name, &run); err != nil {
		return fail(res, "setting up scenario %s: %v", sc.Name, err)
	}
	defer run.close()

	f, err := os.Open(vmtest.GuestManifest)
	if err != nil {
		return fail(res, "%v", err)
	}
	entries, err := vmtest.ParseManifest(f)
	f.Close()
	if err != nil {
		return fail(res, "%v", err)
	}
	res.Status = vmtest.StatusPass
	for _, e := range entries {
		end := runTest(e, run, testTimeout)
		res.Add(end.Counts)
		if end.Status != vmtest.StatusPass {
			res.Status = vmtest.StatusFail
		}
	}
	if res.Status == vmtest.StatusPass && res.Passed == 0 {
		return fail(res, "no test passed")
	}
	return res
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// testArgs returns the test binaries' extra flags from the kernel
// parameters.
func testArgs(params map[string]string) []string {
	if r := params[vmtest.ParamTestRun]; r != "" {
		return []string{"-test.run=" + r}
	}
	return nil
}

func parseCmdline(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

func mountBasics() error {
	for _, m := range []struct{ src, dst, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(m.src, m.dst, m.fstype, 0, m.data); err != nil {
			return fmt.Errorf("%s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return loopbackUp()
}

// loopbackUp brings up lo, as any init does: tests serve and scrape
// /metrics on 127.0.0.1 (the guests have no other network).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: reading its flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: bringing it up: %w", err)
	}
	return nil
}

// runSpec is how the test binaries are started in this scenario.
type runSpec struct {
	wrap     []string // a command that runs the test binary (runuser ... env ...)
	testArgs []string // more flags for the test binary (-test.run=...)
	env      []string
	cred     *syscall.Credential
	cgroupFD *os.File // start the tests inside this cgroup (CLONE_INTO_CGROUP)
	// cloneflags are namespaces the tests start in (CLONE_NEWCGROUP ...).
	cloneflags uintptr
	// after, when set, checks what a test binary left once it ended; its
	// error fails the binary's package.
	after func() error
}

func (r runSpec) close() {
	if r.cgroupFD != nil {
		r.cgroupFD.Close()
	}
}

func write(path, data string) error {
	if err := os.WriteFile(path, []byte(data), 0); err != nil {
		return fmt.Errorf("write %q to %s: %w", data, path, err)
	}
	return nil
}

// setupV2 mounts cgroup2, moves /init into the leaf /init so that the root
// holds no process, and enables the controllers for the root's children.
func setupV2() error { return setupV2With("") }

// setupV2With is setupV2 with cgroup2 mount options (data).
func setupV2With(data string) error {
	if err := syscall.Mount("cgroup2", cgroupRoot, "cgroup2", 0, data); err != nil {
		return fmt.Errorf("mount cgroup2: %w", err)
	}
	if err := os.Mkdir(cgroupRoot+"/init", 0o755); err != nil {
		return err
	}
	if err := write(cgroupRoot+"/init/cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
		return err
	}
	return write(cgroupRoot+"/cgroup.subtree_control", controllers)
}

func setup(name string, run *runSpec) error {
	home := "/tmp/home"
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	switch name {
	case "v2-6.1", "v2-5.10":
		if err := setupV2(); err != nil {
			return err
		}
	case "v2-rootless":
		if err := setupV2(); err != nil {
			return err
		}
		if err := setupDelegated(run); err != nil {
			return err
		}
		if err := os.Chown(home, rootlessUID, rootlessUID); err != nil {
			return err
		}
	case "hybrid":
		if err := setupHybrid(); err != nil {
			return err
		}
	case "none":
		// Nothing: the kernel has cgroups but no cgroup filesystem is mounted.
	case vmtest.ContainerUnprivileged, vmtest.ContainerPrivileged:
		if err := setupContainer(name, run); err != nil {
			return err
		}
	default:
		return fmt.Errorf("vminit does not know how to set up %q", name)
	}
	run.env = append(run.env, "HOME="+home, "TMPDIR="+home)
	return nil
}

// setupDelegated creates /user.slice/delegated with every controller
// enabled down to it and hands it to uid 1000 as systemd's Delegate=yes
// does: the directory and its cgroup.procs, cgroup.subtree_control and
// cgroup.threads belong to the user; nothing above it does.
func setupDelegated(run *runSpec) error {
	slice := cgroupRoot + "/user.slice"
	dir := cgroupRoot + "/" + delegatedRel
	if err := os.Mkdir(slice, 0o755); err != nil {
		return err
	}
	if err := write(slice+"/cgroup.subtree_control", controllers); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for _, p := range []string{dir, dir + "/cgroup.procs", dir + "/cgroup.subtree_control", dir + "/cgroup.threads"} {
		if err := os.Chown(p, rootlessUID, rootlessUID); err != nil {
			return err
		}
	}
	fd, err := os.Open(dir)
	if err != nil {
		return err
	}
	run.cgroupFD = fd
	run.cred = &syscall.Credential{Uid: rootlessUID, Gid: rootlessUID, Groups: []uint32{}}
	return nil
}

// hybridV1 are the v1 hierarchies mounted in the hybrid scenario, as on the
// development machine (`mount | grep cgroup` there).
var hybridV1 = []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"}

func setupHybrid() error {
	if err := syscall.Mount("tmpfs", cgroupRoot, "tmpfs", 0, "mode=755"); err != nil {
		return fmt.Errorf("tmpfs on %s: %w", cgroupRoot, err)
	}
	for _, c := range hybridV1 {
		if err := os.Mkdir(cgroupRoot+"/"+c, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount("cgroup", cgroupRoot+"/"+c, "cgroup", 0, c); err != nil {
			return fmt.Errorf("cgroup v1 %s: %w", c, err)
		}
	}
	if err := os.Mkdir(cgroupRoot+"/systemd", 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("cgroup", cgroupRoot+"/systemd", "cgroup", 0, "none,name=systemd"); err != nil {
		return fmt.Errorf("cgroup v1 name=systemd: %w", err)
	}
	if err := os.Mkdir(cgroupRoot+"/unified", 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("cgroup2", cgroupRoot+"/unified", "cgroup2", 0, ""); err != nil {
		return fmt.Errorf("cgroup2 on unified: %w", err)
	}
	return nil
}

// runTest runs one test binary, copying its output to the console and
// counting results; it prints the package's begin and end lines.
func runTest(e vmtest.ManifestEntry, run runSpec, timeout time.Duration) vmtest.PkgEnd {
	fmt.Println(vmtest.PkgBegin(e.Pkg))
	end := vmtest.PkgEnd{Pkg: e.Pkg, Status: vmtest.StatusFail}
	defer func() { fmt.Println(end.String()) }()

	r, w, err := os.Pipe()
	if err != nil {
		end.Exit = err.Error()
		return end
	}
	defer r.Close()
	argv := append(append([]string(nil), run.wrap...), e.Binary, "-test.v", "-test.count=1", "-test.timeout="+timeout.String())
	argv = append(argv, run.testArgs...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = e.WorkDir
	cmd.Env = run.env
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: run.cred, Setpgid: true, Cloneflags: run.cloneflags}
	if run.cgroupFD != nil {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(run.cgroupFD.Fd())
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		end.Exit = "start: " + err.Error()
		return end
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				end.CountLine(line)
				io.WriteString(os.Stdout, line)
			}
			if err != nil {
				return
			}
		}
	}()
	waitErr := cmd.Wait()
	// A process the tests leaked may keep the pipe open: kill the test's
	// process group, and stop reading after a grace period.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-lines:
	case <-time.After(2 * time.Second):
		fmt.Println("\nvminit: output pipe still open 2s after the test binary exited: a process leaked")
		r.Close()
		<-lines
		waitErr = errors.Join(waitErr, errors.New("leaked a process holding its output"))
	}
	if run.after != nil {
		if err := run.after(); err != nil {
			fmt.Println("\nvminit:", err)
			waitErr = errors.Join(waitErr, err)
		}
	}
	switch {
	case waitErr != nil:
		end.Exit = waitErr.Error()
	case end.Failed > 0:
		end.Exit = "exit status 0 with failed tests"
	default:
		end.Exit, end.Status = "ok", vmtest.StatusPass
	}
	return end
}
