package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

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
	if dec.More() {
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
