package cgroupmon

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Device rules on cgroup v2 are an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup (BPF_CGROUP_DEVICE):
// there is no file to write and none to read back. cgmon generates, loads,
// attaches and owns that program itself, and refuses the rules when it
// cannot. containerd's cgroup2 package is not used for it: its setDevices
// ignores a failure to attach when every rule is a deny and leaves the
// program's descriptor to a finalizer, and its generator lets an access
// that asks for several permissions through a rule that grants only one
// (an open for reading and writing through an "r" rule).
//
// The rules mean what they mean to runc: they are applied in order to a
// cgroup in which every device starts denied; each rule allows or denies,
// on the devices it matches (type a = every device; major or minor unset
// or -1 = any), the accesses it names (r read, w write, m mknod), and a
// later rule overrides an earlier one for those accesses. An access that
// asks for several permissions at once is allowed only when each one is.
// The attach uses BPF_F_ALLOW_MULTI: a program on an ancestor cgroup still
// runs, and an access must pass both.

// maxDeviceRules bounds the rules of one execution, which keeps the
// program small (about 12 instructions per rule).
const maxDeviceRules = 256

// deviceProgramLicense is the program's license string; the kernel reads it
// only to allow GPL-only helpers, which the program does not call.
const deviceProgramLicense = "Apache"

// deviceAccess is an access letter of a device rule and its bit in
// struct bpf_cgroup_dev_ctx.
type deviceAccess struct {
	letter byte
	bit    uint32
}

// deviceAccessBits are the accesses in the order "rwm" names them.
var deviceAccessBits = [...]deviceAccess{
	{'r', unix.BPF_DEVCG_ACC_READ},
	{'w', unix.BPF_DEVCG_ACC_WRITE},
	{'m', unix.BPF_DEVCG_ACC_MKNOD},
}

const allDeviceAccess = unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE | unix.BPF_DEVCG_ACC_MKNOD

// deviceRule is an OCI device rule with its defaults made explicit.
type deviceRule struct {
	allow        bool
	typ          byte   // 'a' (every device), 'b' (block) or 'c' (character)
	major, minor int64  // -1: any
	access       uint32 // BPF_DEVCG_ACC_* bits, never 0
}

