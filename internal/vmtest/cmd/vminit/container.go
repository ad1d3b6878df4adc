//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/internal/vmtest"
)

// The container scenarios (see vmtest.ContainerCgroup): /init makes the
// container's cgroup as Docker's or Podman's systemd driver names it, on
// a cgroup2 mounted as systemd mounts it, and starts every test binary
// through `/init -container NAME -- TEST ARGS...` inside that cgroup with
// a new cgroup and mount namespace. Since Linux 5.7 (ef2c41cf38a7), a
// child cloned with CLONE_INTO_CGROUP and CLONE_NEWCGROUP has its target
// cgroup as the root of its new namespace, as runc's container has.

// hostMountOptions are the cgroup2 options of a systemd host, where Docker
// and Podman run.
const hostMountOptions = "nsdelegate,memory_recursiveprot"

// setupContainer mounts cgroup2 as a systemd host does, makes the
// container's cgroup with the controllers a systemd slice gives it, and has
// the tests started inside it in new namespaces. After each test binary it
// checks that the container's cgroup is as it was: a test that rearranges
// it (Options.MoveOthers) must put it back for the next binary.
func setupContainer(name string, run *runSpec) error {
	if err := setupV2With(hostMountOptions); err != nil {
		return err
	}
	rel := vmtest.ContainerCgroup(name)
	slice, scope := filepath.Join(cgroupRoot, filepath.Dir(rel)), filepath.Join(cgroupRoot, rel)
	if err := os.Mkdir(slice, 0o755); err != nil {
		return err
	}
	if err := write(slice+"/cgroup.subtree_control", controllers); err != nil {
		return err
	}
	if err := os.Mkdir(scope, 0o755); err != nil {
		return err
	}
	fd, err := os.Open(scope)
	if err != nil {
		return err
	}
	run.cgroupFD = fd
	run.cloneflags = syscall.CLONE_NEWCGROUP | syscall.CLONE_NEWNS
	run.wrap = []string{"/init", vmtest.ContainerFlag, name, "--"}
	run.after = func() error { return containerUnchanged(scope) }
	return nil
}

// containerUnchanged fails when the container's cgroup has a child cgroup
// or controllers enabled for its children: what a test binary left.
func containerUnchanged(scope string) error {
	ents, err := os.ReadDir(scope)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			return fmt.Errorf("the test binary left the cgroup %s/%s in the container's cgroup", scope, e.Name())
		}
	}
	b, err := os.ReadFile(scope + "/cgroup.subtree_control")
	if err != nil {
		return err
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return fmt.Errorf("the test binary left controllers %q enabled in the container's cgroup %s", s, scope)
	}
	return nil
}

// containerMain is `/init -container NAME -- TEST ARGS...`, the container
// runtime's last steps inside the new namespaces: the container's own
// cgroup2 mount, its marker file, the seccomp filter and (not privileged)
// Docker's capabilities; then it executes `/init -container-init`.
func containerMain(args []string) int {
	if len(args) < 3 || args[1] != "--" {
		fmt.Fprintln(os.Stderr, "vminit: usage: /init", vmtest.ContainerFlag, "NAME -- COMMAND [ARG...]")
		return 2
	}
	err := enterContainer(args[0], args[2:])
	fmt.Fprintln(os.Stderr, "vminit: entering the container:", err)
	return 125
}

// enterContainer sets the container up and executes its init; it returns
// only on error.
func enterContainer(name string, argv []string) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	// The host's cgroup2 mount shows the whole tree; a container gets its
	// own, whose root is the namespace's root.
	if err := syscall.Unmount(cgroupRoot, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("unmounting the host's %s: %w", cgroupRoot, err)
	}
	flags := uintptr(syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC | syscall.MS_RELATIME)
	if name == vmtest.ContainerUnprivileged {
		flags |= syscall.MS_RDONLY // as Docker mounts it into a container that is not privileged
	}
	if err := syscall.Mount("cgroup2", cgroupRoot, "cgroup2", flags, ""); err != nil {
		return fmt.Errorf("mounting the container's cgroup2: %w", err)
	}
	if err := markContainer(name); err != nil {
		return err
	}
	if err := denyClone3(); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	// Capabilities and the bounding set belong to a thread: drop them on
	// this one and execute from it, so that the new program starts with
	// them dropped in every thread.
	runtime.LockOSThread()
	if name == vmtest.ContainerUnprivileged {
		if err := dockerCapabilities(); err != nil {
			return fmt.Errorf("capabilities: %w", err)
		}
	}
	return syscall.Exec("/init", append([]string{"/init", vmtest.ContainerInitFlag, "--"}, argv...), os.Environ())
}

