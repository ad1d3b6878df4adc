//lint:file-ignore SA1019 the tests set the deprecated memory.kernel to check that it is refused

package cgroupmon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgmon/cgmon/metrics"
)

// fixtureFile is one interface file of a fixture cgroup: its mode as the
// kernel gives it, and its content.
type fixtureFile struct {
	mode    os.FileMode
	content string
}

// leafFiles61 are the interface files of a leaf on Linux 6.1 with every
// controller enabled, with the kernel's modes (read-only 0444, write-only
// 0200), as far as the limit tests look at them.
var leafFiles61 = map[string]fixtureFile{
	"cgroup.procs": {0o644, ""}, "cgroup.kill": {0o200, ""}, "cgroup.subtree_control": {0o644, ""},
	"cgroup.freeze": {0o644, "0"}, "cgroup.type": {0o644, "domain"}, "cgroup.events": {0o444, "populated 0\nfrozen 0"},
	"cpu.stat": {0o444, "usage_usec 0"}, "cpu.pressure": {0o644, ""}, "cpu.max": {0o644, "max 100000"},
	"cpu.max.burst": {0o644, "0"}, "cpu.weight": {0o644, "100"}, "cpu.idle": {0o644, "0"},
	"cpuset.cpus": {0o644, ""}, "cpuset.mems": {0o644, ""}, "cpuset.cpus.effective": {0o444, "0-1"},
	"memory.max": {0o644, "max"}, "memory.low": {0o644, "0"}, "memory.high": {0o644, "max"},
	"memory.swap.max": {0o644, "max"}, "memory.oom.group": {0o644, "0"}, "memory.current": {0o444, "0"},
	"memory.peak": {0o444, "0"}, "memory.reclaim": {0o200, ""}, "memory.pressure": {0o644, ""},
	"io.max": {0o644, ""}, "io.weight": {0o644, "default 100"}, "io.stat": {0o444, ""},
	"pids.max": {0o644, "max"}, "pids.current": {0o444, "0"},
	"hugetlb.2MB.max": {0o644, "max"}, "hugetlb.2MB.rsvd.max": {0o644, "max"},
	"rdma.max": {0o644, "mlx4_0 hca_handle=max hca_object=max"},
	"misc.max": {0o644, ""},
}

var allControllers = []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}

// writeFixture makes dir a cgroup-like directory holding files.
func writeFixture(t testing.TB, dir string, files map[string]fixtureFile) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, f := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(f.content), 0o600))
		require.NoError(t, os.Chmod(p, f.mode))
	}
}

