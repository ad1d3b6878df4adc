package cgroupmon

import (
	"io"
	"math"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cgmon/cgmon/metrics"
)

// DefaultInterval is the sampler's default tick.
const DefaultInterval = 100 * time.Millisecond

// MinInterval is the shortest tick Options.Interval may ask for: a
// shorter one would keep a CPU busy sampling (each tick reads every live
// execution's files) and measure cgmon more than the executions.
const MinInterval = time.Millisecond

// BackendChoice is what Options.Backend asks for.
type BackendChoice string

// The backend choices.
const (
	// BackendAuto picks cgroup2 on a delegated v2 host with controllers,
	// hybrid where v2 is mounted without controllers, else procfs.
	BackendAuto BackendChoice = "auto"
	// BackendCgroup2 requires a writable cgroup v2 root (hybrid counts: it
	// then takes memory from procfs) and fails otherwise.
	BackendCgroup2 BackendChoice = "cgroup2"
	// BackendProcfs uses procfs and rusage only.
	BackendProcfs BackendChoice = "procfs"
)

// Sink receives every finished execution; *metrics.Collector is one.
type Sink interface {
	RecordExecution(metrics.Execution)
}

// Options configure a Monitor. The zero value is usable.
type Options struct {
	// Interval is the sampler's tick; 0 means DefaultInterval (100 ms).
	// Below MinInterval (1 ms) it is ErrInvalidSpec.
	Interval time.Duration
	// Backend is auto (default), cgroup2 or procfs.
	Backend BackendChoice
	// Sink, when set, receives every finished execution.
	Sink Sink
	// CgroupRoot is the cgroup directory under which per-execution leaves
	// are made. Empty: the monitor's own cgroup when it is delegated and
	// holds only this process (cgmon moves itself into a leaf first), else
	// <mount>/cgmon when writable, else the procfs fallback.
	CgroupRoot string
	// CgroupMount is where cgroup v2 is looked for; empty: found from
	// mountinfo (usually /sys/fs/cgroup or /sys/fs/cgroup/unified).
	CgroupMount string
	// ProcRoot is the proc filesystem; default /proc.
	ProcRoot string
	// Subreaper makes this process a child subreaper, so that orphaned
	// descendants of executions are re-parented to it and can be measured
	// and reaped. It is process-wide; the CLI turns it on.
	Subreaper bool
	// MoveOthers lets New rearrange the container it runs in, as
	// docker-in-docker's entrypoint does, when the root of the container's
	// cgroup namespace holds processes and so cannot enable controllers for
	// its children (Probe.InternalProcesses): New moves every process of
	// that root, its own among them, into the sibling <mount>/init, then
	// enables the controllers cgmon uses, so that executions get limits
	// and memory.peak. The move is not undone at Close (later monitors
	// need no flag); <mount>/init is not cgmon's and is never removed.
	// Where nothing holds controllers back it does nothing; where the
	// cgroup mount is read-only New fails. Never done unless set.
	MoveOthers bool
}

