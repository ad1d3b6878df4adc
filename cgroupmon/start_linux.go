package cgroupmon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/internal/proctree"
	"github.com/cgmon/cgmon/metrics"
)

// Start validates s, creates the execution's cgroup with its limits, and
// starts the command inside it. It returns an error, with nothing left
// behind, when the spec is invalid, a limit cannot be applied or the cgroup
// cannot be made. A command that cannot be executed is not an error here:
// Wait reports it (status failed_to_start, ErrStart).
func (m *Monitor) Start(ctx context.Context, s Spec) (*Handle, error) {
	r, running, err := m.start(ctx, s)
	if err != nil {
		return nil, err
	}
	if running {
		go m.wait(r)
	}
	return &Handle{r}, nil
}

// Run starts an execution and waits for it. The error is non-nil when cgmon
// itself failed (nothing was run) or the command could not be started
// (ErrStart; the Execution then has status failed_to_start).
func (m *Monitor) Run(ctx context.Context, s Spec) (metrics.Execution, error) {
	r, running, err := m.start(ctx, s)
	if err != nil {
		return metrics.Execution{}, err
	}
	if running {
		m.wait(r) // in the caller's goroutine: no hand-off
	}
	return r.result()
}

// start does Start's work except waiting. When running is true the caller
// must call m.wait(r): in a goroutine (Start) or in its own (Run).
func (m *Monitor) start(ctx context.Context, s Spec) (r *run, running bool, err error) {
	s, plan, err := m.checkSpec(s)
	if err != nil {
		return nil, false, err
	}
	defer plan.close() // the device program, unless a leaf took it
	r = newRun(s, m.probe.Sources, m.probe.Backend)
	r.procRoot = m.opts.ProcRoot
	if err := m.track(r); err != nil {
		return nil, false, err
	}
	// The deferred calls take the run as an argument: a failed start
	// returns a nil r.
	defer func(r *run) {
		if err != nil {
			m.untrack(r)
		}
	}(r)
	l, err := m.makeLeaf(s.ID, plan)
	if err != nil {
		return nil, false, err
	}
	m.setLeaf(r, l)
	defer func(r *run) {
		if err != nil && r.leaf != nil {
			_ = r.leaf.remove()
		}
	}(r)
	if r.leaf != nil {
		r.limitsInForce(r.leaf.limits)
		r.setCapacity(r.leaf.capacity())
		r.pressureAtStart()
	} else {
		r.setCapacity(cpuCapacity{cpus: onlineCPUs()})
	}
	marker := m.command(r)
	if r.pipes, err = plumb(r.cmd); err != nil {
		return nil, false, fmt.Errorf("%w: creating pipes: %w", errCgmon, err)
	}
	if err := m.launch(r); err != nil {
		if errors.Is(err, errCgmon) {
			return nil, false, err
		}
		m.failedToStart(r, err)
		return r, false, nil
	}
	m.follow(ctx, r, marker)
	return r, true, nil
}

// checkSpec validates s, gives it an id when it has none, and plans its
// limits.
func (m *Monitor) checkSpec(s Spec) (Spec, *limitPlan, error) {
	if s.ID == "" {
		s.ID = defaultID("exec", time.Now())
	}
	if err := validateID(s.ID); err != nil {
		return s, nil, err
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return s, nil, fmt.Errorf("%w: empty command", ErrInvalidSpec)
	}
	if s.Timeout < 0 {
		return s, nil, fmt.Errorf("%w: negative timeout %v", ErrInvalidSpec, s.Timeout)
	}
	if s.CPUTimeLimit < 0 {
		return s, nil, fmt.Errorf("%w: negative CPU-time limit %v", ErrInvalidSpec, s.CPUTimeLimit)
	}
	if s.User != nil {
		if err := checkUser(s.User, m.opts.ProcRoot); err != nil {
			return s, nil, err
		}
	}
	if !m.rlimitsUnchecked {
		if err := checkRlimits(s.Rlimits); err != nil {
			return s, nil, err
		}
	}
	plan, err := planLimits(s.Limits, m.limitHost())
	return s, plan, err
}

