//go:build linux

package cgroupmon

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// FuzzPlanLimits fuzzes the library's side of the OCI limits reader: any
// LinuxResources a caller can decode is either planned, as writes to
// controller files only (never a cgroup.* core file, never a counter such
// as memory.peak), or refused with exactly the categories cgmon has
// (ErrInvalidSpec, ErrControllerUnavailable, ErrLimitUnsupported) and no
// plan; on a monitor without a cgroup, nothing is accepted that would
// write a file.
func FuzzPlanLimits(f *testing.F) {
	for _, s := range []string{
		`{"memory": {"limit": 268435456, "swap": 536870912}, "cpu": {"quota": 50000, "period": 100000}, "pids": {"limit": 64}}`,
		`{"memory": {"limit": -1}}`, `{"memory": {"limit": 0}}`, `{"memory": {"limit": -2}}`, `{"memory": {"swap": -1, "limit": 5}}`,
		`{"cpu": {"quota": 1000}}`, `{"cpu": {"period": 0}}`, `{"cpu": {"quota": 0, "period": 1000}}`, `{"cpu": {"quota": -1, "period": 100000}}`,
		`{"cpu": {"shares": 1024, "cpus": "0-1", "mems": "0"}}`, `{"pids": {"limit": 0}}`, `{"pids": {"limit": -1}}`,
		`{"blockIO": {"weight": 5, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]}}`,
		`{"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}`, `{"rdma": {"mlx": {"hcaHandles": 1}}}`,
		`{"unified": {"memory.high": "1G", "cgroup.procs": "1", "memory.peak": "0"}}`, `{"network": {"classID": 1}}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	h := limitFixture(f, leafFiles61, allControllers)
	none := limitHost{noCgroup: "the fuzz host has none"}
	f.Fuzz(func(t *testing.T, b []byte) {
		var l specs.LinuxResources
		if json.Unmarshal(b, &l) != nil || len(l.Devices) > 0 {
			return // device rules load a BPF program: TestDeviceRules*
		}
		for _, host := range []limitHost{h, none} {
			p, err := planLimits(&l, host)
			if err != nil {
				if p != nil {
					t.Fatalf("planLimits(%s) = a plan with error %v", b, err)
				}
				if !errors.Is(err, ErrInvalidSpec) && !errors.Is(err, ErrControllerUnavailable) && !errors.Is(err, ErrLimitUnsupported) {
					t.Fatalf("planLimits(%s): error %q is none of cgmon's refusals", b, err)
				}
				continue
			}
			if host.root == "" && !p.empty() {
				t.Fatalf("planLimits(%s) without a cgroup planned %+v", b, p.writes)
			}
			for _, w := range p.writes {
				if strings.HasPrefix(w.file, "cgroup.") || strings.Contains(w.file, "/") || slices.Contains(notLimits, w.file) {
					t.Fatalf("planLimits(%s) writes %s", b, w.file)
				}
			}
			p.close()
		}
	})
}