// limitFixture returns a host whose execution root is a fixture directory
// with files, controllers enabled for its leaves, and a sysfs with the
// whole disks 8:0 and 259:3 and the partition 8:1.
func limitFixture(t testing.TB, files map[string]fixtureFile, controllers []string) limitHost {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	writeFixture(t, root, files)
	sys := filepath.Join(dir, "sys")
	require.NoError(t, os.MkdirAll(filepath.Join(sys, "dev/block/8:0"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(sys, "dev/block/259:3"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(sys, "dev/block/8:1"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(sys, "dev/block/8:1/partition"), []byte("1\n"), 0o644))
	return limitHost{root: root, controllers: controllers, sys: sys}
}

func without(files map[string]fixtureFile, names ...string) map[string]fixtureFile {
	out := map[string]fixtureFile{}
	for k, v := range files {
		if !slices.Contains(names, k) {
			out[k] = v
		}
	}
	return out
}

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }
func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }
func boolp(v bool) *bool   { return &v }
func dev(maj, min int64) specs.LinuxBlockIODevice {
	return specs.LinuxBlockIODevice{Major: maj, Minor: min}
}

// limitCase is one field of LinuxResources on the 6.1 fixture with every
// controller: the writes it plans, or the refusal (its category and a
// piece of its message; the field's name is checked too).
type limitCase struct {
	name   string // the field, as errors name it
	l      specs.LinuxResources
	writes []string // "file=value", in order
	kind   error
	msg    string
}

// limitCases covers every field of LinuxResources (TestLimitCasesCoverEveryField
// holds it to that), applied or refused.
var limitCases = []limitCase{
	{name: "memory.limit", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1000000)}}, writes: []string{"memory.max=1000000"}},
	{name: "memory.limit", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}}, writes: []string{"memory.max=max"}},
	{name: "memory.limit", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(0)}}, kind: ErrInvalidSpec, msg: "no memory"},
	{name: "memory.reservation", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Reservation: i64(1 << 20)}}, writes: []string{"memory.low=1048576"}},
	{name: "memory.swap", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 20), Swap: i64(3 << 20)}}, writes: []string{"memory.max=1048576", "memory.swap.max=2097152"}},
	{name: "memory.swap", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(-1)}}, writes: []string{"memory.swap.max=max"}},
	{name: "memory.swap", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(1 << 20)}}, kind: ErrInvalidSpec, msg: "needs a memory.limit"},
	{name: "memory.swap", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(2 << 20), Swap: i64(1 << 20)}}, kind: ErrInvalidSpec, msg: "below memory.limit"},
	{name: "memory.kernel", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Kernel: i64(-1)}}, kind: ErrLimitUnsupported, msg: "no kernel-memory limit"},
	{name: "memory.kernelTCP", l: specs.LinuxResources{Memory: &specs.LinuxMemory{KernelTCP: i64(1 << 20)}}, kind: ErrLimitUnsupported, msg: "TCP"},
	{name: "memory.swappiness", l: specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64(0)}}, kind: ErrLimitUnsupported, msg: "swappiness"},
	{name: "memory.disableOOMKiller", l: specs.LinuxResources{Memory: &specs.LinuxMemory{DisableOOMKiller: boolp(true)}}, kind: ErrLimitUnsupported, msg: "OOM killer"},
	{name: "memory.useHierarchy", l: specs.LinuxResources{Memory: &specs.LinuxMemory{UseHierarchy: boolp(true)}}, kind: ErrLimitUnsupported, msg: "hierarchical"},
	{name: "memory.checkBeforeUpdate", l: specs.LinuxResources{Memory: &specs.LinuxMemory{CheckBeforeUpdate: boolp(true)}}, kind: ErrLimitUnsupported, msg: "never updates"},
	{name: "cpu.shares", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(1024)}}, writes: []string{"cpu.weight=100"}},
	{name: "cpu.shares", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(0)}}, kind: ErrInvalidSpec, msg: "262144"},
	{name: "cpu.quota", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000)}}, writes: []string{"cpu.max=50000 100000"}},
	{name: "cpu.quota", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(500)}}, kind: ErrInvalidSpec, msg: "minimum"},
	{name: "cpu.quota", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(0)}}, kind: ErrInvalidSpec, msg: "stop the program"},
	{name: "cpu.period", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(200000)}}, writes: []string{"cpu.max=max 200000"}},
	{name: "cpu.period", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000), Period: u64(0)}}, kind: ErrInvalidSpec, msg: "1000 to 1000000"},
	{name: "cpu.burst", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000), Burst: u64(20000)}}, writes: []string{"cpu.max=50000 100000", "cpu.max.burst=20000"}},
	{name: "cpu.burst", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000), Burst: u64(60000)}}, kind: ErrInvalidSpec, msg: "above cpu.quota"},
	{name: "cpu.realtimeRuntime", l: specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: i64(950000)}}, kind: ErrLimitUnsupported, msg: "real-time"},
	{name: "cpu.realtimePeriod", l: specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimePeriod: u64(1000000)}}, kind: ErrLimitUnsupported, msg: "real-time"},
	{name: "cpu.cpus", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0,1"}}, writes: []string{"cpuset.cpus=0,1"}},
	{name: "cpu.cpus", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0\n1"}}, kind: ErrInvalidSpec, msg: "0-3,7"},
	{name: "cpu.mems", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "0"}}, writes: []string{"cpuset.mems=0"}},
	{name: "cpu.idle", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: i64(1)}}, writes: []string{"cpu.idle=1"}},
	{name: "cpu.idle", l: specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: i64(2)}}, kind: ErrInvalidSpec, msg: "0 or 1"},
	{name: "pids.limit", l: specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(64)}}, writes: []string{"pids.max=64"}},
	{name: "pids.limit", l: specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(0)}}, kind: ErrInvalidSpec, msg: "start"},
	{name: "blockIO.weight", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(500)}}, writes: []string{"io.weight=default 4950"}},
	{name: "blockIO.weight", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(5)}}, kind: ErrInvalidSpec, msg: "10 to 1000"},
	{name: "blockIO.leafWeight", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{LeafWeight: u16(500)}}, kind: ErrLimitUnsupported, msg: "leaf weight"},
	{name: "blockIO.weightDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: dev(8, 0), Weight: u16(1000)}}}}, writes: []string{"io.weight=8:0 10000"}},
	{name: "blockIO.weightDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: dev(8, 16), Weight: u16(100)}}}}, kind: ErrLimitUnsupported, msg: "no block device 8:16"},
	{name: "blockIO.weightDevice[0].leafWeight", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: dev(8, 0), LeafWeight: u16(100)}}}}, kind: ErrLimitUnsupported, msg: "leaf weight"},
	{name: "blockIO.throttleReadBpsDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 0), Rate: 600}}}}, writes: []string{"io.max=8:0 rbps=600"}},
	{name: "blockIO.throttleReadBpsDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 1), Rate: 600}}}}, kind: ErrLimitUnsupported, msg: "partition"},
	{name: "blockIO.throttleWriteBpsDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleWriteBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 0), Rate: 0}}}}, kind: ErrInvalidSpec, msg: "rate 0"},
	{name: "blockIO.throttleReadIOPSDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
		ThrottleReadIOPSDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(259, 3), Rate: 300}},
		ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(259, 3), Rate: 200}},
		ThrottleWriteBpsDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(259, 3), Rate: 4096}, {LinuxBlockIODevice: dev(8, 0), Rate: 1}},
	}}, writes: []string{"io.max=259:3 wbps=4096 riops=300 wiops=200", "io.max=8:0 wbps=1"}},
	{name: "blockIO.throttleWriteIOPSDevice[0]", l: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(-1, 0), Rate: 1}}}}, kind: ErrInvalidSpec, msg: "device -1:0"},
	{name: "hugepageLimits[0]", l: specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}}, writes: []string{"hugetlb.2MB.max=4194304", "hugetlb.2MB.rsvd.max=4194304"}},
	{name: "hugepageLimits[0]", l: specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "1GB", Limit: 1 << 30}}}, kind: ErrLimitUnsupported, msg: "hugetlb.1GB.max does not exist"},
	{name: "hugepageLimits[0]", l: specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "../2MB", Limit: 1}}}, kind: ErrInvalidSpec, msg: "page size"},
	{name: "network", l: specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: u32(0x100001)}}, kind: ErrLimitUnsupported, msg: "net_cls"},
	{name: "network", l: specs.LinuxResources{Network: &specs.LinuxNetwork{Priorities: []specs.LinuxInterfacePriority{{Name: "eth0", Priority: 5}}}}, kind: ErrLimitUnsupported, msg: "net_prio"},
	{name: `rdma["mlx4_0"]`, l: specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx4_0": {HcaHandles: u32(2), HcaObjects: u32(2000)}}}, writes: []string{"rdma.max=mlx4_0 hca_handle=2 hca_object=2000"}},
	{name: `rdma["mlx5_1"]`, l: specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx5_1": {HcaHandles: u32(2)}}}, kind: ErrLimitUnsupported, msg: `no RDMA device "mlx5_1"`},
	{name: `rdma["mlx4_0"]`, l: specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx4_0": {}}}, kind: ErrInvalidSpec, msg: "neither"},
	{name: `unified["memory.high"]`, l: specs.LinuxResources{Unified: map[string]string{"memory.high": "1000000"}}, writes: []string{"memory.high=1000000"}},
	{name: `unified["memory.max"]`, l: specs.LinuxResources{Unified: map[string]string{"memory.max": "1000000"}}, writes: []string{"memory.max=1000000"}},
	{name: `unified["memory.max"]`, l: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 20)}, Unified: map[string]string{"memory.max": "1000000"}}, kind: ErrInvalidSpec, msg: "also set by memory.limit"},
	{name: `unified["cgroup.procs"]`, l: specs.LinuxResources{Unified: map[string]string{"cgroup.procs": "1"}}, kind: ErrLimitUnsupported, msg: "core files"},
	{name: `unified["cgroup.kill"]`, l: specs.LinuxResources{Unified: map[string]string{"cgroup.kill": "1"}}, kind: ErrLimitUnsupported, msg: "core files"},
	{name: `unified["cgroup.subtree_control"]`, l: specs.LinuxResources{Unified: map[string]string{"cgroup.subtree_control": "+cpu"}}, kind: ErrLimitUnsupported, msg: "core files"},
	{name: `unified["cgroup.freeze"]`, l: specs.LinuxResources{Unified: map[string]string{"cgroup.freeze": "1"}}, kind: ErrLimitUnsupported, msg: "core files"},
	{name: `unified["cgroup.type"]`, l: specs.LinuxResources{Unified: map[string]string{"cgroup.type": "threaded"}}, kind: ErrLimitUnsupported, msg: "core files"},
	{name: `unified["../memory.max"]`, l: specs.LinuxResources{Unified: map[string]string{"../memory.max": "1"}}, kind: ErrInvalidSpec, msg: "not the name of a file"},
	{name: `unified["memory..max"]`, l: specs.LinuxResources{Unified: map[string]string{"memory..max": "1"}}, kind: ErrInvalidSpec, msg: "not the name of a file"},
	{name: `unified["sub/memory.max"]`, l: specs.LinuxResources{Unified: map[string]string{"sub/memory.max": "1"}}, kind: ErrInvalidSpec, msg: "not the name of a file"},
	{name: `unified["devices.allow"]`, l: specs.LinuxResources{Unified: map[string]string{"devices.allow": "a"}}, kind: ErrLimitUnsupported, msg: "not a setting of a controller"},
	{name: `unified["memory.current"]`, l: specs.LinuxResources{Unified: map[string]string{"memory.current": "0"}}, kind: ErrLimitUnsupported, msg: "read-only"},
	{name: `unified["cpu.stat"]`, l: specs.LinuxResources{Unified: map[string]string{"cpu.stat": "0"}}, kind: ErrLimitUnsupported, msg: "read-only"},
	{name: `unified["memory.reclaim"]`, l: specs.LinuxResources{Unified: map[string]string{"memory.reclaim": "1M"}}, kind: ErrLimitUnsupported, msg: "not a limit"},
	{name: `unified["memory.pressure"]`, l: specs.LinuxResources{Unified: map[string]string{"memory.pressure": "some 150000 1000000"}}, kind: ErrLimitUnsupported, msg: "PSI"},
	{name: `unified["memory.bogus"]`, l: specs.LinuxResources{Unified: map[string]string{"memory.bogus": "1"}}, kind: ErrLimitUnsupported, msg: "does not exist"},
	{name: `unified["pids.max"]`, l: specs.LinuxResources{Unified: map[string]string{"pids.max": "5\n6"}}, kind: ErrInvalidSpec, msg: "more than one line"},
	{name: "devices[0]", l: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "x", Access: "rwm"}}}, kind: ErrInvalidSpec, msg: "want a (every device)"},
	{name: "devices[0]", l: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: i64(1), Minor: i64(3)}}}, kind: ErrInvalidSpec, msg: "no access"},
	{name: "devices[0]", l: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: i64(-2), Access: "r"}}}, kind: ErrInvalidSpec, msg: "major -2"},
	{name: "devices[0]", l: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "b", Minor: i64(1 << 33), Access: "r"}}}, kind: ErrInvalidSpec, msg: "minor 8589934592"},
	{name: "devices[0]", l: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "a", Major: i64(1), Access: "rwm"}}}, kind: ErrInvalidSpec, msg: "type a stands for every device"},
	{name: "devices[1]", l: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}, {Allow: false, Type: "c", Access: "rx"}}}, kind: ErrInvalidSpec, msg: `access "rx"`},
	{name: "devices", l: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{}}, kind: ErrInvalidSpec, msg: "empty list"},
}

