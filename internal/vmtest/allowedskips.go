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
		"TestUserCannotEscape":                  whyNotRoot,
		"TestUserDiesWithMonitor":               whyNotRoot,
	},
	"hybrid": withV2Controllers(whyHybridNoControllers, map[string]string{
		"TestVMSystemdRootless": whySystemdOnly,
	}),
	"none": withV2Controllers(whyNoCgroupFS, map[string]string{
		"TestVMSystemdRootless":                      whySystemdOnly,
		"TestAttachCgroup":                           whyNoCgroupFS + ": no cgroup to attach to",
		"TestGatedStart":                             whyNoCgroupFS + ": no cgroup to start a command in",
		"TestRlimitsInForceAtFirstInstruction/gated": whyNoCgroupFS + ": no cgroup to start a command in",
		"TestEndedCgroupIsRemoved/next_tick":         whyNoCgroupFS + ": executions get no cgroup to remove",
		"TestEndedCgroupIsRemoved/close":             whyNoCgroupFS + ": executions get no cgroup to remove",
		"TestSharedRootRemovedByAnotherMonitor":      whyNoCgroupFS + ": there is no shared root",
		"TestPendingCgroupsAreBounded":               whyNoCgroupFS + ": executions get no cgroup to remove",
		"TestPSIWait":                                whyNoCgroupFS + ": pressure stall information is kept per cgroup",
		"TestUserCannotEscape":                       whyNoCgroupFS + ": there is no cgroup to escape from",
		"TestUserDiesWithMonitor":                    whyNoCgroupFS + ": no leaf is left to reap",
	}),
	SystemdRootless: withV2Controllers(
		"cgroupmon's fullV2 runs these only in the busybox pure-v2 scenarios, though runner's scope has cpu, memory and pids (not io)",
		map[string]string{
			"TestSharedRootRemovedByAnotherMonitor": whyOwnDelegatedCgroup,
			"TestUserCannotEscape":                  whyNotRoot,
			"TestUserDiesWithMonitor":               whyNotRoot,
		}),
}

// Reasons shared by several entries.
const (
	whySystemdOnly         = "cgmon's own Delegate=yes scope from a user manager needs systemd: tested in systemd-rootless"
	whyOwnDelegatedCgroup  = "cgmon's own cgroup is delegated and holds only it, so it nests executions beside itself and makes no shared root that another monitor could remove"
	whyHybridNoControllers = "the cgroup2 tree of a hybrid host has no controllers (v1 holds them): no memory.peak, memory.max, pids.max or cpu.max"
	whyNoCgroupFS          = "no cgroup filesystem is mounted"
	whyNotRoot             = "the tests run as an unprivileged user, who cannot switch users: TestUser checks the refusal there"
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
	"TestVMMemoryMakeup",
}

// withV2Controllers returns m with every test of v2ControllerTests allowed
// to skip for why.
func withV2Controllers(why string, m map[string]string) map[string]string {
	for _, t := range v2ControllerTests {
		m[t] = why
	}
	return m
}