// makeLeaf makes the execution's cgroup with its limits; nil for the
// procfs backend. Its name is "<id>-<pid>-<sequence>"; a monitor in
// another pid namespace may have the same pid, so a name already taken is
// skipped for the next one.
func (m *Monitor) makeLeaf(id string, plan *limitPlan) (*leaf, error) {
	root := m.root
	if root == nil {
		return nil, nil
	}
	caps := leafCaps{memory: root.has("memory"), pidsCtl: root.has("pids"), io: root.has("io"), cgroupKill: m.probe.Features.CgroupKill}
	remade := false
	for taken := 0; ; {
		name := fmt.Sprintf("%s-%d-%d", leafName(id), os.Getpid(), m.seq.Add(1))
		l, err := createLeaf(root.path, name, plan, caps)
		switch {
		case errors.Is(err, fs.ErrNotExist) && (root.owned || root.shared) && !remade:
			// Another monitor sharing the root closed and removed it,
			// empty, between New and now (cgmon run started in parallel).
			if err := root.remake(); err != nil {
				return nil, err
			}
			remade = true
		case errors.Is(err, fs.ErrExist) && taken < 100:
			taken++
		default:
			return l, err
		}
	}
}

// command makes the exec.Cmd of the run. The main process gets SIGKILL
// when the monitor dies (see starter). Without a cgroup, a process group
// and an environment marker are how the tree is found and killed (see
// proctree); with one and a subreaper, the marker is how a process that
// moved itself out of the cgroup is told apart (Reaper.Sweep). The marker
// is returned.
func (m *Monitor) command(r *run) (marker string) {
	s := r.spec
	cmd := exec.Command(s.Command[0], s.Command[1:]...)
	cmd.Env, cmd.Dir = s.Env, s.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.Stdin, s.Stdout, s.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if s.User != nil {
		// Go's child sets the groups, gid and uid before exec, then the
		// parent-death signal (the uid change would clear it otherwise).
		cmd.SysProcAttr.Credential = credential(s.User)
	}
	if r.leaf == nil {
		cmd.SysProcAttr.Setpgid = true
	}
	if r.leaf == nil || m.reaper != nil {
		marker = proctree.NewMarker()
		env := s.Env
		if env == nil {
			env = os.Environ()
		}
		cmd.Env = append(env[:len(env):len(env)], marker)
	}
	r.cmd, r.marker = cmd, marker
	return marker
}

// launch starts the command inside the leaf: directly with
// CLONE_INTO_CGROUP, or gated (stopped at exec under ptrace, moved, then
// released) where the kernel refuses that. The fork happens on the
// Monitor's starter thread (for Spec.User, the one marked no_new_privs).
// The reaper, when there is one, protects the new pid before it can see
// it exit.
func (m *Monitor) launch(r *run) error {
	if m.reaper != nil {
		done := m.reaper.Starting()
		defer done()
	}
	r.bootTicks = proctree.BootTicks() // before the fork: see TreeOptions.StartTicks
	var err error
	if r.spec.User == nil {
		err = m.starter().do(func() error { return m.fork(r) })
	} else {
		err = m.userStarter().do(func() error { return keepDumpable(func() error { return m.fork(r) }) })
	}
	if err == nil {
		r.pipes.started()
		if m.reaper != nil {
			m.reaper.Protect(r.cmd.Process.Pid)
		}
	} else {
		r.pipes.abort()
	}
	return err
}

