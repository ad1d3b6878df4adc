package cgroupmon

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultCPUPeriod is the kernel's default cpu.max period, in microseconds.
const defaultCPUPeriod = 100000

// toResources converts OCI limits with containerd's cgroup2.ToResources,
// guarding its known gaps:
//   - a CPU quota without a period is dropped by ToResources; the kernel's
//     default period (100 ms) is used instead;
//   - swap = -1 (unlimited) becomes "-1 - limit" there; it is written as
//     unlimited instead;
//   - a negative memory limit other than -1, or a zero period, is an error.
func toResources(l *specs.LinuxResources) (*cgroup2.Resources, error) {
	if l == nil {
		return &cgroup2.Resources{}, nil
	}
	c := *l // shallow copy: the caller's value is never changed
	if l.CPU != nil {
		cpu := *l.CPU
		if cpu.Quota != nil && cpu.Period == nil {
			p := uint64(defaultCPUPeriod)
			cpu.Period = &p
		}
		if cpu.Period != nil && *cpu.Period == 0 {
			return nil, fmt.Errorf("%w: cpu period 0", ErrInvalidSpec)
		}
		if cpu.Quota != nil && *cpu.Quota == 0 {
			return nil, fmt.Errorf("%w: cpu quota 0 would stop the program", ErrInvalidSpec)
		}
		c.CPU = &cpu
	}
	var unlimitedSwap bool
	if l.Memory != nil {
		mem := *l.Memory
		if mem.Limit != nil && *mem.Limit < -1 {
			return nil, fmt.Errorf("%w: memory limit %d", ErrInvalidSpec, *mem.Limit)
		}
		if mem.Limit != nil && *mem.Limit == 0 {
			return nil, fmt.Errorf("%w: memory limit 0", ErrInvalidSpec)
		}
		if mem.Swap != nil && *mem.Swap == -1 {
			unlimitedSwap = true
			mem.Swap = nil
		}
		c.Memory = &mem
	}
	if l.Pids != nil && l.Pids.Limit != nil && *l.Pids.Limit == 0 {
		return nil, fmt.Errorf("%w: pids limit 0", ErrInvalidSpec)
	}
	r := cgroup2.ToResources(&c)
	if unlimitedSwap {
		v := int64(math.MaxInt64)
		r.Memory.Swap = &v
	}
	if r.Memory != nil && r.Memory.Max != nil && *r.Memory.Max == -1 {
		v := int64(math.MaxInt64) // "max"
		r.Memory.Max = &v
	}
	return r, nil
}

// neededControllers lists the controllers a limit set needs.
func neededControllers(r *cgroup2.Resources) []string {
	if r == nil {
		return nil
	}
	var out []string
	if r.CPU != nil && (r.CPU.Max != "" || r.CPU.Weight != nil) {
		out = append(out, "cpu")
	}
	if r.CPU != nil && (r.CPU.Cpus != "" || r.CPU.Mems != "") {
		out = append(out, "cpuset")
	}
	if r.Memory != nil && len(r.Memory.Values()) > 0 {
		out = append(out, "memory")
	}
	if r.Pids != nil && r.Pids.Max != 0 {
		out = append(out, "pids")
	}
	if r.IO != nil && len(r.IO.Values()) > 0 {
		out = append(out, "io")
	}
	if r.HugeTlb != nil && len(*r.HugeTlb) > 0 {
		out = append(out, "hugetlb")
	}
	if r.RDMA != nil && len(r.RDMA.Limit) > 0 {
		out = append(out, "rdma")
	}
	if len(r.Devices) > 0 {
		out = append(out, "devices")
	}
	return out
}

// checkControllers returns ErrControllerUnavailable naming every limit whose
// controller is not in have.
func checkControllers(r *cgroup2.Resources, have []string, where string) error {
	var missing []string
	for _, c := range neededControllers(r) {
		if c == "devices" {
			missing = append(missing, "devices (device limits are not supported by cgmon)")
			continue
		}
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: limit needs the %s controller, not available in %s", ErrControllerUnavailable, strings.Join(missing, ", "), where)
}