// limitTypeFields lists every leaf field of t as setLimitFields names
// them.
func limitTypeFields(t reflect.Type, prefix string) []string {
	switch t.Kind() {
	case reflect.Pointer:
		return limitTypeFields(t.Elem(), prefix)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return limitTypeFields(t.Elem(), prefix+"[]")
		}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Struct {
			return limitTypeFields(t.Elem(), prefix+"{}")
		}
		return []string{prefix + "{}"}
	case reflect.Struct:
		var out []string
		for i := range t.NumField() {
			sf := t.Field(i)
			if sf.Anonymous {
				out = append(out, limitTypeFields(sf.Type, prefix)...)
				continue
			}
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if prefix != "" {
				name = prefix + "." + name
			}
			out = append(out, limitTypeFields(sf.Type, name)...)
		}
		return out
	}
	return []string{prefix}
}

// TestLimitCasesCoverEveryField: planLimits knows every field of the
// runtime spec's LinuxResources (a field added by a newer spec fails here
// until it is decided), and the cases below set each of them.
func TestLimitCasesCoverEveryField(t *testing.T) {
	all := limitTypeFields(reflect.TypeOf(specs.LinuxResources{}), "")
	sort.Strings(all)
	var known []string
	for f := range knownLimitFields {
		known = append(known, f)
	}
	sort.Strings(known)
	assert.Equal(t, all, known, "knownLimitFields must list exactly the fields of LinuxResources")
	covered := map[string]bool{}
	for _, c := range limitCases {
		for _, f := range setLimitFields(reflect.ValueOf(c.l), "") {
			covered[f] = true
		}
	}
	for _, f := range all {
		assert.True(t, covered[f], "no limit case sets %s", f)
	}
}

