package cgroupmon

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cilium/ebpf/asm"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// runDeviceProgram runs the instructions deviceProgram emits on one
// request, as the kernel would: an interpreter of the few instructions it
// uses. It fails the test on any other instruction, on an unresolved
// label and on a jump backwards (the program has no loop).
func runDeviceProgram(t *testing.T, insts asm.Instructions, typ, access, major, minor uint32) bool {
	t.Helper()
	offs, err := insts.SymbolOffsets()
	require.NoError(t, err)
	ok, err := interpretDeviceProgram(insts, offs, typ, access, major, minor)
	require.NoError(t, err)
	return ok
}

func interpretDeviceProgram(insts asm.Instructions, offs map[string]int, typ, access, major, minor uint32) (bool, error) {
	ctx := [3]uint32{access<<16 | typ, major, minor}
	var r [11]uint64
	for pc := 0; pc < len(insts); {
		ins := insts[pc]
		op := ins.OpCode
		bad := func() error { return fmt.Errorf("instruction %d: %v", pc, ins) }
		target := func() (int, error) {
			to, ok := offs[ins.Reference()]
			if !ok || to <= pc {
				return 0, fmt.Errorf("instruction %d: jump to %q (%d)", pc, ins.Reference(), to)
			}
			return to, nil
		}
		switch op.Class() {
		case asm.LdXClass:
			if ins.Src != asm.R1 || op.Size() != asm.Word || ins.Offset < 0 || ins.Offset > 8 || ins.Offset%4 != 0 {
				return false, bad()
			}
			r[ins.Dst] = uint64(ctx[ins.Offset/4])
			pc++
		case asm.ALUClass:
			src := uint32(ins.Constant)
			if op.Source() == asm.RegSource {
				src = uint32(r[ins.Src])
			}
			d := uint32(r[ins.Dst])
			switch op.ALUOp() {
			case asm.Mov:
				d = src
			case asm.And:
				d &= src
			case asm.RSh:
				d >>= src
			default:
				return false, bad()
			}
			r[ins.Dst] = uint64(d)
			pc++
		case asm.Jump32Class:
			if op.Source() != asm.ImmSource {
				return false, bad()
			}
			jump := uint32(r[ins.Dst]) == uint32(ins.Constant)
			switch op.JumpOp() {
			case asm.JEq:
			case asm.JNE:
				jump = !jump
			default:
				return false, bad()
			}
			if !jump {
				pc++
				continue
			}
			var err error
			if pc, err = target(); err != nil {
				return false, err
			}
		case asm.JumpClass:
			switch op.JumpOp() {
			case asm.Ja:
				var err error
				if pc, err = target(); err != nil {
					return false, err
				}
			case asm.Exit:
				if r[0] > 1 {
					return false, fmt.Errorf("returns %d", r[0])
				}
				return r[0] == 1, nil
			default:
				return false, bad()
			}
		default:
			return false, bad()
		}
	}
	return false, fmt.Errorf("ran off the end")
}

// assertAllReachable fails the test when an instruction of insts is on no path.
func assertAllReachable(t *testing.T, insts asm.Instructions) {
	t.Helper()
	offs, err := insts.SymbolOffsets()
	require.NoError(t, err)
	seen := make([]bool, len(insts))
	var walk func(pc int)
	walk = func(pc int) {
		for pc < len(insts) && !seen[pc] {
			seen[pc] = true
			ins := insts[pc]
			switch {
			case ins.OpCode.JumpOp() == asm.Exit && ins.OpCode.Class() == asm.JumpClass:
				return
			case ins.OpCode.JumpOp() == asm.Ja && ins.OpCode.Class() == asm.JumpClass:
				pc = offs[ins.Reference()]
			case ins.OpCode.Class() == asm.Jump32Class:
				walk(offs[ins.Reference()])
				pc++
			default:
				pc++
			}
		}
	}
	walk(0)
	for i, s := range seen {
		assert.True(t, s, "instruction %d (%v) is unreachable", i, insts[i])
	}
}

// allowedByRules is what the rules mean, applied forwards in order to a
// cgroup that starts with every device denied, one access at a time: the
// oracle the program is held to.
func allowedByRules(rules []deviceRule, typ byte, major, minor int64, access uint32) bool {
	for _, a := range deviceAccessBits {
		if access&a.bit == 0 {
			continue
		}
		allowed := false
		for _, r := range rules {
			if r.access&a.bit != 0 && (r.typ == 'a' || r.typ == typ) &&
				(r.major < 0 || r.major == major) && (r.minor < 0 || r.minor == minor) {
				allowed = r.allow
			}
		}
		if !allowed {
			return false
		}
	}
	return true
}

func kernelType(typ byte) uint32 {
	if typ == 'b' {
		return unix.BPF_DEVCG_DEV_BLOCK
	}
	return unix.BPF_DEVCG_DEV_CHAR
}

// randomRules draws up to 8 rules over a few devices.
func randomRules(rng *rand.Rand) []deviceRule {
	rules := make([]deviceRule, rng.IntN(9))
	for i := range rules {
		r := deviceRule{allow: rng.IntN(2) == 0, typ: "abc"[rng.IntN(3)], major: -1, minor: -1, access: allDeviceAccess}
		if r.typ != 'a' {
			r.major = []int64{-1, 1, 2}[rng.IntN(3)]
			r.minor = []int64{-1, 3, 5}[rng.IntN(3)]
			r.access = uint32(1 + rng.IntN(7))
		}
		rules[i] = r
	}
	return rules
}