// fork starts the command, with CLONE_INTO_CGROUP when there is a leaf,
// falling back to the gated start when the kernel refuses it or the
// leaf's limits need the move (leaf.moveIn). A spec with rlimits is held
// at exec to set them (see rlimit_linux.go); one without is not.
func (m *Monitor) fork(r *run) error {
	hold := len(r.spec.Rlimits) > 0
	if r.leaf == nil {
		if hold {
			return r.startHeld(false)
		}
		r.start = time.Now()
		return r.cmd.Start()
	}
	if !m.forceGated && !r.leaf.moveIn {
		r.cmd.SysProcAttr.UseCgroupFD = true
		r.cmd.SysProcAttr.CgroupFD = r.leaf.dir
		var err error
		if hold {
			err = r.startHeld(false)
		} else {
			r.start = time.Now()
			err = r.cmd.Start()
		}
		if err == nil || !cloneIntoCgroupRefused(err) || r.cmd.Process != nil {
			return err
		}
		// Start again, gated; exec.Cmd cannot be started twice.
		r.cmd = cloneCmd(r.cmd)
		r.cmd.SysProcAttr.UseCgroupFD = false
	}
	r.gated = true
	return r.startHeld(true)
}

// cloneIntoCgroupRefused reports whether err is the kernel refusing
// clone3(CLONE_INTO_CGROUP) rather than the command failing to execute.
func cloneIntoCgroupRefused(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case unix.ENOSYS, unix.EINVAL, unix.EOPNOTSUPP, unix.EBUSY:
		return true
	}
	return false
}

func cloneCmd(c *exec.Cmd) *exec.Cmd {
	n := exec.Command(c.Path, c.Args[1:]...)
	n.Args = c.Args
	n.Env, n.Dir = c.Env, c.Dir
	n.Stdin, n.Stdout, n.Stderr = c.Stdin, c.Stdout, c.Stderr
	attr := *c.SysProcAttr
	n.SysProcAttr = &attr
	return n
}

// startHeld starts the command traced, so that it stops right after exec
// before running any instruction of its own; then, with move, moves it
// into the leaf (the gated start), sets the spec's rlimits, and detaches.
// Anything that fails kills the child before it runs. ptrace requests
// must come from the thread that started it: it runs on the starter's
// locked thread.
func (r *run) startHeld(move bool) error {
	r.cmd.SysProcAttr.Ptrace = true
	r.start = time.Now()
	if err := r.cmd.Start(); err != nil {
		return err
	}
	pid := r.cmd.Process.Pid
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		return fmt.Errorf("%w: held start: waiting for the stopped child: %v (status %v)", errCgmon, err, ws)
	}
	var werr error
	if move {
		if werr = os.WriteFile(r.leaf.path+"/cgroup.procs", []byte(strconv.Itoa(pid)), 0); werr != nil {
			werr = fmt.Errorf("gated start into %s: %w", r.leaf.path, werr)
		}
	}
	if werr == nil && len(r.spec.Rlimits) > 0 {
		werr = setRlimits(pid, r.spec.Rlimits)
	}
	if werr != nil {
		_ = r.cmd.Process.Kill()
	}
	if err := unix.PtraceDetach(pid); err != nil && werr == nil {
		_ = r.cmd.Process.Kill()
		werr = fmt.Errorf("held start: detaching: %w", err)
	}
	if werr != nil {
		_ = r.cmd.Wait()
		return fmt.Errorf("%w: %w (nothing of the command ran)", errCgmon, werr)
	}
	return nil
}

// failedToStart records a command that could not be executed: a record,
// not a cgmon failure.
func (m *Monitor) failedToStart(r *run, err error) {
	if r.leaf != nil {
		_ = r.leaf.remove()
	}
	r.failedToStart(err)
	m.untrack(r)
	rec, _ := r.result()
	m.record(&rec)
	r.wake()
}

// follow hands a started run to whatever watches it: its procfs tree
// (which must exist before Start returns, as it is how the procfs backend
// kills), the sampler, and the timeout or context.
func (m *Monitor) follow(ctx context.Context, r *run, marker string) {
	r.started(r.start, 0)
	if r.leaf == nil {
		t := m.procfs.NewTree(r.cmd.Process.Pid, proctree.TreeOptions{Marker: marker})
		r.useTree(t)
		if m.reaper != nil {
			m.reaper.Register(t)
		}
	}
	m.sampler.add(r)
	if ctx.Done() != nil || r.spec.Timeout > 0 {
		go r.watch(ctx)
	}
}
