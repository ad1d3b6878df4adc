//go:build linux

package cgroupmon

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// FuzzToResources fuzzes the library's side of the OCI limits reader: any
// LinuxResources a caller can decode is either converted to cgroup v2
// resources that hold no value the kernel would take as something else
// (no memory.max of 0 or below -1), or refused with ErrInvalidSpec and a
// message that names the limit; the controllers it needs are named when
// they are missing.
func FuzzToResources(f *testing.F) {
	for _, s := range []string{
		`{"memory": {"limit": 268435456, "swap": 536870912}, "cpu": {"quota": 50000, "period": 100000}, "pids": {"limit": 64}}`,
		`{"memory": {"limit": -1}}`, `{"memory": {"limit": 0}}`, `{"memory": {"limit": -2}}`, `{"memory": {"swap": -1, "limit": 5}}`,
		`{"cpu": {"quota": 1000}}`, `{"cpu": {"period": 0}}`, `{"cpu": {"quota": 0, "period": 1000}}`, `{"cpu": {"quota": -1, "period": 100000}}`,
		`{"cpu": {"shares": 1024, "cpus": "0-1", "mems": "0"}}`, `{"pids": {"limit": 0}}`, `{"pids": {"limit": -1}}`,
		`{"blockIO": {"weight": 5, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]}}`,
		`{"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}`, `{"rdma": {"mlx": {"hcaHandles": 1}}}`,
		`{"devices": [{"allow": false, "access": "rwm"}]}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var l specs.LinuxResources
		if json.Unmarshal(b, &l) != nil {
			return
		}
		r, err := toResources(&l)
		if err != nil {
			if r != nil {
				t.Fatalf("toResources(%s) = %+v with error %v", b, r, err)
			}
			msg := err.Error()
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(msg, "cpu") && !strings.Contains(msg, "memory") && !strings.Contains(msg, "pids") {
				t.Fatalf("toResources(%s): error %q is not an invalid spec naming the limit", b, msg)
			}
			return
		}
		if r == nil {
			t.Fatalf("toResources(%s) = nil, nil", b)
		}
		if r.Memory != nil && r.Memory.Max != nil && *r.Memory.Max <= 0 {
			t.Fatalf("toResources(%s): memory.max %d", b, *r.Memory.Max)
		}
		need := neededControllers(r)
		err = checkControllers(r, nil, "the fuzz root")
		if len(need) == 0 {
			if err != nil {
				t.Fatalf("toResources(%s): no controller needed, but %v", b, err)
			}
			return
		}
		if !errors.Is(err, ErrControllerUnavailable) {
			t.Fatalf("toResources(%s) needs %v, but with none available: %v", b, need, err)
		}
		for _, c := range need {
			if !strings.Contains(err.Error(), c) {
				t.Fatalf("toResources(%s) needs %v; the error %q does not name %s", b, need, err, c)
			}
		}
	})
}
