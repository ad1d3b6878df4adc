//lint:file-ignore SA1019 the tests set the deprecated memory.kernel to check that it is refused
//lint:file-ignore ST1008 a case's refusal reads as the table writes it: the category, then the message

package cgroupmon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The limit tests of the VM scenarios: every field of LinuxResources,
// applied and read back where the scenario allows it, refused by name
// where it does not (TestLimitsRefusedLeaveNothing covers hybrid and none).

// limitScenario skips outside the scenarios with a delegated cgroup v2
// with controllers, and returns the scenario.
func limitScenario(t *testing.T) string {
	t.Helper()
	switch scenario {
	case "v2-6.1", "v2-5.10", "v2-rootless", "systemd-rootless":
		return scenario
	}
	t.Skipf("needs a cgroup v2 host with controllers (make vmtest); scenario %q", scenario)
	return ""
}

// pages rounds n bytes down to whole pages, as the kernel keeps memory
// limits.
func pages(n int64) int64 {
	p := int64(os.Getpagesize())
	return n / p * p
}

// vmLimitCase is one field in the VM scenarios: refused says, for a
// scenario, the category and a piece of the message of its refusal (nil:
// applied), and check looks at what was read back when it is applied.
type vmLimitCase struct {
	field   string
	l       specs.LinuxResources
	refused func(sc string) (error, string)
	check   func(t *testing.T, rec *specs.LinuxResources)
}

func applied(string) (error, string) { return nil, "" }

func refusedEverywhere(kind error, msg string) func(string) (error, string) {
	return func(string) (error, string) { return kind, msg }
}

