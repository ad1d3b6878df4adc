package vmtest

import (
	"fmt"
	"strings"
	"time"
)

// Kernel names a Debian kernel: the suite whose linux-image-amd64 is used
// and the kernel version its package must carry.
type Kernel struct {
	// Version is the kernel series the scenario promises, e.g. "6.1".
	Version string
	// Suite is the Debian suite whose current linux-image-amd64 is booted.
	Suite string
}

// The kernels the scenarios boot.
var (
	Kernel61  = Kernel{Version: "6.1", Suite: "bookworm"}  // Debian 12
	Kernel510 = Kernel{Version: "5.10", Suite: "bullseye"} // Debian 11
)

// Scenario is one kind of host booted for the tests. /init sets it up from
// the kernel command line parameter cgmon.scenario; the tests see its name
// in CGMON_VM_SCENARIO.
type Scenario struct {
	Name    string
	Kernel  Kernel
	Cmdline []string // extra kernel parameters
	Doc     string
	// Systemd boots a Debian root filesystem with systemd as the initramfs
	// (see SystemdRootfs) instead of the busybox one with /init.
	Systemd bool
	// MemoryMiB is the guest's memory in MiB; 0 means DefaultMemoryMiB.
	MemoryMiB int
	// BootTimeout is the least time this scenario's boot is given, from qemu
	// start to power-off; a larger -timeout wins.
	BootTimeout time.Duration
}

// DefaultMemoryMiB is the guest memory of a scenario that names none.
const DefaultMemoryMiB = 512

// Memory returns the guest memory of s in MiB.
func (s Scenario) Memory() int {
	if s.MemoryMiB > 0 {
		return s.MemoryMiB
	}
	return DefaultMemoryMiB
}

// Scenarios lists every scenario in the order they boot.
var Scenarios = []Scenario{
	{Name: "v2-6.1", Kernel: Kernel61, Cmdline: []string{"cgroup_no_v1=all"},
		Doc: "pure cgroup v2, every controller enabled at the root, tests as root"},
	{Name: "v2-5.10", Kernel: Kernel510, Cmdline: []string{"cgroup_no_v1=all"},
		Doc: "pure cgroup v2 on 5.10: no memory.peak, pids.peak or cgroup.kill"},
	{Name: "v2-rootless", Kernel: Kernel61, Cmdline: []string{"cgroup_no_v1=all"},
		Doc: "tests as uid 1000 inside /user.slice/delegated, chowned as systemd's Delegate=yes does"},
	{Name: "hybrid", Kernel: Kernel61,
		Doc: "v1 controllers on a tmpfs at /sys/fs/cgroup plus a controller-less cgroup2 at /sys/fs/cgroup/unified"},
	{Name: "none", Kernel: Kernel61,
		Doc: "no cgroup filesystem mounted"},
	{Name: ContainerUnprivileged, Kernel: Kernel61, Cmdline: []string{"cgroup_no_v1=all"},
		Doc: "the tests inside a container as Docker makes one that is not privileged: a private cgroup and mount namespace rooted at /system.slice/docker-<id>.scope, cgroup2 mounted read-only, /.dockerenv, Docker's default capabilities, clone3 answered ENOSYS by seccomp"},
	{Name: ContainerPrivileged, Kernel: Kernel61, Cmdline: []string{"cgroup_no_v1=all"},
		Doc: "the tests inside a container whose cgroup2 mount is writable (Podman's systemd mode; Docker --privileged): a private cgroup and mount namespace rooted at /machine.slice/libpod-<id>.scope holding the container's processes, /run/.containerenv, every capability, clone3 answered ENOSYS by seccomp"},
	// vm-notes: about 2 minutes from start to power-off under emulation with
	// the smoke test only; the full packages add their own minutes.
	{Name: SystemdRootless, Kernel: Kernel61, Systemd: true, MemoryMiB: 1536, BootTimeout: 6 * time.Minute,
		Cmdline: []string{"rdinit=/lib/systemd/systemd", "systemd.unified_cgroup_hierarchy=1"},
		Doc:     "Debian 12 with systemd; tests as the lingering user runner, who has no delegated cgroup until cgmon asks its user manager for a scope"},
}

// DefaultPkgs are the packages whose tests run in every scenario when
// vmtest is given no -pkgs. To add a package, append its directory here
// ("./dir", as `go test` names it): its tests then run in each scenario,
// where they read CGMON_VM_SCENARIO to know what to expect, and each of
// its skips must be allowed for that scenario in AllowedSkips.
var DefaultPkgs = []string{
	"./cgroupmon",
	"./procfallback",
	"./internal/proctree",
	"./cmd/cgmon/internal/cli",
	"./internal/vmtest/guest",
}

// SystemdRootless is the name of the systemd scenario.
const SystemdRootless = "systemd-rootless"

// The container scenarios run the tests inside a container as Docker and
// Podman make one on a cgroup v2 host with systemd: /init (on the host)
// makes the container's cgroup and starts `/init ContainerFlag NAME --
// TEST ARGS...` in it with CLONE_NEWCGROUP|CLONE_NEWNS, which mounts a
// fresh cgroup2, installs the seccomp filter and drops capabilities, then
// becomes `/init ContainerInitFlag`, the container's init, which starts
// one more process of the container (a sleep) and the test binary.
const (
	ContainerUnprivileged = "container-unprivileged"
	ContainerPrivileged   = "container-privileged"
	ContainerFlag         = "-container"
	ContainerInitFlag     = "-container-init"
	// ContainerID is the container's id in both scenarios (64 hex digits,
	// as Docker and Podman make them); its cgroup on the host is
	// ContainerCgroup(scenario).
	ContainerID = "c9e7a1f0d2b34c5e8f6a7b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
)

// ContainerCgroup returns the cgroup of the container of scenario name on
// the host, relative to the cgroup v2 mount, as Docker's and Podman's
// systemd drivers name it; empty for the other scenarios.
func ContainerCgroup(name string) string {
	switch name {
	case ContainerUnprivileged:
		return "system.slice/docker-" + ContainerID + ".scope"
	case ContainerPrivileged:
		return "machine.slice/libpod-" + ContainerID + ".scope"
	}
	return ""
}

// LookupScenario returns the scenario called name.
func LookupScenario(name string) (Scenario, error) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, nil
		}
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q (known: %s)", name, strings.Join(ScenarioNames(), ", "))
}

// ScenarioNames returns the names of all scenarios.
func ScenarioNames() []string {
	var n []string
	for _, s := range Scenarios {
		n = append(n, s.Name)
	}
	return n
}

// Environment variables the guest tests read.
const (
	EnvVM       = "CGMON_VM"          // "1" inside the VM
	EnvScenario = "CGMON_VM_SCENARIO" // the scenario name
)

// Kernel command-line parameters /init reads.
const (
	ParamScenario    = "cgmon.scenario"
	ParamTestTimeout = "cgmon.testtimeout"
	ParamTestRun     = "cgmon.testrun" // -test.run of each test binary, when set
)