// parseDeviceRules checks the OCI rules and makes their defaults
// explicit. Rules that mean nothing or that runtimes read differently are
// refused: an empty access (no permission), and a type "a" rule that names
// a device or only some accesses (cgroup v1 and runc reset every rule on
// it, a plain filter would not).
func parseDeviceRules(in []specs.LinuxDeviceCgroup) ([]deviceRule, []error) {
	var errs []error
	bad := func(i int, format string, args ...any) {
		errs = append(errs, &limitError{kind: ErrInvalidSpec, field: fmt.Sprintf("devices[%d]", i), why: fmt.Sprintf(format, args...)})
	}
	if len(in) > maxDeviceRules {
		return nil, []error{&limitError{kind: ErrInvalidSpec, field: "devices", why: fmt.Sprintf("%d rules; at most %d", len(in), maxDeviceRules)}}
	}
	out := make([]deviceRule, 0, len(in))
	for i, d := range in {
		r := deviceRule{allow: d.Allow, major: -1, minor: -1}
		switch d.Type {
		case "", "a":
			r.typ = 'a'
		case "b", "c":
			r.typ = d.Type[0]
		default:
			bad(i, "type %q: want a (every device), b (block) or c (character)", d.Type)
			continue
		}
		ok := true
		for _, n := range []struct {
			name string
			v    *int64
			dst  *int64
		}{{"major", d.Major, &r.major}, {"minor", d.Minor, &r.minor}} {
			switch {
			case n.v == nil || *n.v == -1:
			case *n.v < -1 || *n.v > math.MaxUint32:
				bad(i, "%s %d: want a device number, or -1 for any", n.name, *n.v)
				ok = false
			default:
				*n.dst = *n.v
			}
		}
		if d.Access == "" {
			bad(i, "no access: give r, w and/or m")
			continue
		}
		for j := 0; j < len(d.Access); j++ {
			k := slices.IndexFunc(deviceAccessBits[:], func(a deviceAccess) bool { return a.letter == d.Access[j] })
			if k < 0 {
				bad(i, "access %q: want letters among r, w and m", d.Access)
				ok = false
				break
			}
			r.access |= deviceAccessBits[k].bit
		}
		if ok && r.typ == 'a' && (r.major >= 0 || r.minor >= 0 || r.access != allDeviceAccess) {
			bad(i, "type a stands for every device: cgroup v1 and runc reset all rules on it whatever its numbers and access; give a major, minor or partial access with type b or c")
			ok = false
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, errs
}

// ociDeviceRules turns rules back into OCI form, defaults explicit except
// the numbers: an unset major or minor means any.
func ociDeviceRules(rules []deviceRule) []specs.LinuxDeviceCgroup {
	out := make([]specs.LinuxDeviceCgroup, len(rules))
	for i, r := range rules {
		d := specs.LinuxDeviceCgroup{Allow: r.allow, Type: string(r.typ), Access: accessString(r.access)}
		if r.major >= 0 {
			v := r.major
			d.Major = &v
		}
		if r.minor >= 0 {
			v := r.minor
			d.Minor = &v
		}
		out[i] = d
	}
	return out
}

func accessString(bits uint32) string {
	var b strings.Builder
	for _, a := range deviceAccessBits {
		if bits&a.bit != 0 {
			b.WriteByte(a.letter)
		}
	}
	return b.String()
}

// deviceProgram compiles rules into a BPF_PROG_TYPE_CGROUP_DEVICE program.
// Each access the kernel asks about (read, write, mknod) is decided on its
// own by the last rule that names it and matches the device, or denied
// when none does; the program allows the request only when every access
// it asks for is allowed. The kernel rejects unreachable instructions, so
// nothing after a rule that matches every device is emitted.
func deviceProgram(rules []deviceRule) asm.Instructions {
	// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }:
	// access_type is (access << 16) | type.
	insts := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.Mov.Reg32(asm.R3, asm.R2),
		asm.RSh.Imm32(asm.R3, 16),                // R3: the accesses asked for
		asm.And.Imm32(asm.R2, 0xFFFF),            // R2: the device type
		asm.LoadMem(asm.R4, asm.R1, 4, asm.Word), // R4: major
		asm.LoadMem(asm.R5, asm.R1, 8, asm.Word), // R5: minor
	}
	const allowLabel, denyLabel = "allow", "deny"
	denied := false
	for bi, acc := range deviceAccessBits {
		next := allowLabel
		if bi+1 < len(deviceAccessBits) {
			next = fmt.Sprintf("access%d", bi+1)
		}
		// Skip this access when it is not asked for.
		insts = append(insts,
			asm.Mov.Reg32(asm.R0, asm.R3).WithSymbol(fmt.Sprintf("access%d", bi)),
			asm.And.Imm32(asm.R0, int32(acc.bit)),
			asm.JEq.Imm32(asm.R0, 0, next),
		)
		// The rules naming this access, the last first, up to one that
		// matches every device.
		var which []int
		for i := len(rules) - 1; i >= 0; i-- {
			if rules[i].access&acc.bit == 0 {
				continue
			}
			which = append(which, i)
			if rules[i].typ == 'a' {
				break
			}
		}
		label := func(k int) string {
			if k < len(which) {
				return fmt.Sprintf("access%d-rule%d", bi, which[k])
			}
			return fmt.Sprintf("access%d-default", bi)
		}
		everything := false
		for k, i := range which {
			r := rules[i]
			var block asm.Instructions
			miss := label(k + 1)
			if r.typ != 'a' {
				typ := int32(unix.BPF_DEVCG_DEV_CHAR)
				if r.typ == 'b' {
					typ = unix.BPF_DEVCG_DEV_BLOCK
				}
				block = append(block, asm.JNE.Imm32(asm.R2, typ, miss))
			} else {
				everything = true
			}
			if r.major >= 0 {
				block = append(block, asm.JNE.Imm32(asm.R4, int32(uint32(r.major)), miss))
			}
			if r.minor >= 0 {
				block = append(block, asm.JNE.Imm32(asm.R5, int32(uint32(r.minor)), miss))
			}
			verdict := next
			if !r.allow {
				verdict, denied = denyLabel, true
			}
			block = append(block, asm.Ja.Label(verdict))
			block[0] = block[0].WithSymbol(label(k))
			insts = append(insts, block...)
		}
		if !everything {
			// No rule matched: denied, as in a cgroup that starts with
			// every device denied.
			insts = append(insts, asm.Ja.Label(denyLabel).WithSymbol(label(len(which))))
			denied = true
		}
	}
	insts = append(insts,
		asm.Mov.Imm32(asm.R0, 1).WithSymbol(allowLabel),
		asm.Return(),
	)
	if denied {
		insts = append(insts,
			asm.Mov.Imm32(asm.R0, 0).WithSymbol(denyLabel),
			asm.Return(),
		)
	}
	return insts
}

// devicePlan is the device rules of a limit set, and their program once
// loaded. Whoever holds prog closes it: the plan until the program is
// attached, then the leaf.
type devicePlan struct {
	rules []deviceRule
	prog  *ebpf.Program
}

// loadDevicePlan loads the program of rules. The kernel decides: it needs
// CAP_SYS_ADMIN (or CAP_BPF and CAP_NET_ADMIN) in the initial user
// namespace, and before Linux 5.11 the program counts against
// RLIMIT_MEMLOCK.
func loadDevicePlan(rules []deviceRule) (*devicePlan, error) {
	if err := deviceCapabilities(); err != nil {
		return nil, &limitError{kind: ErrLimitUnsupported, field: "devices", why: err.Error()}
	}
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name:         "cgmon_devices",
		Type:         ebpf.CGroupDevice,
		Instructions: deviceProgram(rules),
		License:      deviceProgramLicense,
	}, ebpf.ProgramOptions{})
	if err != nil {
		why := fmt.Sprintf("loading the device program: %v", err)
		if errors.Is(err, unix.EPERM) {
			why = "the kernel refused to load the device program (operation not permitted): it needs CAP_SYS_ADMIN, or CAP_BPF and CAP_NET_ADMIN, in the initial user namespace"
			var lim unix.Rlimit
			if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim) == nil && lim.Cur != unix.RLIM_INFINITY {
				why += fmt.Sprintf("; before Linux 5.11 a program also counts against RLIMIT_MEMLOCK, %d KiB here (raise it with ulimit -l)", lim.Cur/1024)
			}
			err = unix.EPERM
		}
		return nil, &limitError{kind: ErrLimitUnsupported, field: "devices", why: why, cause: err}
	}
	return &devicePlan{rules: rules, prog: prog}, nil
}