// TestDeviceProgramMatchesTheRules: on random rule sets and every request
// over their devices, the program allows exactly what the rules, applied in
// order, allow, including requests for several accesses at once (an
// open for reading and writing needs both).
func TestDeviceProgramMatchesTheRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 1000; n++ {
		rules := randomRules(rng)
		insts := deviceProgram(rules)
		assertAllReachable(t, insts)
		offs, err := insts.SymbolOffsets()
		require.NoError(t, err)
		for _, typ := range []byte{'b', 'c'} {
			for _, major := range []int64{1, 2, 7} {
				for _, minor := range []int64{3, 5, 9} {
					for access := uint32(1); access <= allDeviceAccess; access++ {
						want := allowedByRules(rules, typ, major, minor, access)
						got, err := interpretDeviceProgram(insts, offs, kernelType(typ), access, uint32(major), uint32(minor))
						require.NoError(t, err)
						if got != want {
							t.Fatalf("rules %+v, %c %d:%d access %s: program says %v, the rules %v\n%v", rules, typ, major, minor, accessString(access), got, want, insts)
						}
					}
				}
			}
		}
	}
}

// TestDeviceProgramExamples pins what the rules mean on the cases people
// write.
func TestDeviceProgramExamples(t *testing.T) {
	null := func(rules []deviceRule, access uint32) bool {
		return runDeviceProgram(t, deviceProgram(rules), unix.BPF_DEVCG_DEV_CHAR, access, 1, 3)
	}
	r, w := uint32(unix.BPF_DEVCG_ACC_READ), uint32(unix.BPF_DEVCG_ACC_WRITE)
	all := deviceRule{allow: true, typ: 'a', major: -1, minor: -1, access: allDeviceAccess}
	denyNull := deviceRule{allow: false, typ: 'c', major: 1, minor: 3, access: allDeviceAccess}
	readNull := deviceRule{allow: true, typ: 'c', major: 1, minor: 3, access: r}
	assert.False(t, null(nil, r), "no rule: every device denied, as runc has it")
	assert.True(t, null([]deviceRule{all}, r|w))
	assert.False(t, null([]deviceRule{all, denyNull}, r))
	assert.True(t, null([]deviceRule{all, denyNull, all}, r), "a later rule overrides")
	assert.True(t, null([]deviceRule{readNull}, r))
	assert.False(t, null([]deviceRule{readNull}, r|w), "read and write asked at once need both")
	assert.False(t, null([]deviceRule{readNull}, w))
	assert.True(t, null([]deviceRule{readNull, {allow: true, typ: 'c', major: 1, minor: -1, access: w}}, r|w), "each access allowed by its own rule")
}

func TestParseDeviceRules(t *testing.T) {
	one, three := int64(1), int64(3)
	rules, errs := parseDeviceRules([]specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: &one, Minor: &three, Access: "wr"},
		{Allow: true, Type: "b", Major: i64(-1), Access: "m"},
	})
	require.Empty(t, errs)
	assert.Equal(t, []deviceRule{
		{allow: false, typ: 'a', major: -1, minor: -1, access: allDeviceAccess},
		{allow: true, typ: 'c', major: 1, minor: 3, access: unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE},
		{allow: true, typ: 'b', major: -1, minor: -1, access: unix.BPF_DEVCG_ACC_MKNOD},
	}, rules)
	assert.Equal(t, []specs.LinuxDeviceCgroup{
		{Allow: false, Type: "a", Access: "rwm"},
		{Allow: true, Type: "c", Major: &one, Minor: &three, Access: "rw"},
		{Allow: true, Type: "b", Access: "m"},
	}, ociDeviceRules(rules))
	_, errs = parseDeviceRules(make([]specs.LinuxDeviceCgroup, maxDeviceRules+1))
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], ErrInvalidSpec)
}

// TestDeviceProgramLoads: the kernel's verifier accepts the programs of
// random rule sets (needs the privileges device rules need; elsewhere it
// checks that they are refused as such).
func TestDeviceProgramLoads(t *testing.T) {
	if err := deviceCapabilities(); err != nil {
		_, err := loadDevicePlan(nil)
		require.ErrorIs(t, err, ErrLimitUnsupported)
		assert.Contains(t, err.Error(), "only root")
		return
	}
	// Before Linux 5.11 each program counts against RLIMIT_MEMLOCK until
	// the kernel frees it, after an RCU grace period: fifty in a row can
	// pass 64 KiB. This test is about the programs, not the limit
	// (TestVMDeviceRulesMemlock is), so it lifts it for its own process.
	var old unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &old) == nil {
		if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}) == nil {
			t.Cleanup(func() { _ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &old) })
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 50; n++ {
		rules := randomRules(rng)
		d, err := loadDevicePlan(rules)
		require.NoError(t, err, "rules %+v\n%v", rules, deviceProgram(rules))
		d.close()
	}
	many := make([]deviceRule, maxDeviceRules)
	for i := range many {
		many[i] = deviceRule{allow: i%2 == 0, typ: 'c', major: int64(i), minor: int64(i), access: uint32(1 + i%7)}
	}
	d, err := loadDevicePlan(many)
	require.NoError(t, err, "the largest rule set")
	d.close()
}