func TestSetLimitFields(t *testing.T) {
	l := specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: i64(0)},
		BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: dev(8, 0), Weight: u16(10)}}},
		Rdma:    map[string]specs.LinuxRdma{"x": {HcaObjects: u32(1)}},
		Unified: map[string]string{"a": "b"},
		CPU:     &specs.LinuxCPU{},
	}
	got := setLimitFields(reflect.ValueOf(l), "")
	sort.Strings(got)
	assert.Equal(t, []string{"blockIO.weightDevice[].major", "blockIO.weightDevice[].weight", "memory.limit", "rdma{}.hcaObjects", "unified{}"}, got,
		"a pointer to zero is set; a zero minor and an empty cpu object set nothing")
}

// TestPlanLimitsEveryField: each field is planned as the files it writes,
// or refused with its name, its category and why.
func TestPlanLimitsEveryField(t *testing.T) {
	h := limitFixture(t, leafFiles61, allControllers)
	for _, c := range limitCases {
		t.Run(c.name, func(t *testing.T) {
			p, err := planLimits(&c.l, h)
			if c.kind != nil {
				require.Error(t, err)
				assert.ErrorIs(t, err, c.kind)
				for _, other := range []error{ErrInvalidSpec, ErrControllerUnavailable, ErrLimitUnsupported} {
					if other != c.kind {
						assert.NotErrorIs(t, err, other, "one category per refusal")
					}
				}
				assert.Contains(t, err.Error(), c.name+":", "the error names the field")
				assert.Contains(t, err.Error(), c.msg)
				assert.Nil(t, p)
				return
			}
			require.NoError(t, err)
			defer p.close()
			var got []string
			for _, w := range p.writes {
				got = append(got, w.file+"="+w.value)
			}
			assert.Equal(t, c.writes, got)
		})
	}
}

// TestPlanLimitsAllRefusalsAtOnce: every refused field is named in one
// error, which still matches each category.
func TestPlanLimitsAllRefusalsAtOnce(t *testing.T) {
	h := limitFixture(t, leafFiles61, allControllers)
	_, err := planLimits(&specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: i64(0), Kernel: i64(1)},
		Network: &specs.LinuxNetwork{ClassID: u32(1)},
		Unified: map[string]string{"cgroup.procs": "1"},
	}, h)
	require.Error(t, err)
	for _, f := range []string{"memory.limit:", "memory.kernel:", "network:", `unified["cgroup.procs"]:`} {
		assert.Contains(t, err.Error(), f)
	}
	assert.NotContains(t, err.Error(), "\n", "one line")
	assert.ErrorIs(t, err, ErrInvalidSpec)
	assert.ErrorIs(t, err, ErrLimitUnsupported)
}