// Spec describes one execution.
type Spec struct {
	// ID identifies the execution; it must be valid UTF-8 without '/',
	// "..", control characters (newline, escape, ...) or bidirectional
	// formatting characters, and at most 200 bytes. Empty: one is
	// generated that is unique across processes and sorts in time order
	// as a string, e.g. "exec-20261202T140921.290761Z-5f3a9c1e-1" (the
	// time in UTC, a random tag of this process and a number it counts).
	ID string
	// Language labels the record, e.g. "python".
	Language string
	// CodeLength is the length of the program's source, in bytes, as the
	// caller counts it; it only labels the record.
	CodeLength int
	// Command is the argv; Command[0] is looked up in PATH when it has no
	// slash.
	Command []string
	// Env is the environment; nil means this process's environment.
	Env []string
	// Dir is the working directory; empty means this process's.
	Dir string
	// Stdin, Stdout and Stderr are the command's standard streams; nil
	// means /dev/null.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Limits are applied to the execution's cgroup before its first
	// instruction runs, each field written and read back (the record's
	// Limits is what was read), or refused before anything is created
	// with an error naming the field: ErrInvalidSpec for a value that
	// means nothing, ErrControllerUnavailable when the field's controller
	// is not enabled for the Monitor's cgroups, ErrLimitUnsupported when
	// cgmon cannot apply it here (no cgroup v2 file for it, a kernel
	// without the file, a unified key that is not a controller's setting,
	// device rules without root, a device the host lacks). Device rules
	// are an eBPF program cgmon attaches and owns; they start from every
	// device denied, as in runc. See the README for each field's file.
	Limits *specs.LinuxResources
	// User, when set, is the user the command runs as: its UID, GID and
	// exactly its AdditionalGids as supplementary groups (none when empty;
	// cgmon's own are dropped), with no_new_privs set, so that neither it
	// nor anything it executes gains privileges (setuid binaries, file
	// capabilities). cgmon needs CAP_SETUID and CAP_SETGID for it (root):
	// without them, or for an id its user namespace does not map, Start
	// returns ErrUserUnsupported and nothing is run. Umask and Username
	// are ErrInvalidSpec (cgmon cannot set a umask per execution; give
	// numeric ids). The cgroup stays root's: the user cannot move its
	// processes out of it, nor change its limits. Dir, when set, must be
	// one the user may enter; when empty the command starts in cgmon's
	// working directory, which it may be unable to read. Env is not
	// changed for the user (HOME, USER stay as given).
	User *specs.User
	// Rlimits are POSIX resource limits (setrlimit(2)) of the main process,
	// inherited by its children, as in an OCI runtime's process.rlimits:
	// Type is RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_STACK, RLIMIT_CORE, ...,
	// Soft and Hard are numbers in the limit's unit (bytes, files,
	// seconds), RlimitInfinity for none. They are in force from the
	// program's first instruction: the child is held after its execve,
	// given them with prlimit(2) and released (see the README for what exec
	// itself did with cgmon's own). An unknown type, a type given twice or
	// a soft limit above the hard one is ErrInvalidSpec, a hard limit above
	// cgmon's own without CAP_SYS_RESOURCE ErrLimitUnsupported, refused
	// before anything runs. A main process killed by SIGXFSZ or SIGXCPU
	// under RLIMIT_FSIZE or RLIMIT_CPU has status signaled and a Reason
	// naming the limit. Empty: the start is the usual one, at no cost.
	Rlimits []specs.POSIXRlimit
	// Timeout is the wall-clock limit; 0 means none.
	Timeout time.Duration
	// CPUTimeLimit is the limit on the CPU time (user plus system) of the
	// whole execution, every process and thread together; 0 means none,
	// and a negative one is ErrInvalidSpec. The sampler reads it from the
	// cgroup's cpu.stat (without a cgroup, the procfs tree's sum) and
	// checks again as soon as the execution could have spent what is left
	// on every CPU it can use (online CPUs, or fewer by the leaf's cpuset
	// or cpu.max), at least 1 ms and at most one tick apart. Once it is
	// reached every process is killed and the status is
	// metrics.StatusCPUTimeout, distinct from Timeout's StatusTimeout; an
	// execution that ends by itself between two checks with more CPU time
	// than the limit is cpu_timeout too. The CPU time measured then
	// exceeds the limit by at most N × (1 ms + D) + T × min(threads, N):
	// N the CPUs it can use, D how late the sampler's killing check ran
	// (under 1 ms on an idle machine, tens of milliseconds on an
	// overloaded one, where the sampler waits for a CPU like any thread),
	// T the scheduler tick (1/CONFIG_HZ: 4 ms on Debian's kernels, 10 ms
	// at most), as cpu.stat counts a running thread's time at the tick;
	// plus the kernel's teardown of the killed processes, charged to
	// them. Without a cgroup add 20 ms per process: /proc/PID/stat counts
	// in 10 ms units. In a virtual machine without steal-time accounting,
	// T is as long as the host keeps a vCPU away. BENCHMARKS.md has the
	// overshoot measured.
	CPUTimeLimit time.Duration
	// WaitAll waits for every process of the execution to exit instead of
	// killing what is left when the main process exits.
	WaitAll bool
	// KeepSamples keeps the sampled timeline in the result (Execution.Samples).
	KeepSamples bool
}

// RlimitInfinity is the value of an unlimited soft or hard limit in
// Spec.Rlimits (RLIM_INFINITY).
const RlimitInfinity = math.MaxUint64

// Target is what Attach watches: exactly one of CgroupPath, PID and
// ContainerID.
type Target struct {
	// CgroupPath is a cgroup v2 directory, absolute or relative to the
	// cgroup v2 mount.
	CgroupPath string
	// PID is a process to watch.
	PID int
	// ContainerID is a container's id, or a prefix of it that only one
	// container has; "docker://", "containerd://" and other "<runtime>://"
	// prefixes, as Kubernetes prints them, are ignored. Its cgroup is found
	// by walking the cgroup v2 tree for the names Docker, containerd,
	// CRI-O and Podman give it (docker-<id>.scope, docker/<id>,
	// cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope,
	// libpod_parent/libpod-<id>, <id> below kubepods), without asking any
	// runtime.
	ContainerID string
	// ID and Language label the record. ID follows the rules of Spec.ID;
	// empty, one is generated as for Spec.ID, e.g.
	// "attach-20261202T140921.290761Z-5f3a9c1e-2".
	ID       string
	Language string
	// Duration stops watching after this long; 0 watches until the end.
	Duration time.Duration
	// KeepSamples keeps the sampled timeline in the record.
	KeepSamples bool
}