// markContainer writes the file the engine puts into a container's root:
// Docker's empty /.dockerenv, or Podman's /run/.containerenv, which names
// the container in a privileged one.
func markContainer(name string) error {
	if name == vmtest.ContainerUnprivileged {
		return os.WriteFile("/.dockerenv", nil, 0o755)
	}
	if err := os.MkdirAll("/run", 0o755); err != nil {
		return err
	}
	env := `engine="podman-4.3.1"
name="cgmon-vmtest"
id="` + vmtest.ContainerID + `"
image="docker.io/library/debian:bookworm"
imageid="` + strings.Repeat("0", 64) + `"
rootless=0
`
	return os.WriteFile("/run/.containerenv", []byte(env), 0o644)
}

// denyClone3 installs, in every thread, Docker's default seccomp answer to
// clone3: ENOSYS, so that a C library falls back to clone (clone3's flags
// sit in memory, where a filter cannot look). cgmon's CLONE_INTO_CGROUP
// needs clone3, so its starts take the gated path.
func denyClone3() error {
	var arch uint32
	switch runtime.GOARCH {
	case "amd64":
		arch = unix.AUDIT_ARCH_X86_64
	case "arm64":
		arch = unix.AUDIT_ARCH_AARCH64
	default:
		return fmt.Errorf("no audit architecture for %s", runtime.GOARCH)
	}
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4}, // seccomp_data.arch
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 3, K: arch},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_CLONE3},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	switch {
	case errno != 0:
		return errno
	case r != 0:
		return fmt.Errorf("thread %d could not take the filter", r)
	}
	return nil
}

// dockerCaps is Docker's default capability set (moby's
// oci/caps/defaults.go): no CAP_SYS_ADMIN, CAP_SYS_PTRACE or
// CAP_SYS_RESOURCE.
var dockerCaps = []int{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FSETID, unix.CAP_FOWNER, unix.CAP_MKNOD,
	unix.CAP_NET_RAW, unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SETFCAP, unix.CAP_SETPCAP,
	unix.CAP_NET_BIND_SERVICE, unix.CAP_SYS_CHROOT, unix.CAP_KILL, unix.CAP_AUDIT_WRITE,
}

// dockerCapabilities leaves this thread Docker's default set: every other
// capability dropped from the bounding set (so that root gets no more at
// exec), the permitted and effective sets reduced to it, none inheritable.
func dockerCapabilities() error {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return err
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	keep := map[int]bool{}
	var data [2]unix.CapUserData
	for _, c := range dockerCaps {
		keep[c] = true
		data[c/32].Effective |= 1 << (c % 32)
		data[c/32].Permitted |= 1 << (c % 32)
	}
	for c := 0; c <= last; c++ {
		if !keep[c] {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
			}
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	return unix.Capset(&hdr, &data[0])
}

// containerInitMain is `/init -container-init -- TEST ARGS...`, the
// container's init: it starts another process of the container (a sleep,
// as a container's entrypoint runs beside its workload) and the test
// binary, and exits with the test binary's status.
func containerInitMain(args []string) int {
	if len(args) < 2 || args[0] != "--" {
		fmt.Fprintln(os.Stderr, "vminit: usage: /init", vmtest.ContainerInitFlag, "-- COMMAND [ARG...]")
		return 2
	}
	sidecar := exec.Command("/bin/sleep", "2147483647")
	if err := sidecar.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "vminit: container init:", err)
		return 125
	}
	defer func() {
		_ = sidecar.Process.Kill()
		_ = sidecar.Wait()
	}()
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "vminit: container init:", err)
	return 125
}