// TestPlanLimitsFollowsTheLeafFiles: a field is refused where a leaf of the
// root would lack its file: the controller is not enabled for the leaves
// (ErrControllerUnavailable), the kernel lacks the file (5.10: cpu.idle,
// cpu.max.burst), or there is no cgroup at all.
func TestPlanLimitsFollowsTheLeafFiles(t *testing.T) {
	noCPU := limitFixture(t, without(leafFiles61, "cpu.max", "cpu.weight", "cpu.idle", "cpu.max.burst", "cpu.pressure"), []string{"memory", "pids", "io"})
	for _, c := range []struct {
		l     specs.LinuxResources
		field string
		msg   string
	}{
		{specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000)}}, "cpu.quota", "needs the cpu controller"},
		{specs.LinuxResources{Unified: map[string]string{"cpu.max": "50000 100000"}}, `unified["cpu.max"]`, "cpu.max does not exist in the cgroups of"},
		{specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0"}}, "cpu.cpus", "needs the cpuset controller"},
		{specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 0}}}, "hugepageLimits[0]", "needs the hugetlb controller"},
	} {
		_, err := planLimits(&c.l, noCPU)
		require.ErrorIs(t, err, ErrControllerUnavailable, c.field)
		assert.Contains(t, err.Error(), c.field+":")
		assert.Contains(t, err.Error(), c.msg)
	}
	// cpu.stat is a core file every cgroup has: read-only whatever the
	// controllers.
	_, err := planLimits(&specs.LinuxResources{Unified: map[string]string{"cpu.stat": "1"}}, noCPU)
	assert.ErrorIs(t, err, ErrLimitUnsupported)
	assert.Contains(t, err.Error(), "read-only")

	linux510 := limitFixture(t, without(leafFiles61, "cpu.idle", "cpu.max.burst", "memory.peak", "hugetlb.2MB.rsvd.max"), allControllers)
	for _, c := range []struct {
		l     specs.LinuxResources
		field string
		hint  string
	}{
		{specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: i64(1)}}, "cpu.idle", "5.15"},
		{specs.LinuxResources{CPU: &specs.LinuxCPU{Burst: u64(1000)}}, "cpu.burst", "5.14"},
		{specs.LinuxResources{Unified: map[string]string{"cpu.idle": "1"}}, `unified["cpu.idle"]`, "5.15"},
	} {
		_, err := planLimits(&c.l, linux510)
		require.ErrorIs(t, err, ErrLimitUnsupported, c.field)
		assert.Contains(t, err.Error(), c.field+":")
		assert.Contains(t, err.Error(), c.hint)
	}
	p, err := planLimits(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 2 << 20}}}, linux510)
	require.NoError(t, err)
	assert.Len(t, p.writes, 1, "no reservation limit where the kernel has none")

	bfq := limitFixture(t, map[string]fixtureFile{"io.weight": {0o644, "default 100"}, "io.bfq.weight": {0o644, "default 100"}}, []string{"io"})
	p, err = planLimits(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(500)}}, bfq)
	require.NoError(t, err)
	require.Len(t, p.writes, 1)
	assert.Equal(t, "io.bfq.weight=default 500", p.writes[0].file+"="+p.writes[0].value, "BFQ takes the OCI scale as it is")

	none := limitHost{noCgroup: "procfs fallback: not delegated"}
	for _, l := range []specs.LinuxResources{
		{Memory: &specs.LinuxMemory{Limit: i64(1 << 20)}},
		{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}},
		{Unified: map[string]string{"memory.high": "1"}},
	} {
		_, err := planLimits(&l, none)
		require.ErrorIs(t, err, ErrControllerUnavailable)
		assert.Contains(t, err.Error(), "not delegated")
	}
	p, err = planLimits(&specs.LinuxResources{Memory: &specs.LinuxMemory{}}, none)
	require.NoError(t, err, "an empty memory object asks nothing")
	assert.True(t, p.empty())
}

// TestPlanLimitsRefusesUnknownFields: a field planLimits does not know is
// refused by name, not dropped.
func TestPlanLimitsRefusesUnknownFields(t *testing.T) {
	saved := knownLimitFields["memory.limit"]
	delete(knownLimitFields, "memory.limit")
	defer func() { knownLimitFields["memory.limit"] = saved }()
	_, err := planLimits(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 20)}}, limitFixture(t, leafFiles61, allControllers))
	require.ErrorIs(t, err, ErrLimitUnsupported)
	assert.Contains(t, err.Error(), "memory.limit: cgmon does not know this field")
}