// vmLimitCases are the fields on the scenarios' default roots: cpu,
// memory and pids everywhere, io except under systemd (Debian does not
// delegate it to users), and no cpuset, hugetlb, rdma or misc (the guests
// enable only cpu, memory, pids and io; TestVMLimitsOfEveryController makes
// a root with them).
var vmLimitCases = []vmLimitCase{
	{field: "memory.limit", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(100000000)}}, refused: applied,
		check: func(t *testing.T, r *specs.LinuxResources) {
			assert.Equal(t, pages(100000000), *r.Memory.Limit, "memory.max in whole pages, as read back")
		}},
	{field: "memory.reservation", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Reservation: i64(1000000)}}, refused: applied,
		check: func(t *testing.T, r *specs.LinuxResources) { assert.Equal(t, pages(1000000), *r.Memory.Reservation) }},
	{field: "memory.swap", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(32 << 20), Swap: i64(48 << 20)}}, refused: applied,
		check: func(t *testing.T, r *specs.LinuxResources) {
			assert.Equal(t, int64(32<<20), *r.Memory.Limit)
			assert.Equal(t, int64(48<<20), *r.Memory.Swap, "memory.max plus memory.swap.max")
		}},
	{field: "memory.kernel", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Kernel: i64(-1)}}, refused: refusedEverywhere(ErrLimitUnsupported, "kernel-memory")},
	{field: "memory.kernelTCP", l: specs.LinuxResources{Memory: &specs.LinuxMemory{KernelTCP: i64(1 << 20)}}, refused: refusedEverywhere(ErrLimitUnsupported, "TCP")},
	{field: "memory.swappiness", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64(10)}}, refused: refusedEverywhere(ErrLimitUnsupported, "swappiness")},
	{field: "memory.disableOOMKiller", l: specs.LinuxResources{Memory: &specs.LinuxMemory{DisableOOMKiller: boolp(false)}}, refused: refusedEverywhere(ErrLimitUnsupported, "OOM killer")},
	{field: "memory.useHierarchy", l: specs.LinuxResources{Memory: &specs.LinuxMemory{UseHierarchy: boolp(true)}}, refused: refusedEverywhere(ErrLimitUnsupported, "hierarchical")},
	{field: "memory.checkBeforeUpdate", l: specs.LinuxResources{Memory: &specs.LinuxMemory{CheckBeforeUpdate: boolp(true)}}, refused: refusedEverywhere(ErrLimitUnsupported, "never updates")},
	{field: "cpu.shares", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(2048)}}, refused: applied,
		check: func(t *testing.T, r *specs.LinuxResources) {
			assert.Equal(t, map[string]string{"cpu.weight": "174"}, r.Unified, "recorded as the file it became")
			assert.Nil(t, r.CPU)
		}},
	{field: "cpu.quota", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000)}}, refused: applied,
		check: func(t *testing.T, r *specs.LinuxResources) {
			assert.Equal(t, int64(50000), *r.CPU.Quota)
			assert.Equal(t, uint64(100000), *r.CPU.Period, "the kernel's default period")
		}},
	{field: "cpu.period", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(200000)}}, refused: applied,
		check: func(t *testing.T, r *specs.LinuxResources) {
			assert.Equal(t, int64(-1), *r.CPU.Quota, "cpu.max max 200000")
			assert.Equal(t, uint64(200000), *r.CPU.Period)
		}},
	{field: "cpu.burst", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000), Burst: u64(10000)}},
		refused: func(sc string) (error, string) {
			if sc == "v2-5.10" {
				return ErrLimitUnsupported, "5.14"
			}
			return nil, ""
		},
		check: func(t *testing.T, r *specs.LinuxResources) { assert.Equal(t, uint64(10000), *r.CPU.Burst) }},
	{field: "cpu.idle", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: i64(1)}},
		refused: func(sc string) (error, string) {
			if sc == "v2-5.10" {
				return ErrLimitUnsupported, "5.15"
			}
			return nil, ""
		},
		check: func(t *testing.T, r *specs.LinuxResources) { assert.Equal(t, int64(1), *r.CPU.Idle) }},
	{field: "cpu.realtimeRuntime", l: specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: i64(950000)}}, refused: refusedEverywhere(ErrLimitUnsupported, "real-time")},
	{field: "cpu.realtimePeriod", l: specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimePeriod: u64(1000000)}}, refused: refusedEverywhere(ErrLimitUnsupported, "real-time")},
	{field: "cpu.cpus", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0"}}, refused: refusedEverywhere(ErrControllerUnavailable, "cpuset")},
	{field: "cpu.mems", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "0"}}, refused: refusedEverywhere(ErrControllerUnavailable, "cpuset")},
	{field: "pids.limit", l: specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(10)}}, refused: applied,
		check: func(t *testing.T, r *specs.LinuxResources) { assert.Equal(t, int64(10), *r.Pids.Limit) }},
	{field: "blockIO.weight", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(500)}},
		refused: func(sc string) (error, string) {
			if sc == "systemd-rootless" {
				return ErrControllerUnavailable, "io controller"
			}
			return nil, ""
		},
		check: func(t *testing.T, r *specs.LinuxResources) {
			// No BFQ in the guests: io.weight, on its own scale.
			assert.True(t, strings.HasPrefix(r.Unified["io.weight"], "default 4950"), "io.weight as read: %q", r.Unified["io.weight"])
		}},
	{field: "blockIO.leafWeight", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{LeafWeight: u16(500)}}, refused: refusedEverywhere(ErrLimitUnsupported, "leaf weight")},
	// The guests have no block device (every block driver of Debian's
	// kernel is a module, and the initramfs has none): per-device limits
	// are refused naming the device. TestApplyReadsBack applies them on a
	// fixture.
	{field: "blockIO.weightDevice[0].leafWeight", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: dev(8, 1), Weight: u16(100), LeafWeight: u16(10)}}}},
		refused: refusedEverywhere(ErrLimitUnsupported, "leaf weight")},
	{field: "blockIO.weightDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: dev(8, 1), Weight: u16(100)}}}},
		refused: refusedEverywhere(ErrLimitUnsupported, "no block device 8:1")},
	{field: "blockIO.throttleReadBpsDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 1), Rate: 1 << 20}}}},
		refused: refusedEverywhere(ErrLimitUnsupported, "no block device 8:1")},
	{field: "blockIO.throttleWriteBpsDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleWriteBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 1), Rate: 1 << 20}}}},
		refused: refusedEverywhere(ErrLimitUnsupported, "no block device 8:1")},
	{field: "blockIO.throttleReadIOPSDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 1), Rate: 100}}}},
		refused: refusedEverywhere(ErrLimitUnsupported, "no block device 8:1")},
	{field: "blockIO.throttleWriteIOPSDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 1), Rate: 100}}}},
		refused: refusedEverywhere(ErrLimitUnsupported, "no block device 8:1")},
	{field: "hugepageLimits[0]", l: specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}}, refused: refusedEverywhere(ErrControllerUnavailable, "hugetlb")},
	{field: "network", l: specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: u32(1), Priorities: []specs.LinuxInterfacePriority{{Name: "lo", Priority: 1}}}}, refused: refusedEverywhere(ErrLimitUnsupported, "net_cls")},
	{field: `rdma["mlx4_0"]`, l: specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx4_0": {HcaHandles: u32(2), HcaObjects: u32(100)}}}, refused: refusedEverywhere(ErrControllerUnavailable, "rdma")},
	{field: `unified["memory.high"]`, l: specs.LinuxResources{Unified: map[string]string{"memory.high": "100000000", "pids.max": "7", "memory.oom.group": "1"}}, refused: applied,
		check: func(t *testing.T, r *specs.LinuxResources) {
			assert.Equal(t, map[string]string{"memory.high": "99999744", "pids.max": "7", "memory.oom.group": "1"}, r.Unified, "values as read")
		}},
	{field: `unified["cgroup.procs"]`, l: specs.LinuxResources{Unified: map[string]string{"cgroup.procs": "1"}}, refused: refusedEverywhere(ErrLimitUnsupported, "core files")},
	{field: `unified["cpu.stat"]`, l: specs.LinuxResources{Unified: map[string]string{"cpu.stat": "1"}}, refused: refusedEverywhere(ErrLimitUnsupported, "read-only")},
	{field: `unified["cpuset.cpus"]`, l: specs.LinuxResources{Unified: map[string]string{"cpuset.cpus": "0"}}, refused: refusedEverywhere(ErrControllerUnavailable, "cpuset")},
	{field: "devices", l: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}, {Allow: false, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"}}},
		refused: func(sc string) (error, string) {
			if sc == "v2-rootless" || sc == "systemd-rootless" {
				return ErrLimitUnsupported, "only root"
			}
			return nil, ""
		},
		check: func(t *testing.T, r *specs.LinuxResources) {
			require.Len(t, r.Devices, 2)
			assert.Equal(t, "a", r.Devices[0].Type)
		}},
}

