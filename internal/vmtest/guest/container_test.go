//go:build linux

package guest

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/internal/vmtest"
)

// dockerCapMask is CapEff of a root process in a Docker container started
// with the default capabilities (moby's oci/caps/defaults.go): chown,
// dac_override, fowner, fsetid, kill, setgid, setuid, setpcap,
// net_bind_service, net_raw, sys_chroot, mknod, audit_write, setfcap.
const dockerCapMask = 0xa80425fb

// procStatusHex reads one hexadecimal field of /proc/self/status.
func procStatusHex(t *testing.T, key string) uint64 {
	t.Helper()
	for _, l := range strings.Split(readFile(t, "/proc/self/status"), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/self/status has no %s", key)
	return 0
}

// checkContainerSetup checks what the container scenarios promise the
// tests: a cgroup namespace whose root is the container's cgroup (its
// cgroup.type shows it is no real root) and which holds the container's
// processes, a cgroup2 mount of its own (read-only when not privileged),
// the engine's marker file, clone3 answered ENOSYS, and Docker's default
// capabilities when not privileged.
func checkContainerSetup(t *testing.T, s string) {
	if p, err := ownCgroup(); err != nil || p != "/" {
		t.Errorf("own cgroup %q (%v), want / (the root of the container's cgroup namespace)", p, err)
	}
	if fsMagic(t, cgroupRoot) != cgroup2Magic {
		t.Fatalf("%s is not cgroup2", cgroupRoot)
	}
	if !exists(cgroupRoot + "/cgroup.type") {
		t.Error("the namespace root has no cgroup.type: it is the hierarchy's real root, not the container's cgroup")
	}
	if exists(cgroupRoot+"/system.slice") || exists(cgroupRoot+"/machine.slice") || exists(cgroupRoot+"/init") {
		t.Error("the host's cgroups are visible: the container's cgroup2 mount is not its own")
	}
	procs := strings.Fields(readFile(t, cgroupRoot+"/cgroup.procs"))
	if len(procs) < 3 || !contains(procs, strconv.Itoa(os.Getpid())) {
		t.Errorf("the namespace root holds %v; want this test, the container's init and its sleep", procs)
	}
	if c := strings.Fields(readFile(t, cgroupRoot+"/cgroup.controllers")); strings.Join(c, " ") != "cpu io memory pids" {
		t.Errorf("controllers %v, want those of a systemd slice: cpu io memory pids", c)
	}
	if sc := strings.TrimSpace(readFile(t, cgroupRoot+"/cgroup.subtree_control")); sc != "" {
		t.Errorf("subtree_control %q, want none enabled (a test before this one left it changed)", sc)
	}

	var mnt string
	for _, l := range strings.Split(readFile(t, "/proc/self/mountinfo"), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == cgroupRoot && strings.Contains(l, " - cgroup2 ") {
			mnt = l
		}
	}
	f := strings.Fields(mnt)
	if len(f) < 6 || f[3] != "/" {
		t.Fatalf("cgroup2 mount %q: want one whose root is the namespace's /", mnt)
	}
	ro := contains(strings.Split(f[5], ","), "ro")
	if want := s == vmtest.ContainerUnprivileged; ro != want {
		t.Errorf("cgroup2 mount options %s: read-only %v, want %v", f[5], ro, want)
	}
	if !strings.Contains(mnt, "nsdelegate") {
		t.Errorf("cgroup2 mount %q lacks nsdelegate, which a systemd host sets", mnt)
	}
	if err := os.Mkdir(cgroupRoot+"/"+prefix+"probe", 0o755); err == nil {
		os.Remove(cgroupRoot + "/" + prefix + "probe")
		if s == vmtest.ContainerUnprivileged {
			t.Error("mkdir in the read-only cgroup2 mount succeeded")
		}
	} else if s == vmtest.ContainerPrivileged {
		t.Errorf("mkdir in the writable cgroup2 mount: %v", err)
	} else if !errors.Is(err, syscall.EROFS) {
		t.Errorf("mkdir in the read-only cgroup2 mount: %v, want EROFS", err)
	}

	// clone3 with a size below its smallest struct is EINVAL from the
	// kernel; the seccomp filter answers before the kernel looks.
	if _, _, errno := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0); errno != unix.ENOSYS {
		t.Errorf("clone3: %v, want ENOSYS from the seccomp filter", errno)
	}

	eff, bnd, inh := procStatusHex(t, "CapEff"), procStatusHex(t, "CapBnd"), procStatusHex(t, "CapInh")
	if s == vmtest.ContainerUnprivileged {
		if eff != dockerCapMask || bnd != dockerCapMask || inh != 0 {
			t.Errorf("CapEff %x CapBnd %x CapInh %x, want Docker's %x, %x and 0", eff, bnd, inh, dockerCapMask, dockerCapMask)
		}
		if !exists("/.dockerenv") {
			t.Error("no /.dockerenv")
		}
	} else {
		if eff&(1<<unix.CAP_SYS_ADMIN) == 0 {
			t.Errorf("CapEff %x lacks CAP_SYS_ADMIN in the privileged container", eff)
		}
		if env := readFile(t, "/run/.containerenv"); !strings.Contains(env, `id="`+vmtest.ContainerID+`"`) {
			t.Errorf("/run/.containerenv %q does not name the container", env)
		}
	}
}