// TestApplyReadsBack: apply writes each file and the record is what the
// files hold afterwards, mapped back into the OCI fields (here the fixture
// keeps what was written; the kernel's rounding is checked in the VM).
func TestApplyReadsBack(t *testing.T) {
	h := limitFixture(t, leafFiles61, allControllers)
	l := &specs.LinuxResources{
		Memory:         &specs.LinuxMemory{Limit: i64(1 << 20), Swap: i64(3 << 20), Reservation: i64(4096)},
		CPU:            &specs.LinuxCPU{Shares: u64(2048), Quota: i64(50000), Burst: u64(1000), Cpus: "0", Mems: "0", Idle: i64(0)},
		Pids:           &specs.LinuxPids{Limit: i64(-1)},
		BlockIO:        &specs.LinuxBlockIO{Weight: u16(10), ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 0), Rate: 600}}},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 2 << 20}},
		Rdma:           map[string]specs.LinuxRdma{"mlx4_0": {HcaObjects: u32(7)}},
		Unified:        map[string]string{"memory.high": "max\n", "pids.max": "9"},
	}
	l.Pids = nil // pids.max comes from unified here
	p, err := planLimits(l, h)
	require.NoError(t, err)
	leafDir := filepath.Join(t.TempDir(), "leaf")
	writeFixture(t, leafDir, leafFiles61)
	rec, prog, err := p.apply(leafDir, -1)
	require.NoError(t, err)
	assert.Nil(t, prog)
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(leafDir, f))
		require.NoError(t, err)
		return string(b)
	}
	assert.Equal(t, "1048576", read("memory.max"))
	assert.Equal(t, "2097152", read("memory.swap.max"))
	assert.Equal(t, "50000 100000", read("cpu.max"))
	assert.Equal(t, "8:0 rbps=600", read("io.max"))
	assert.Equal(t, "mlx4_0 hca_object=7", read("rdma.max"))
	assert.Equal(t, "max", read("memory.high"), "the value without its newline, in one write")

	want := &specs.LinuxResources{
		Memory:         &specs.LinuxMemory{Limit: i64(1 << 20), Swap: i64(3 << 20), Reservation: i64(4096)},
		CPU:            &specs.LinuxCPU{Quota: i64(50000), Period: u64(100000), Burst: u64(1000), Cpus: "0", Mems: "0", Idle: i64(0)},
		BlockIO:        &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 0), Rate: 600}}},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 2 << 20}},
		Rdma:           map[string]specs.LinuxRdma{"mlx4_0": {HcaObjects: u32(7)}},
		Unified:        map[string]string{"cpu.weight": "174", "io.weight": "default 1", "memory.high": "max", "pids.max": "9"},
	}
	assert.Equal(t, want, rec)

	// What the files hold is what is recorded, not what was asked.
	require.NoError(t, os.WriteFile(filepath.Join(leafDir, "memory.max"), []byte("1044480\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(leafDir, "cpuset.cpus"), []byte("0-1\n"), 0o644))
	rec, err = p.readBack(leafDir)
	require.NoError(t, err)
	assert.Equal(t, int64(1044480), *rec.Memory.Limit)
	assert.Equal(t, int64(1044480+2097152), *rec.Memory.Swap, "memory plus swap, as read")
	assert.Equal(t, "0-1", rec.CPU.Cpus)
}

// TestCreateLeafRefusedLeavesNothing: a write the leaf refuses (here its
// file is missing) fails the leaf, which is removed.
func TestCreateLeafRefusedLeavesNothing(t *testing.T) {
	h := limitFixture(t, leafFiles61, allControllers)
	p, err := planLimits(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 20)}}, h)
	require.NoError(t, err)
	_, err = createLeaf(h.root, "leaf-1", p, leafCaps{})
	require.ErrorIs(t, err, ErrLimitUnsupported)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "memory.limit: writing \"1048576\" to memory.max")
	assert.NoDirExists(t, filepath.Join(h.root, "leaf-1"))
}

// TestCPUSharesAndIOWeight: the conversions map the ends and the defaults
// of the two scales onto each other, and the weight of cpu.shares never
// falls as the shares rise, nor leaves [1, 10000].
func TestCPUSharesAndIOWeight(t *testing.T) {
	for shares, weight := range map[uint64]uint64{1: 1, 2: 1, 1024: 100, 262144: 10000, 1 << 20: 10000} {
		assert.Equal(t, weight, cpuShares(shares), "shares %d", shares)
	}
	for shares, prev := uint64(3), uint64(1); shares < 262144; shares += 97 {
		w := cpuShares(shares)
		require.True(t, w >= prev && w <= 10000, "shares %d: weight %d after %d", shares, w, prev)
		prev = w
	}
	for w, want := range map[uint16]uint64{10: 1, 500: 4950, 1000: 10000} {
		assert.Equal(t, want, ioWeight(w), "weight %d", w)
	}
}

func TestParseIOMaxAndRdmaLines(t *testing.T) {
	m, err := parseIOMaxLine("8:0 rbps=1 wbps=max riops=max wiops=2\n8:16 rbps=3 wbps=max riops=max wiops=max", "8:16")
	require.NoError(t, err)
	assert.Equal(t, map[string]uint64{"rbps": 3}, m)
	_, err = parseIOMaxLine("8:0 rbps=1", "8:1")
	assert.Error(t, err)
	_, err = parseIOMaxLine("8:0 rbps", "8:0")
	assert.ErrorIs(t, err, ErrMalformed)
	r, err := parseRdmaLine("mlx4_0 hca_handle=2 hca_object=max\nmlx4_1 hca_handle=max hca_object=3", "mlx4_1")
	require.NoError(t, err)
	assert.Nil(t, r.HcaHandles)
	assert.Equal(t, uint32(3), *r.HcaObjects)
	_, err = parseRdmaLine("mlx4_0 hca_handle=99999999999", "mlx4_0")
	assert.ErrorIs(t, err, ErrMalformed)
}

func FuzzParseIOMaxLine(f *testing.F) {
	f.Add("8:0 rbps=1 wbps=max riops=max wiops=2\n", "8:0")
	f.Add("8:0 rbps", "8:0")
	f.Fuzz(func(t *testing.T, b, device string) {
		m, err := parseIOMaxLine(b, device)
		if err == nil && m == nil {
			t.Fatal("no error and no line")
		}
	})
}

func FuzzParseRdmaLine(f *testing.F) {
	f.Add("mlx4_0 hca_handle=2 hca_object=max\n", "mlx4_0")
	f.Fuzz(func(t *testing.T, b, device string) {
		_, _ = parseRdmaLine(b, device)
	})
}

