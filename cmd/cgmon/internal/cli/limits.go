package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cpuPeriod is the cpu.max period cgmon writes for --cpus, in microseconds
// (the kernel's default).
const cpuPeriod = 100000

// minCPUQuota is the smallest cpu.max quota the kernel accepts, in
// microseconds.
const minCPUQuota = 1000

// maxLimitsFile caps the size of a --limits file, in bytes.
const maxLimitsFile = 1 << 20

// limitFlags are the limit flags of run as given; zero values mean unset.
type limitFlags struct {
	File      string  // --limits: OCI LinuxResources JSON
	MemoryMax string  // --memory-max SIZE
	CPUs      float64 // --cpus
	cpusSet   bool
	PidsMax   int64 // --pids-max
	pidsSet   bool
}

// parseLimits reads an OCI LinuxResources JSON object, rejecting unknown
// fields so that a misspelt limit is not silently ignored.
func parseLimits(r io.Reader) (*specs.LinuxResources, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxLimitsFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxLimitsFile {
		return nil, fmt.Errorf("larger than %d bytes", maxLimitsFile)
	}
	return decodeLimits(b, "")
}

// decodeLimits decodes an OCI LinuxResources object strictly; prefix is
// where it sits in the user's JSON ("limits" in a batch line), for the
// field names of errors.
func decodeLimits(b []byte, prefix string) (*specs.LinuxResources, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l specs.LinuxResources
	if err := dec.Decode(&l); err != nil {
		if jsonFieldError(err) || prefix != "" {
			return nil, errors.New(jsonError(err, l, prefix))
		}
		return nil, fmt.Errorf("not an OCI LinuxResources object: %s", jsonError(err, l, prefix))
	}
	if trailing(b, dec) {
		return nil, errors.New("trailing data after the LinuxResources object")
	}
	return &l, nil
}

// build returns the limits: the --limits file, then the flags on top. It
// returns nil when no limit was given.
func (f *limitFlags) build() (*specs.LinuxResources, error) {
	var l *specs.LinuxResources
	if f.File != "" {
		fh, err := os.Open(f.File)
		if err != nil {
			return nil, fmt.Errorf("--limits: %w", err)
		}
		l, err = parseLimits(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("--limits %s: %w", f.File, err)
		}
	}
	ensure := func() {
		if l == nil {
			l = &specs.LinuxResources{}
		}
	}
	if f.MemoryMax != "" {
		n, err := ParseSize(f.MemoryMax)
		if err != nil {
			return nil, fmt.Errorf("--memory-max: %w", err)
		}
		if n == 0 {
			return nil, fmt.Errorf("--memory-max: 0 bytes would leave the program no memory")
		}
		ensure()
		if l.Memory == nil {
			l.Memory = &specs.LinuxMemory{}
		}
		l.Memory.Limit = &n
	}
	if f.cpusSet {
		q, err := cpuQuota(f.CPUs)
		if err != nil {
			return nil, err
		}
		ensure()
		if l.CPU == nil {
			l.CPU = &specs.LinuxCPU{}
		}
		p := uint64(cpuPeriod)
		l.CPU.Quota, l.CPU.Period = &q, &p
	}
	if f.pidsSet {
		if f.PidsMax <= 0 {
			return nil, fmt.Errorf("--pids-max %d: must be at least 1", f.PidsMax)
		}
		ensure()
		n := f.PidsMax
		l.Pids = &specs.LinuxPids{Limit: &n}
	}
	return l, nil
}

// cpuQuota converts a number of CPUs to a cpu.max quota for a period of
// cpuPeriod microseconds.
func cpuQuota(cpus float64) (int64, error) {
	if math.IsNaN(cpus) || math.IsInf(cpus, 0) || cpus <= 0 {
		return 0, fmt.Errorf("--cpus %v: must be a positive number of CPUs, e.g. 0.5", cpus)
	}
	q := math.Round(cpus * cpuPeriod)
	if q < minCPUQuota {
		return 0, fmt.Errorf("--cpus %v: below the kernel's minimum of %v CPUs", cpus, float64(minCPUQuota)/cpuPeriod)
	}
	if q > float64(math.MaxInt32) {
		return 0, fmt.Errorf("--cpus %v: too large", cpus)
	}
	return int64(q), nil
}