// TestVMLimitsEveryField: in each scenario with controllers, every field of
// LinuxResources is applied and read back (memory.max in pages, cpu.max as
// the kernel writes it) or refused by name, with nothing run or left.
func TestVMLimitsEveryField(t *testing.T) {
	sc := limitScenario(t)
	if sc == "v2-6.1" {
		// Every field of the runtime spec is tried here.
		covered := map[string]bool{}
		for _, c := range vmLimitCases {
			for _, f := range setLimitFields(reflect.ValueOf(c.l), "") {
				covered[f] = true
			}
		}
		for _, f := range limitTypeFields(reflect.TypeOf(specs.LinuxResources{}), "") {
			assert.True(t, covered[f], "no VM case sets %s", f)
		}
	}
	m := newMonitor(t, Options{})
	root := m.rootPath()
	require.NotEmpty(t, root, m.probe.RootReason)
	for _, c := range vmLimitCases {
		t.Run(c.field, func(t *testing.T) {
			kind, msg := c.refused(sc)
			marker := filepath.Join(t.TempDir(), "ran")
			before := ownLeaves(t, root)
			ex, err := m.Run(context.Background(), Spec{Command: []string{"/bin/sh", "-c", "touch " + marker}, Limits: &c.l})
			if kind != nil {
				require.ErrorIs(t, err, kind)
				assert.Contains(t, err.Error(), c.field+":")
				assert.Contains(t, err.Error(), msg)
				assert.Equal(t, err.Error(), errorText(m.CheckLimits(&c.l)), "CheckLimits decides as Start does")
				assert.NoFileExists(t, marker)
				assertNoNewLeaves(t, root, before)
				return
			}
			require.NoError(t, err)
			require.NoError(t, m.CheckLimits(&c.l))
			assert.FileExists(t, marker)
			require.NotNil(t, ex.Limits, "the record holds what is in force")
			c.check(t, ex.Limits)
		})
	}
}

// TestVMLimitValueTheKernelRejects: a value only the kernel can judge
// fails the start, naming the field and the kernel's error, and leaves no
// cgroup (CheckLimits cannot know it without writing it).
func TestVMLimitValueTheKernelRejects(t *testing.T) {
	limitScenario(t)
	m := newMonitor(t, Options{})
	l := &specs.LinuxResources{Unified: map[string]string{"memory.high": "lots"}}
	require.NoError(t, m.CheckLimits(l))
	marker := filepath.Join(t.TempDir(), "ran")
	_, err := m.Start(context.Background(), Spec{Command: []string{"/bin/sh", "-c", "touch " + marker}, Limits: l})
	require.ErrorIs(t, err, ErrLimitUnsupported)
	assert.ErrorIs(t, err, unix.EINVAL)
	assert.Contains(t, err.Error(), `unified["memory.high"]: writing "lots" to memory.high`)
	assert.NoFileExists(t, marker)
	assert.Empty(t, ownLeaves(t, m.rootPath()))
}