// ownLeaves lists the execution cgroups of this process in dir (other
// processes may share the root), nil when it does not exist.
func ownLeaves(t *testing.T, dir string) []string {
	t.Helper()
	if dir == "" {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	suffix := "-" + strconv.Itoa(os.Getpid()) + "-"
	for _, e := range ents {
		if e.IsDir() && strings.Contains(e.Name(), suffix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// assertNoNewLeaves fails when root holds an execution cgroup of this
// process that before did not list (those of ended runs may go meanwhile:
// the sampler removes them at its next tick).
func assertNoNewLeaves(t *testing.T, root string, before []string) {
	t.Helper()
	for _, l := range ownLeaves(t, root) {
		assert.Contains(t, before, l, "cgroup made although the limits were refused")
	}
}

// TestLimitsRefusedLeaveNothing: on this host (and in every VM scenario),
// fields cgmon cannot apply here are refused by Start with the field
// named, before anything runs, and leave no cgroup and no descriptor;
// CheckLimits says the same. On a hybrid host (no controllers) that is
// every field but device rules.
func TestLimitsRefusedLeaveNothing(t *testing.T) {
	m := newMonitor(t, Options{})
	root := m.rootPath()
	noCgroup := root == ""
	// kind is what a field that needs a controller gets where it is missing.
	type refusal struct {
		l     specs.LinuxResources
		field string
		kind  error
		msg   string
	}
	missing := func(c string) error {
		if m.hasController(c) {
			return nil
		}
		return ErrControllerUnavailable
	}
	cases := []refusal{
		{specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: u32(1)}}, "network", ErrLimitUnsupported, "net_cls"},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{Kernel: i64(-1)}}, "memory.kernel", ErrLimitUnsupported, "kernel-memory"},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(0)}}, "memory.limit", ErrInvalidSpec, "no memory"},
		{specs.LinuxResources{Unified: map[string]string{"cgroup.procs": "1"}}, `unified["cgroup.procs"]`, ErrLimitUnsupported, "core files"},
		{specs.LinuxResources{Unified: map[string]string{"../cgroup.procs": "1"}}, `unified["../cgroup.procs"]`, ErrInvalidSpec, "not the name"},
		{specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(4095, 1048575), Rate: 1}}}},
			"blockIO.throttleReadBpsDevice[0]", ErrLimitUnsupported, "no block device 4095:1048575"},
		{specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Access: "rwx"}}}, "devices[0]", ErrInvalidSpec, "access"},
	}
	if k := missing("memory"); k != nil {
		cases = append(cases, refusal{specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20)}}, "memory.limit", k, "memory controller"})
	}
	if k := missing("cpu"); k != nil {
		cases = append(cases, refusal{specs.LinuxResources{Unified: map[string]string{"cpu.max": "50000 100000"}}, `unified["cpu.max"]`, k, "cpu"},
			refusal{specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000)}}, "cpu.quota", k, "cpu controller"})
	}
	if k := missing("pids"); k != nil {
		cases = append(cases, refusal{specs.LinuxResources{Unified: map[string]string{"pids.max": "5"}}, `unified["pids.max"]`, k, "pids"})
	}
	if k := missing("hugetlb"); k != nil {
		cases = append(cases, refusal{specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 0}}}, "hugepageLimits[0]", k, "hugetlb"})
	}
	if k := missing("rdma"); k != nil {
		cases = append(cases, refusal{specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx4_0": {HcaHandles: u32(1)}}}, `rdma["mlx4_0"]`, k, "rdma"})
	}
	if k := missing("io"); k != nil {
		cases = append(cases, refusal{specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(500)}}, "blockIO.weight", k, "io"})
	}
	allDevices := specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}
	switch {
	case noCgroup:
		cases = append(cases, refusal{allDevices, "devices", ErrControllerUnavailable, "has no cgroup"})
	case deviceCapabilities() != nil:
		cases = append(cases, refusal{allDevices, "devices", ErrLimitUnsupported, "only root"})
	}
	if scenario == "" || scenario == "hybrid" {
		// This host's kind: no controllers, so every field but devices.
		assert.GreaterOrEqual(t, len(cases), 13, "on a hybrid host every controller's field is refused")
	}

	fds := countFDs(t)
	marker := filepath.Join(t.TempDir(), "ran")
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			before := ownLeaves(t, root)
			_, err := m.Start(context.Background(), Spec{Command: []string{"/bin/sh", "-c", "touch " + marker}, Limits: &c.l})
			require.Error(t, err)
			assert.ErrorIs(t, err, c.kind)
			assert.Contains(t, err.Error(), c.field+":", "the error names the field")
			assert.Contains(t, err.Error(), c.msg)
			assert.Equal(t, err.Error(), errorText(m.CheckLimits(&c.l)), "CheckLimits decides as Start does")
			assert.NoFileExists(t, marker, "nothing ran")
			assertNoNewLeaves(t, root, before)
		})
	}
	assert.Equal(t, fds, countFDs(t), "no descriptor left")
}

// errorText is err's message, "" for nil.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// deviceRulesHere says whether this process can apply device rules with
// m; otherwise it checks that they are refused as they must be (no cgroup:
// ErrControllerUnavailable; not root: ErrLimitUnsupported), with nothing
// run or left, and returns false.
func deviceRulesHere(t *testing.T, m *Monitor, l *specs.LinuxResources) bool {
	t.Helper()
	kind, msg := error(nil), ""
	switch {
	case m.rootPath() == "":
		kind, msg = ErrControllerUnavailable, "has no cgroup"
	case deviceCapabilities() != nil:
		kind, msg = ErrLimitUnsupported, "only root can attach"
	default:
		return true
	}
	marker := filepath.Join(t.TempDir(), "ran")
	_, err := m.Start(context.Background(), Spec{Command: []string{"/bin/sh", "-c", "touch " + marker}, Limits: l})
	require.ErrorIs(t, err, kind)
	assert.Contains(t, err.Error(), "devices: ")
	assert.Contains(t, err.Error(), msg)
	assert.NoFileExists(t, marker)
	return false
}