// describeLimits renders the limits in force (the record's, as read back
// from the cgroup) in cgroup v2 terms, one part per file, sorted; "none"
// when nil.
func describeLimits(l *specs.LinuxResources) string {
	if l == nil {
		return "none"
	}
	var parts []string
	add := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }
	if m := l.Memory; m != nil {
		if m.Limit != nil {
			add("memory.max %s", limitBytes(*m.Limit))
		}
		if m.Reservation != nil {
			add("memory.low %s", limitBytes(*m.Reservation))
		}
		if m.Swap != nil {
			add("memory+swap %s", limitBytes(*m.Swap))
		}
	}
	if c := l.CPU; c != nil {
		if c.Period != nil {
			if c.Quota == nil || *c.Quota < 0 {
				add("cpu.max max %d", *c.Period)
			} else {
				add("cpu.max %d %d (%.2f CPUs)", *c.Quota, *c.Period, float64(*c.Quota)/float64(*c.Period))
			}
		}
		if c.Burst != nil {
			add("cpu.max.burst %d µs", *c.Burst)
		}
		if c.Idle != nil {
			add("cpu.idle %d", *c.Idle)
		}
		if c.Cpus != "" {
			add("cpuset.cpus %s", c.Cpus)
		}
		if c.Mems != "" {
			add("cpuset.mems %s", c.Mems)
		}
	}
	if l.Pids != nil && l.Pids.Limit != nil {
		if *l.Pids.Limit < 0 {
			add("pids.max max")
		} else {
			add("pids.max %d", *l.Pids.Limit)
		}
	}
	if b := l.BlockIO; b != nil {
		devs := map[string][]string{}
		for _, k := range []struct {
			key  string
			list []specs.LinuxThrottleDevice
		}{{"rbps", b.ThrottleReadBpsDevice}, {"wbps", b.ThrottleWriteBpsDevice}, {"riops", b.ThrottleReadIOPSDevice}, {"wiops", b.ThrottleWriteIOPSDevice}} {
			for _, d := range k.list {
				dev := fmt.Sprintf("%d:%d", d.Major, d.Minor)
				devs[dev] = append(devs[dev], fmt.Sprintf("%s=%d", k.key, d.Rate))
			}
		}
		for dev, kv := range devs {
			add("io.max %s %s", dev, strings.Join(kv, " "))
		}
	}
	for _, h := range l.HugepageLimits {
		if h.Limit == math.MaxUint64 {
			add("hugetlb.%s.max max", h.Pagesize)
		} else {
			add("hugetlb.%s.max %s", h.Pagesize, exactSize(h.Limit))
		}
	}
	for dev, r := range l.Rdma {
		v := func(p *uint32) string {
			if p == nil {
				return "max"
			}
			return fmt.Sprint(*p)
		}
		add("rdma.max %s hca_handle=%s hca_object=%s", printable(dev), v(r.HcaHandles), v(r.HcaObjects))
	}
	if len(l.Devices) > 0 {
		rules := make([]string, len(l.Devices))
		for i, d := range l.Devices {
			verb := "deny"
			if d.Allow {
				verb = "allow"
			}
			num := func(p *int64) string {
				if p == nil || *p < 0 {
					return "*"
				}
				return fmt.Sprint(*p)
			}
			rules[i] = fmt.Sprintf("%s %s %s:%s %s", verb, printable(d.Type), num(d.Major), num(d.Minor), printable(d.Access))
		}
		add("devices [%s]", strings.Join(rules, ", "))
	}
	for k, v := range l.Unified {
		add("%s %s", printable(k), printable(strings.ReplaceAll(v, "\n", ", ")))
	}
	if len(parts) == 0 {
		return "none"
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// limitBytes renders a memory limit read back: "max" for -1.
func limitBytes(v int64) string {
	if v < 0 {
		return "max"
	}
	return exactSize(uint64(v))
}

// exactSize is FormatSize, with the bytes too when FormatSize rounds (a
// limit read back is rounded to pages by the kernel, and shown as it is).
func exactSize(b uint64) string {
	s := FormatSize(b)
	if b < 1024 {
		return s
	}
	div, exp := uint64(1024), 0
	for n := b / 1024; n >= 1024 && exp < 4; n /= 1024 {
		div *= 1024
		exp++
	}
	if r := b % div; r*10%div != 0 {
		s += fmt.Sprintf(" (%d bytes)", b)
	}
	return s
}
