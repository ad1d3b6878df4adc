package vmtest

import (
	"fmt"
	"strings"
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
}

// Scenarios lists every scenario in the order they boot.
var Scenarios = []Scenario{
	{"v2-6.1", Kernel61, []string{"cgroup_no_v1=all"},
		"pure cgroup v2, every controller enabled at the root, tests as root"},
	{"v2-5.10", Kernel510, []string{"cgroup_no_v1=all"},
		"pure cgroup v2 on 5.10: no memory.peak, pids.peak or cgroup.kill"},
	{"v2-rootless", Kernel61, []string{"cgroup_no_v1=all"},
		"tests as uid 1000 inside /user.slice/delegated, chowned as systemd's Delegate=yes does"},
	{"hybrid", Kernel61, nil,
		"v1 controllers on a tmpfs at /sys/fs/cgroup plus a controller-less cgroup2 at /sys/fs/cgroup/unified"},
	{"none", Kernel61, nil,
		"no cgroup filesystem mounted"},
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
)
