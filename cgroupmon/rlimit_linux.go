package cgroupmon

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Why rlimits are set with prlimit(2) on a held child, and only then:
// exec.Cmd has no field for them, and the Go runtime resets RLIMIT_NOFILE
// in every child it forks to the value the process started with.
// setrlimit(2) in cgmon itself before the fork would change cgmon's own
// limits (they are per process, not per thread), and a helper that sets
// them and execs the command would add an exec to every start. So a spec
// with Rlimits is started traced (SysProcAttr.Ptrace): the kernel stops
// the child right after its execve, before the program's first
// instruction; the starter thread sets each limit with prlimit(2), reads
// it back, and detaches. A spec without Rlimits takes the untraced start
// it always took, and pays nothing.
//
// What exec itself did with a limit is done with cgmon's own: the kernel
// sized the argument area and placed the stack and the mmap base with
// cgmon's RLIMIT_STACK, and mapped the program under cgmon's RLIMIT_AS
// and RLIMIT_DATA. Every later check (a write, an open, an mmap, the
// stack growing, the CPU time) sees the execution's.

// rlimitResources maps each OCI rlimit type (runtime-spec config.md,
// POSIXRlimit.Type) to its resource number.
var rlimitResources = map[string]int{
	"RLIMIT_AS":         unix.RLIMIT_AS,
	"RLIMIT_CORE":       unix.RLIMIT_CORE,
	"RLIMIT_CPU":        unix.RLIMIT_CPU,
	"RLIMIT_DATA":       unix.RLIMIT_DATA,
	"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
	"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE":       unix.RLIMIT_NICE,
	"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
	"RLIMIT_RSS":        unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK":      unix.RLIMIT_STACK,
}

// CheckRlimits returns the error Start would return for Spec.Rlimits rl,
// nil when Start would set them; nothing is run or created.
func (m *Monitor) CheckRlimits(rl []specs.POSIXRlimit) error {
	return checkRlimits(rl)
}

// checkRlimits refuses rlimits that cgmon cannot set before anything is
// created: an unknown type, a type given twice, a soft limit above the hard
// one (ErrInvalidSpec), or a hard limit above this process's own that it
// lacks CAP_SYS_RESOURCE to raise (ErrLimitUnsupported). Each error names
// the entry as `rlimits[i]` and its type.
func checkRlimits(rl []specs.POSIXRlimit) error {
	for i, l := range rl {
		field := fmt.Sprintf("rlimits[%d] %s", i, l.Type)
		res, ok := rlimitResources[l.Type]
		if !ok {
			names := make([]string, 0, len(rlimitResources))
			for n := range rlimitResources {
				names = append(names, n)
			}
			slices.Sort(names)
			return &limitError{kind: ErrInvalidSpec, field: fmt.Sprintf("rlimits[%d]", i), why: fmt.Sprintf("unknown type %q (want one of %s)", l.Type, strings.Join(names, ", "))}
		}
		if slices.IndexFunc(rl[:i], func(p specs.POSIXRlimit) bool { return p.Type == l.Type }) >= 0 {
			return &limitError{kind: ErrInvalidSpec, field: field, why: "given twice"}
		}
		if l.Soft > l.Hard {
			return &limitError{kind: ErrInvalidSpec, field: field, why: fmt.Sprintf("soft limit %s is above the hard limit %s", rlimitValue(l.Soft), rlimitValue(l.Hard))}
		}
		if res == unix.RLIMIT_NOFILE && l.Hard == RlimitInfinity {
			return &limitError{kind: ErrInvalidSpec, field: field, why: "the kernel refuses an unlimited RLIMIT_NOFILE (its ceiling is fs.nr_open)"}
		}
		if res == unix.RLIMIT_NOFILE {
			if max, err := nrOpen(); err == nil && l.Hard > max {
				return &limitError{kind: ErrInvalidSpec, field: field, why: fmt.Sprintf("hard limit %d is above the kernel's fs.nr_open (%d)", l.Hard, max)}
			}
		}
		var own unix.Rlimit
		if err := unix.Getrlimit(res, &own); err != nil {
			return &limitError{kind: ErrLimitUnsupported, field: field, why: "reading cgmon's own limit", cause: err}
		}
		if l.Hard > own.Max && !hasSysResource() {
			return &limitError{kind: ErrLimitUnsupported, field: field, why: fmt.Sprintf("hard limit %s is above cgmon's own (%s), and only a process with CAP_SYS_RESOURCE may raise it", rlimitValue(l.Hard), rlimitValue(own.Max))}
		}
	}
	return nil
}

// hasSysResource reports whether this process has CAP_SYS_RESOURCE in its
// effective set, which raising a hard limit needs.
func hasSysResource() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_SYS_RESOURCE/32].Effective&(1<<(unix.CAP_SYS_RESOURCE%32)) != 0
}

// nrOpen reads fs.nr_open, the kernel's ceiling for RLIMIT_NOFILE.
func nrOpen() (uint64, error) {
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// setRlimits sets each of rl on process pid with prlimit(2) and reads it
// back; the error names the first limit the kernel refused or did not
// keep.
func setRlimits(pid int, rl []specs.POSIXRlimit) error {
	for _, l := range rl {
		res := rlimitResources[l.Type]
		want := unix.Rlimit{Cur: l.Soft, Max: l.Hard}
		if err := unix.Prlimit(pid, res, &want, nil); err != nil {
			return fmt.Errorf("setting %s on the execution: %w", l.Type, err)
		}
		var got unix.Rlimit
		if err := unix.Prlimit(pid, res, nil, &got); err != nil {
			return fmt.Errorf("reading back %s: %w", l.Type, err)
		}
		if got != want {
			return fmt.Errorf("%s reads back as %s:%s, not %s:%s", l.Type, rlimitValue(got.Cur), rlimitValue(got.Max), rlimitValue(l.Soft), rlimitValue(l.Hard))
		}
	}
	return nil
}

// rlimitValue prints a limit's value: a number, or "unlimited".
func rlimitValue(v uint64) string {
	if v == RlimitInfinity {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// signalReason says why the main process got signal sig, in words, when
// the execution's rlimits explain it: SIGXFSZ from RLIMIT_FSIZE, SIGXCPU
// from RLIMIT_CPU. It returns "" when they do not.
func signalReason(sig syscall.Signal, rl []specs.POSIXRlimit) string {
	var typ string
	switch sig {
	case unix.SIGXFSZ:
		typ = "RLIMIT_FSIZE"
	case unix.SIGXCPU:
		typ = "RLIMIT_CPU"
	default:
		return ""
	}
	i := slices.IndexFunc(rl, func(l specs.POSIXRlimit) bool { return l.Type == typ })
	if i < 0 {
		return ""
	}
	if sig == unix.SIGXFSZ {
		return fmt.Sprintf("the output file limit (RLIMIT_FSIZE %s) was reached: a write would have made a file larger (SIGXFSZ)", byteSize(rl[i].Soft))
	}
	return fmt.Sprintf("the CPU time limit (RLIMIT_CPU %s s) was reached (SIGXCPU)", rlimitValue(rl[i].Soft))
}

// byteSize prints a number of bytes as a whole number of the largest
// binary unit that divides it ("1 MiB", "1536 KiB", "100 bytes").
func byteSize(v uint64) string {
	if v == RlimitInfinity {
		return "unlimited"
	}
	for _, u := range []struct {
		name  string
		shift uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if v != 0 && v%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", v>>u.shift, u.name)
		}
	}
	if v == 1 {
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", v)
}