// TestVMLimitsOfEveryController: as root, a root with every controller the
// kernel has (the guests enable only cpu, memory, pids and io) takes
// cpuset, hugetlb and misc settings, read back as the kernel keeps them,
// and refuses an RDMA device the guest lacks.
func TestVMLimitsOfEveryController(t *testing.T) {
	sc := limitScenario(t)
	if sc != "v2-6.1" && sc != "v2-5.10" {
		t.Skipf("enabling controllers at the cgroup root needs root; scenario %s runs the tests as a user", sc)
	}
	const mount = "/sys/fs/cgroup"
	b, err := os.ReadFile(mount + "/cgroup.subtree_control")
	require.NoError(t, err)
	enabled := strings.Fields(string(b))
	b, err = os.ReadFile(mount + "/cgroup.controllers")
	require.NoError(t, err)
	avail := strings.Fields(string(b))
	var added, want []string
	for _, c := range []string{"cpuset", "hugetlb", "rdma", "misc"} { // misc arrived in Linux 5.13
		if !slices.Contains(avail, c) {
			require.Equal(t, "misc", c, "the guest kernels have cpuset, hugetlb and rdma")
			continue
		}
		want = append(want, c)
		if !slices.Contains(enabled, c) {
			require.NoError(t, os.WriteFile(mount+"/cgroup.subtree_control", []byte("+"+c), 0), "enabling %s", c)
			added = append(added, c)
		}
	}
	root := filepath.Join(mount, "cgmon-limits-test")
	require.NoError(t, os.Mkdir(root, 0o755))
	t.Cleanup(func() {
		assert.NoError(t, unix.Rmdir(root))
		for _, c := range added {
			assert.NoError(t, os.WriteFile(mount+"/cgroup.subtree_control", []byte("-"+c), 0), "disabling %s", c)
		}
	})
	require.NoError(t, os.WriteFile(root+"/cgroup.subtree_control", []byte("+"+strings.Join(want, " +")), 0))
	m := newMonitor(t, Options{CgroupRoot: root}) // closed before the cleanup above
	for _, c := range append(want, "cpu", "memory") {
		require.True(t, m.hasController(c), "%s enabled in %s", c, root)
	}

	var out bytes.Buffer
	ex := mustRun(t, m, Spec{
		Command: []string{"/bin/sh", "-c", "cat /proc/self/status | grep Cpus_allowed_list"},
		Stdout:  &out,
		Limits: &specs.LinuxResources{
			CPU:            &specs.LinuxCPU{Cpus: "1,0", Mems: "0"},
			HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 5 << 20}},
		},
	})
	assert.Equal(t, "0-1", ex.Limits.CPU.Cpus, "cpuset.cpus as the kernel lists it")
	assert.Equal(t, "0", ex.Limits.CPU.Mems)
	assert.Equal(t, []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}, ex.Limits.HugepageLimits, "rounded down to whole huge pages")
	assert.Contains(t, out.String(), "0-1")

	out.Reset()
	ex = mustRun(t, m, Spec{Command: []string{"/bin/sh", "-c", "cat /proc/self/status | grep Cpus_allowed_list"}, Stdout: &out,
		Limits: &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "1"}}})
	assert.Contains(t, out.String(), "Cpus_allowed_list:\t1\n", "the program runs on the CPU it was given")
	assert.Equal(t, "1", ex.Limits.CPU.Cpus)

	before := ownLeaves(t, root)
	_, err = m.Start(context.Background(), Spec{Command: []string{"/bin/true"},
		Limits: &specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx4_0": {HcaHandles: u32(2)}}}})
	require.ErrorIs(t, err, ErrLimitUnsupported)
	assert.Contains(t, err.Error(), `rdma["mlx4_0"]: no RDMA device "mlx4_0"`)
	assertNoNewLeaves(t, root, before)
}

// TestVMDeviceRulesMemlock: before Linux 5.11 a BPF program counts against
// RLIMIT_MEMLOCK, and device rules are refused saying so when it is too
// low; from 5.11 the memory cgroup accounts it and the limit plays no part.
func TestVMDeviceRulesMemlock(t *testing.T) {
	sc := limitScenario(t)
	if sc != "v2-6.1" && sc != "v2-5.10" {
		t.Skipf("device rules need root; scenario %s runs the tests as a user", sc)
	}
	var saved unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_MEMLOCK, &saved))
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: 0, Max: saved.Max}))
	defer func() { require.NoError(t, unix.Setrlimit(unix.RLIMIT_MEMLOCK, &saved)) }()
	m := newMonitor(t, Options{})
	l := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}
	err := m.CheckLimits(l)
	if sc == "v2-5.10" {
		require.ErrorIs(t, err, ErrLimitUnsupported)
		assert.ErrorIs(t, err, unix.EPERM)
		assert.Contains(t, err.Error(), "RLIMIT_MEMLOCK, 0 KiB here")
		return
	}
	assert.NoError(t, err, "Linux 6.1 charges the program to the memory cgroup")
}
