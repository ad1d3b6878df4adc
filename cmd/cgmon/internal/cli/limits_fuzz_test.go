package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecodeLimits: an OCI LinuxResources object is either read exactly
// (what it says survives a round trip through JSON) or refused with an
// error that says what is wrong with it.
func FuzzDecodeLimits(f *testing.F) {
	for _, s := range []string{
		`{"memory": {"limit": 268435456, "swap": 536870912}, "cpu": {"quota": 50000, "period": 100000}, "pids": {"limit": 64}}`,
		`{"blockIO": {"weight": 100}}`, `{"cpu": {"cpus": "0-1", "mems": "0"}}`, `{}`, `null`, `[]`, `{"memory": {"limit": -1}}`,
		`{"memory": {"limit": 1.5}}`, `{"memory": {"limit": 9223372036854775808}}`, `{"memory": {"limti": 5}}`,
		`{"pids": {"limit": 5}} x`, `{"pids": {"limit": 5}}{}`, ``, `{"devices": [{"allow": false, "access": "rwm"}]}`,
		`{"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}`, `{"unified": {"memory.high": "1G"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeLimits(b, "")
		if err != nil {
			if l != nil {
				t.Fatalf("decodeLimits(%q) = %+v with error %v", b, l, err)
			}
			msg := err.Error()
			// Either it says what was expected, or it names the field
			// at fault: "memory.limit" must be a whole number; unknown
			// field "limti".
			if !strings.Contains(msg, "LinuxResources") && !strings.HasPrefix(msg, `"`) && !strings.HasPrefix(msg, `unknown field "`) {
				t.Fatalf("decodeLimits(%q): error %q does not say what was expected", b, msg)
			}
			return
		}
		if l == nil {
			t.Fatalf("decodeLimits(%q) = nil, nil", b)
		}
		if !json.Valid(b) {
			t.Fatalf("decodeLimits accepted %q, which is not JSON", b)
		}
		// What was read is what the object says: encoded and read again,
		// it encodes the same (empty and absent lists both encode as
		// absent).
		enc, err := json.Marshal(l)
		if err != nil {
			t.Fatalf("decodeLimits(%q) = %+v, which does not encode: %v", b, l, err)
		}
		back, err := decodeLimits(enc, "")
		if err != nil {
			t.Fatalf("decodeLimits(%q) encodes as %s, which reads back as an error: %v", b, enc, err)
		}
		if again, _ := json.Marshal(back); !bytes.Equal(again, enc) {
			t.Fatalf("decodeLimits(%q) encodes as %s, read back and encoded as %s", b, enc, again)
		}
	})
}

// FuzzLimitFlags: run's limit flags (with an optional --limits file) give
// limits that say what the flags asked for, or an error that names the
// flag at fault.
func FuzzLimitFlags(f *testing.F) {
	f.Add([]byte(nil), "256M", 0.5, true, int64(10), true)
	f.Add([]byte(`{"memory": {"limit": 1}}`), "", 0.0, false, int64(0), false)
	f.Add([]byte(`{"cpu": {"shares": 2}}`), "0", 0.0, true, int64(-1), true)
	f.Add([]byte(`not json`), "1.5K", math.Inf(1), true, int64(0), true)
	f.Add([]byte(nil), "-1", 0.001, true, int64(math.MaxInt64), true)
	f.Add([]byte(nil), "8388608T", 0.01, true, int64(1), false)
	f.Add([]byte(nil), "", math.NaN(), true, int64(1), true)
	f.Add([]byte(nil), "", 21474.83648, true, int64(1), true)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, file []byte, mem string, cpus float64, cpusSet bool, pids int64, pidsSet bool) {
		fl := limitFlags{MemoryMax: mem, CPUs: cpus, cpusSet: cpusSet, PidsMax: pids, pidsSet: pidsSet}
		if file != nil {
			fl.File = filepath.Join(dir, "limits.json")
			if err := os.WriteFile(fl.File, file, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l, err := fl.build()
		if err != nil {
			if l != nil {
				t.Fatalf("%+v: limits %+v with error %v", fl, l, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "--limits") && !strings.Contains(msg, "--memory-max") &&
				!strings.Contains(msg, "--cpus") && !strings.Contains(msg, "--pids-max") {
				t.Fatalf("%+v: error %q names no flag", fl, msg)
			}
			return
		}
		if file == nil && mem == "" && !cpusSet && !pidsSet {
			if l != nil {
				t.Fatalf("no limit given, but limits %+v", l)
			}
			return
		}
		if l == nil {
			t.Fatalf("%+v: no limits and no error", fl)
		}
		if mem != "" {
			want, err := ParseSize(mem)
			if err != nil || l.Memory == nil || l.Memory.Limit == nil || *l.Memory.Limit != want || want <= 0 {
				t.Fatalf("--memory-max %q: limit %+v (ParseSize: %d, %v)", mem, l.Memory, want, err)
			}
		}
		if cpusSet {
			if l.CPU == nil || l.CPU.Quota == nil || l.CPU.Period == nil || *l.CPU.Period != cpuPeriod ||
				*l.CPU.Quota < minCPUQuota || *l.CPU.Quota > math.MaxInt32 ||
				math.Abs(float64(*l.CPU.Quota)-cpus*cpuPeriod) > 0.5 {
				t.Fatalf("--cpus %v: cpu %+v", cpus, l.CPU)
			}
		}
		if pidsSet {
			if l.Pids == nil || l.Pids.Limit == nil || *l.Pids.Limit != pids || pids < 1 {
				t.Fatalf("--pids-max %d: pids %+v", pids, l.Pids)
			}
		}
	})
}
