package cli

import (
	"math"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestDescribeLimits: the Limits line shows each file of the record as it
// was read back, exact where a size would round, and no control character
// from a file.
func TestDescribeLimits(t *testing.T) {
	one, three := int64(1), int64(3)
	cases := []struct {
		l    *specs.LinuxResources
		want string
	}{
		{nil, "none"},
		{&specs.LinuxResources{}, "none"},
		{&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(256<<20 + 4096)), Swap: ptr(int64(-1)), Reservation: ptr(int64(1 << 20))}},
			"memory+swap max, memory.low 1.0 MiB, memory.max 256.0 MiB (268439552 bytes)"},
		{&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(-1)), Period: ptr(uint64(200000)), Burst: ptr(uint64(1000)), Idle: ptr(int64(1)), Cpus: "0-1", Mems: "0"}},
			"cpu.idle 1, cpu.max max 200000, cpu.max.burst 1000 µs, cpuset.cpus 0-1, cpuset.mems 0"},
		{&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(-1))}}, "pids.max max"},
		{&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8}, Rate: 600}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8}, Rate: 3}},
		}}, "io.max 8:0 rbps=600 wiops=3"},
		{&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}, {Pagesize: "1GB", Limit: math.MaxUint64}}},
			"hugetlb.1GB.max max, hugetlb.2MB.max 4.0 MiB"},
		{&specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx4_0": {HcaHandles: ptr(uint32(2))}}}, "rdma.max mlx4_0 hca_handle=2 hca_object=max"},
		{&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "a", Access: "rwm"}, {Type: "c", Major: &one, Minor: &three, Access: "rwm"}}},
			"devices [allow a *:* rwm, deny c 1:3 rwm]"},
		{&specs.LinuxResources{Unified: map[string]string{"io.weight": "default 100\n8:0 50", "memory.high": "max\x1b[2J"}},
			`io.weight default 100, 8:0 50, memory.high "max\x1b[2J"`},
	}
	for _, c := range cases {
		if got := describeLimits(c.l); got != c.want {
			t.Errorf("describeLimits(%+v)\n got %q\nwant %q", c.l, got, c.want)
		}
	}
}