// moreSkips are the skips of the tests issues 11 to 13 added (ownership and
// reaping, limits, containers), from a full run of every scenario on
// 2026-12-02; each reason is the test's own skip message, which names
// where it runs instead. init merges them into AllowedSkips.
var moreSkips = map[string]map[string]string{
	"v2-6.1": {
		"TestVMInsideContainer": "runs inside the VM's containers (make vmtest, scenarios container-unprivileged and container-privileged); scenario \"v2-6.1\"",
		"TestVMMoveOthersCLI":   "--move-others inside the privileged container: runs in make vmtest, scenario container-privileged; scenario \"v2-6.1\"",
	},
	"v2-5.10": {
		"TestVMInsideContainer": "runs inside the VM's containers (make vmtest, scenarios container-unprivileged and container-privileged); scenario \"v2-5.10\"",
		"TestVMMoveOthersCLI":   "--move-others inside the privileged container: runs in make vmtest, scenario container-privileged; scenario \"v2-5.10\"",
	},
	"v2-rootless": {
		"TestLiveLeafIsNotReaped/other_pid_namespace": "a new pid namespace needs root (CAP_SYS_ADMIN)",
		"TestForkBombIsContained":                     "becoming nobody needs root",
		"TestVMInsideContainer":                       "runs inside the VM's containers (make vmtest, scenarios container-unprivileged and container-privileged); scenario \"v2-rootless\"",
		"TestVMLimitsOfEveryController":               "enabling controllers at the cgroup root needs root; scenario v2-rootless runs the tests as a user",
		"TestVMDeviceRulesMemlock":                    "device rules need root; scenario v2-rootless runs the tests as a user",
		"TestVMOperatorSharedRootSurvives":            "needs the shared root of a pure cgroup v2 host as root (make vmtest); scenario \"v2-rootless\"",
		"TestReaperReapsZombiesOfCgroup":              "no writable cgroup v2 here: mkdir /sys/fs/cgroup/cgmon-proctree-test-1978: permission denied",
		"TestVMMoveOthersCLI":                         "--move-others inside the privileged container: runs in make vmtest, scenario container-privileged; scenario \"v2-rootless\"",
		"TestVMWatchContainerByPrefix":                "needs a writable cgroup v2 tree as root (make vmtest: v2-6.1, v2-5.10, hybrid, container-privileged); scenario \"v2-rootless\"",
		"TestVMRemediesWork":                          "no remedy of this scenario can be followed in the guest",
	},
	"hybrid": {
		"TestVMInsideContainer":            "runs inside the VM's containers (make vmtest, scenarios container-unprivileged and container-privileged); scenario \"hybrid\"",
		"TestVMLimitsEveryField":           "needs a cgroup v2 host with controllers (make vmtest); scenario \"hybrid\"",
		"TestVMLimitValueTheKernelRejects": "needs a cgroup v2 host with controllers (make vmtest); scenario \"hybrid\"",
		"TestVMLimitsOfEveryController":    "needs a cgroup v2 host with controllers (make vmtest); scenario \"hybrid\"",
		"TestVMDeviceRulesMemlock":         "needs a cgroup v2 host with controllers (make vmtest); scenario \"hybrid\"",
		"TestVMOperatorSharedRootSurvives": "needs the shared root of a pure cgroup v2 host as root (make vmtest); scenario \"hybrid\"",
		"TestVMMoveOthersCLI":              "--move-others inside the privileged container: runs in make vmtest, scenario container-privileged; scenario \"hybrid\"",
	},
	"none": {
		"TestMonitorDeathIsReaped":                    "needs a cgroup v2 hierarchy: no cgroup v2 filesystem is mounted",
		"TestReap":                                    "needs a cgroup v2 hierarchy: no cgroup v2 filesystem is mounted",
		"TestLiveLeafIsNotReaped/same_process":        "needs a cgroup v2 hierarchy: no cgroup v2 filesystem is mounted",
		"TestLiveLeafIsNotReaped/other_pid_namespace": "needs a cgroup v2 hierarchy: no cgroup v2 filesystem is mounted",
		"TestReapersTakeEachLeafOnce":                 "needs a cgroup v2 hierarchy: no cgroup v2 filesystem is mounted",
		"TestOperatorRootSurvives":                    "needs a cgroup v2 hierarchy: no cgroup v2 filesystem is mounted",
		"TestMissingRootIsMade":                       "needs a cgroup v2 hierarchy: no cgroup v2 filesystem is mounted",
		"TestUnremovableLeafIsLeftToReaping":          "needs a cgroup v2 hierarchy: no cgroup v2 filesystem is mounted",
		"TestEscapedProcessesAreKilled":               "needs a cgroup v2 hierarchy: no cgroup v2 filesystem is mounted",
		"TestSubCgroupsAreKilledAndRemoved":           "needs a cgroup v2 hierarchy: no cgroup v2 filesystem is mounted",
		"TestStartFailingAtApplyLeavesNothing":        "no cgroup here: no cgroup v2 filesystem is mounted",
		"TestVMInsideContainer":                       "runs inside the VM's containers (make vmtest, scenarios container-unprivileged and container-privileged); scenario \"none\"",
		"TestVMLimitsEveryField":                      "needs a cgroup v2 host with controllers (make vmtest); scenario \"none\"",
		"TestVMLimitValueTheKernelRejects":            "needs a cgroup v2 host with controllers (make vmtest); scenario \"none\"",
		"TestVMLimitsOfEveryController":               "needs a cgroup v2 host with controllers (make vmtest); scenario \"none\"",
		"TestVMDeviceRulesMemlock":                    "needs a cgroup v2 host with controllers (make vmtest); scenario \"none\"",
		"TestVMOperatorSharedRootSurvives":            "needs the shared root of a pure cgroup v2 host as root (make vmtest); scenario \"none\"",
		"TestVMMarksAndLocks":                         "needs a cgroup v2 hierarchy: no cgroup v2 filesystem is mounted",
		"TestReaperReapsZombiesOfCgroup":              "no cgroup v2 mount here",
		"TestVMMoveOthersCLI":                         "--move-others inside the privileged container: runs in make vmtest, scenario container-privileged; scenario \"none\"",
		"TestVMWatchContainerByPrefix":                "needs a writable cgroup v2 tree as root (make vmtest: v2-6.1, v2-5.10, hybrid, container-privileged); scenario \"none\"",
	},
	ContainerUnprivileged: {
		"TestPSIWait":        "no cgroup for executions here (the cgroup2 mount is read-only), so no cgroup's pressure to read",
		"TestVMMemoryMakeup": "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestAttachCgroup":   "no writable cgroup v2 here to make the workload's cgroup: the cgroup v2 mount /sys/fs/cgroup is read-only",
		"TestGatedStart":     "no writable cgroup v2 here: the cgroup v2 mount /sys/fs/cgroup is read-only",
		"TestRlimitsInForceAtFirstInstruction/gated":  "no writable cgroup v2 here: the cgroup v2 mount /sys/fs/cgroup is read-only",
		"TestMonitorDeathIsReaped":                    "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestReap":                                    "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestLiveLeafIsNotReaped/same_process":        "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestLiveLeafIsNotReaped/other_pid_namespace": "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestReapersTakeEachLeafOnce":                 "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestOperatorRootSurvives":                    "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestMissingRootIsMade":                       "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestUnremovableLeafIsLeftToReaping":          "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestEscapedProcessesAreKilled":               "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestSubCgroupsAreKilledAndRemoved":           "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestStartFailingAtApplyLeavesNothing":        "no cgroup here: the cgroup v2 mount /sys/fs/cgroup is read-only",
		"TestEndedCgroupIsRemoved/next_tick":          "no cgroup v2 root on this host: executions get no cgroup",
		"TestEndedCgroupIsRemoved/close":              "no cgroup v2 root on this host: executions get no cgroup",
		"TestSharedRootRemovedByAnotherMonitor":       "this host gives no shared cgroup root: the cgroup v2 mount /sys/fs/cgroup is read-only",
		"TestPendingCgroupsAreBounded":                "no cgroup v2 root on this host: executions get no cgroup",
		"TestVMSystemdRootless":                       "needs a systemd host and an unprivileged user (make vmtest, scenario systemd-rootless); scenario \"container-unprivileged\"",
		"TestVMLimitsEveryField":                      "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMLimitValueTheKernelRejects":            "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMLimitsOfEveryController":               "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMDeviceRulesMemlock":                    "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMMemoryPeakCatchesShortSpike":           "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMMemoryPeakSampledOn510":                "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMMemoryMaxIsOOM":                        "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMTimeoutIsNotOOM":                       "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMPidsMaxContainsForkBomb":               "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMCPUMaxThrottles":                       "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMQuotaWithoutPeriod":                    "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMDaemonKilledWithExecution":             "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-unprivileged\"",
		"TestVMOperatorSharedRootSurvives":            "needs the shared root of a pure cgroup v2 host as root (make vmtest); scenario \"container-unprivileged\"",
		"TestVMMarksAndLocks":                         "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestReaperReapsZombiesOfCgroup":              "no writable cgroup v2 here: mkdir /sys/fs/cgroup/cgmon-proctree-test-1741: read-only file system",
		"TestVMMoveOthersCLI":                         "--move-others inside the privileged container: runs in make vmtest, scenario container-privileged; scenario \"container-unprivileged\"",
		"TestVMWatchContainerByPrefix":                "needs a writable cgroup v2 tree as root (make vmtest: v2-6.1, v2-5.10, hybrid, container-privileged); scenario \"container-unprivileged\"",
		"TestVMRemediesWork":                          "no remedy of this scenario can be followed in the guest",
		"TestUserCannotEscape":                        "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
		"TestUserDiesWithMonitor":                     "needs a writable cgroup v2 directory: neither /sys/fs/cgroup nor the own cgroup / is writable",
	},
	ContainerPrivileged: {
		"TestVMMemoryMakeup":                "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMSystemdRootless":             "needs a systemd host and an unprivileged user (make vmtest, scenario systemd-rootless); scenario \"container-privileged\"",
		"TestVMLimitsEveryField":            "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMLimitValueTheKernelRejects":  "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMLimitsOfEveryController":     "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMDeviceRulesMemlock":          "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMMemoryPeakCatchesShortSpike": "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMMemoryPeakSampledOn510":      "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMMemoryMaxIsOOM":              "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMTimeoutIsNotOOM":             "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMPidsMaxContainsForkBomb":     "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMCPUMaxThrottles":             "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMQuotaWithoutPeriod":          "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMDaemonKilledWithExecution":   "needs a cgroup v2 host with controllers (make vmtest); scenario \"container-privileged\"",
		"TestVMOperatorSharedRootSurvives":  "needs the shared root of a pure cgroup v2 host as root (make vmtest); scenario \"container-privileged\"",
		"TestVMRemediesWork":                "no remedy of this scenario can be followed in the guest",
	},
	SystemdRootless: {
		"TestLiveLeafIsNotReaped/other_pid_namespace": "a new pid namespace needs root (CAP_SYS_ADMIN)",
		"TestForkBombIsContained":                     "becoming nobody needs root",
		"TestVMInsideContainer":                       "runs inside the VM's containers (make vmtest, scenarios container-unprivileged and container-privileged); scenario \"systemd-rootless\"",
		"TestVMLimitsOfEveryController":               "enabling controllers at the cgroup root needs root; scenario systemd-rootless runs the tests as a user",
		"TestVMDeviceRulesMemlock":                    "device rules need root; scenario systemd-rootless runs the tests as a user",
		"TestVMOperatorSharedRootSurvives":            "needs the shared root of a pure cgroup v2 host as root (make vmtest); scenario \"systemd-rootless\"",
		"TestReaperReapsZombiesOfCgroup":              "no writable cgroup v2 here: mkdir /sys/fs/cgroup/cgmon-proctree-test-1336: permission denied",
		"TestVMMoveOthersCLI":                         "--move-others inside the privileged container: runs in make vmtest, scenario container-privileged; scenario \"systemd-rootless\"",
		"TestVMWatchContainerByPrefix":                "needs a writable cgroup v2 tree as root (make vmtest: v2-6.1, v2-5.10, hybrid, container-privileged); scenario \"systemd-rootless\"",
		"TestVMRemediesWork":                          "no remedy of this scenario can be followed in the guest",
	},
}

func init() {
	for scen, m := range moreSkips {
		if AllowedSkips[scen] == nil {
			AllowedSkips[scen] = map[string]string{}
		}
		for test, why := range m {
			AllowedSkips[scen][test] = why
		}
	}
}