// TestDeviceRulesByBehaviour: device rules have no file to read back, so
// they are checked by what the program inside the cgroup can open: a
// denied device gives EPERM, an allowed one works, and an open for reading
// and writing needs both (containerd's generator lets it through an "r"
// rule). Where device rules cannot be applied, they are refused.
func TestDeviceRulesByBehaviour(t *testing.T) {
	m := newMonitor(t, Options{})
	denyNull := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: true, Access: "rwm"},
		{Allow: false, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},
	}}
	if !deviceRulesHere(t, m, denyNull) {
		return
	}
	var out, errOut bytes.Buffer
	ex := mustRun(t, m, Spec{
		Command: []string{"/bin/sh", "-c", "head -c 3 /dev/zero | wc -c; echo x > /dev/null || exit 3"},
		Limits:  denyNull, Stdout: &out, Stderr: &errOut,
	})
	assert.Equal(t, 3, ex.ExitCode, "writing /dev/null must fail: %s", errOut.String())
	assert.Equal(t, "3", strings.TrimSpace(out.String()), "/dev/zero stays readable")
	assert.Contains(t, errOut.String(), "Operation not permitted")
	assert.Equal(t, ociDeviceRules([]deviceRule{
		{allow: true, typ: 'a', major: -1, minor: -1, access: allDeviceAccess},
		{allow: false, typ: 'c', major: 1, minor: 3, access: allDeviceAccess},
	}), ex.Limits.Devices, "the record lists the rules in force")

	out.Reset()
	errOut.Reset()
	readNullOnly := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "r"}}}
	ex = mustRun(t, m, Spec{
		Command: []string{"/bin/sh", "-c", "cat /dev/null && echo read-ok; exec 3<>/dev/null; echo read-write-ok"},
		Limits:  readNullOnly, Stdout: &out, Stderr: &errOut,
	})
	assert.Equal(t, "read-ok\n", out.String(), "reading is allowed, reading and writing is not: %s", errOut.String())
	assert.NotEqual(t, 0, ex.ExitCode)
	assert.Contains(t, errOut.String(), "Operation not permitted")

	// Without the rules the same command writes /dev/null.
	ex = mustRun(t, m, Spec{Command: []string{"/bin/sh", "-c", "echo x > /dev/null"}})
	assert.Equal(t, 0, ex.ExitCode)
	assert.Nil(t, ex.Limits, "no limits, none recorded")
}

// TestDeviceRulesLeaveNothing: the device program's descriptor is closed
// with its cgroup: many runs with device rules leave no descriptor, cgroup
// or goroutine.
func TestDeviceRulesLeaveNothing(t *testing.T) {
	l := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}, {Allow: false, Type: "b", Access: "m"}}}
	probe := newMonitor(t, Options{})
	if !deviceRulesHere(t, probe, l) {
		return
	}
	runtime.GC()
	fds, goroutines := countFDs(t), countGoroutines()
	m, err := New(Options{Interval: 10 * time.Millisecond})
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 25 {
				ex, err := m.Run(context.Background(), Spec{ID: fmt.Sprintf("dev-%d-%d", i, j), Command: []string{"/bin/true"}, Limits: l})
				if err != nil || ex.Status != metrics.StatusSuccess {
					errs <- fmt.Errorf("run %d/%d: %v %s", i, j, err, ex.Reason)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	root := m.rootPath()
	require.NoError(t, m.Close())
	assertNoLeaves(t, root)
	deadline := time.Now().Add(2 * time.Second)
	for countGoroutines() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	assert.LessOrEqual(t, countGoroutines(), goroutines, "goroutines left")
	assert.Equal(t, fds, countFDs(t), "descriptors left: the device programs'")
}

// TestStartFailingAtApplyLeavesNothing: when a write fails at the start
// (here the root is swapped for a fixture, whose new leaf has no files, as
// when the kernel rejects a value), Start returns the error naming the
// field, the run is not left live (Close used to find it and crash) and no
// cgroup is left.
func TestStartFailingAtApplyLeavesNothing(t *testing.T) {
	m := newMonitor(t, Options{})
	if m.root == nil {
		t.Skipf("no cgroup here: %s", m.probe.RootReason)
	}
	h := limitFixture(t, leafFiles61, allControllers)
	realPath, realControllers := m.root.path, m.root.controllers
	m.root.path, m.root.controllers = h.root, allControllers
	t.Cleanup(func() { m.root.path, m.root.controllers = realPath, realControllers })
	l := &specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}
	require.NoError(t, m.CheckLimits(l))
	_, err := m.Start(context.Background(), Spec{Command: []string{"/bin/true"}, Limits: l})
	require.ErrorIs(t, err, ErrLimitUnsupported)
	assert.Contains(t, err.Error(), `unified["memory.high"]: writing "1" to memory.high`)
	m.mu.Lock()
	assert.Empty(t, m.live, "no live run after a failed start")
	m.mu.Unlock()
	assert.Empty(t, ownLeaves(t, h.root))
}