// deviceCapabilities says why this process cannot load a device program,
// nil when its effective capabilities allow it.
func deviceCapabilities() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading this process's capabilities: %w", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(unix.CAP_SYS_ADMIN) || (has(unix.CAP_BPF) && has(unix.CAP_NET_ADMIN)) {
		return nil
	}
	return errors.New("device rules are an eBPF program, which only root can attach (CAP_SYS_ADMIN, or CAP_BPF and CAP_NET_ADMIN); this process has neither")
}

// close closes the program if the plan still holds it.
func (d *devicePlan) close() {
	if d != nil && d.prog != nil {
		d.prog.Close()
		d.prog = nil
	}
}

// attach attaches the program to the cgroup open as dirFD, checks with
// BPF_PROG_QUERY that it is there, and hands it to the caller, who closes
// it once the cgroup is gone. On error the plan still holds it.
func (d *devicePlan) attach(dirFD int) (*ebpf.Program, error) {
	err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target:  dirFD,
		Program: d.prog,
		Attach:  ebpf.AttachCGroupDevice,
		Flags:   unix.BPF_F_ALLOW_MULTI,
	})
	if err != nil {
		return nil, &limitError{kind: ErrLimitUnsupported, field: "devices", why: fmt.Sprintf("attaching the device program: %v", err), cause: err}
	}
	if err := deviceProgramAttached(dirFD, d.prog); err != nil {
		return nil, &limitError{kind: ErrLimitUnsupported, field: "devices", why: err.Error(), cause: err}
	}
	p := d.prog
	d.prog = nil
	return p, nil
}

// deviceProgramAttached reads back, with BPF_PROG_QUERY, that prog is
// attached to the cgroup open as dirFD.
func deviceProgramAttached(dirFD int, prog *ebpf.Program) error {
	info, err := prog.Info()
	if err != nil {
		return fmt.Errorf("reading the device program's id: %w", err)
	}
	id, ok := info.ID()
	if !ok {
		return errors.New("the kernel does not give the device program's id, so its attachment cannot be read back")
	}
	q, err := link.QueryPrograms(link.QueryOptions{Target: dirFD, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return fmt.Errorf("reading back the device programs of the cgroup: %w", err)
	}
	for _, p := range q.Programs {
		if p.ID == id {
			return nil
		}
	}
	return fmt.Errorf("the device program (id %d) is not among the cgroup's programs after attaching it", id)
}
