package vmtest

// AllowedSkips lists, per scenario, the tests that may skip there, each with
// why the skip is right in that scenario. Any other `--- SKIP` fails the
// scenario, naming the test, its package and its skip reason.
//
// A test is named as `go test -v` names it ("TestA", or "TestA/sub" for a
// subtest), whatever its package, so a test moved to another package keeps
// its entries. An entry whose test ran without skipping, or, on a full run,
// did not run at all, is printed as a warning: delete or rename it then.
// The list was made from a full run of every scenario (2026-12-02) and is
// kept by the failures and warnings of later runs.
var AllowedSkips = map[string]map[string]string{
	"v2-6.1": {
		"TestVMSystemdRootless":        whySystemdOnly,
		"TestVMMemoryPeakSampledOn510": "6.1 has memory.peak: the sampled fallback is tested on 5.10",
	},
	"v2-5.10": {
		"TestVMSystemdRootless": whySystemdOnly,
	},
	"v2-rootless": {
		"TestVMSystemdRootless":                 whySystemdOnly,
		"TestVMMemoryPeakSampledOn510":          "6.1 has memory.peak: the sampled fallback is tested on 5.10",
		"TestSharedRootRemovedByAnotherMonitor": whyOwnDelegatedCgroup,
	},
	"hybrid": withV2Controllers(whyHybridNoControllers, map[string]string{
		"TestVMSystemdRootless": whySystemdOnly,
	}),
	"none": withV2Controllers(whyNoCgroupFS, map[string]string{
		"TestVMSystemdRootless":                 whySystemdOnly,
		"TestAttachCgroup":                      whyNoCgroupFS + ": no cgroup to attach to",
		"TestGatedStart":                        whyNoCgroupFS + ": no cgroup to start a command in",
		"TestEndedCgroupIsRemoved/next_tick":    whyNoCgroupFS + ": executions get no cgroup to remove",
		"TestEndedCgroupIsRemoved/close":        whyNoCgroupFS + ": executions get no cgroup to remove",
		"TestSharedRootRemovedByAnotherMonitor": whyNoCgroupFS + ": there is no shared root",
		"TestPendingCgroupsAreBounded":          whyNoCgroupFS + ": executions get no cgroup to remove",
	}),
	SystemdRootless: withV2Controllers(
		"cgroupmon's fullV2 runs these only in the busybox pure-v2 scenarios, though runner's scope has cpu, memory and pids (not io)",
		map[string]string{
			"TestSharedRootRemovedByAnotherMonitor": whyOwnDelegatedCgroup,
		}),
}

// Reasons shared by several entries.
const (
	whySystemdOnly         = "cgmon's own Delegate=yes scope from a user manager needs systemd: tested in systemd-rootless"
	whyOwnDelegatedCgroup  = "cgmon's own cgroup is delegated and holds only it, so it nests executions beside itself and makes no shared root that another monitor could remove"
	whyHybridNoControllers = "the cgroup2 tree of a hybrid host has no controllers (v1 holds them): no memory.peak, memory.max, pids.max or cpu.max"
	whyNoCgroupFS          = "no cgroup filesystem is mounted"
)

// v2ControllerTests are cgroupmon's tests of the cgroup v2 controllers
// (limits, OOM, memory.peak, kill), which need a pure cgroup v2 host with
// controllers.
var v2ControllerTests = []string{
	"TestVMMemoryPeakCatchesShortSpike",
	"TestVMMemoryPeakSampledOn510",
	"TestVMMemoryMaxIsOOM",
	"TestVMTimeoutIsNotOOM",
	"TestVMPidsMaxContainsForkBomb",
	"TestVMCPUMaxThrottles",
	"TestVMQuotaWithoutPeriod",
	"TestVMDaemonKilledWithExecution",
}

// withV2Controllers returns m with every test of v2ControllerTests allowed
// to skip for why.
func withV2Controllers(why string, m map[string]string) map[string]string {
	for _, t := range v2ControllerTests {
		m[t] = why
	}
	return m
}
