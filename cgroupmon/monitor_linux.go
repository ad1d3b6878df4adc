package cgroupmon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cgmon/cgmon/internal/proctree"
	"github.com/cgmon/cgmon/metrics"
)

// Monitor runs executions, each in its own cgroup (or the procfs fallback),
// and samples them all on one shared ticker. It is safe for concurrent use.
type Monitor struct {
	opts    Options
	probe   *Probe
	root    *execRoot // nil for the procfs backend
	procfs  proctree.FS
	reaper  *proctree.Reaper // nil unless Options.Subreaper
	sampler *sampler
	self    *selfPeak
	seq     atomic.Uint64
	reaped  Reaped // what New reaped under the root

	startOnce sync.Once
	st        atomic.Pointer[starter] // forks every execution (start_linux.go)
	// userOnce and ust are the same for executions with Spec.User: their
	// starter's thread is marked no_new_privs (see starter).
	userOnce sync.Once
	ust      atomic.Pointer[starter]

	mu     sync.Mutex
	closed bool
	live   map[*run]struct{}

	// forceGated makes every start take the gated path (tests only; set
	// through the package's test helpers, never by callers).
	forceGated bool
	// rlimitsUnchecked skips checkRlimits, so that the kernel refuses
	// what it would have (tests only, as forceGated).
	rlimitsUnchecked bool
}

// New probes the host and prepares a Monitor as opts ask. With the default
// root and a delegated own cgroup it moves this process into a leaf
// (cgmon-monitor) and enables the available controllers for its children.
// With Options.MoveOthers inside a container whose cgroup-namespace root
// holds processes, it first moves them (see Options.MoveOthers).
// It then reaps the root's stale leaves, those of monitors that died
// (see Reaped); when none is stale that costs one readdir of the root.
func New(opts Options) (*Monitor, error) {
	opts, err := checkOptions(opts)
	if err != nil {
		return nil, err
	}
	p, err := ProbeHost(opts)
	if err != nil {
		return nil, err
	}
	if p.Path == PathScopePossible {
		p = delegatedScope(opts, p)
	}
	if p, err = moveOthersIfAsked(opts, p); err != nil {
		return nil, err
	}
	if err := requireRoot(opts, p); err != nil {
		return nil, err
	}
	fsys, err := proctree.NewFS(opts.ProcRoot)
	if err != nil {
		return nil, err
	}
	m := &Monitor{
		opts: opts, probe: p, procfs: fsys,
		sampler: newSampler(opts.Interval),
		self:    newSelfPeak(opts.ProcRoot),
		live:    map[*run]struct{}{},
	}
	if err := m.prepareRoot(); err != nil {
		return nil, err
	}
	if m.root != nil {
		m.reaped = reapRoot(m.root.path, p.Features.CgroupKill)
	}
	if opts.Subreaper {
		if m.reaper, err = proctree.EnableReaper(fsys); err != nil {
			m.undo()
			return nil, fmt.Errorf("subreaper: %w", err)
		}
		if m.root != nil && withinDir(p.Mount, m.root.path) {
			// Zombies of the executions' cgroups that no tree claims.
			m.reaper.ReapCgroup("/" + strings.TrimPrefix(strings.TrimPrefix(m.root.path, p.Mount), "/"))
		}
	}
	return m, nil
}

// delegatedScope asks the user's systemd instance for a delegated scope
// holding this process, then probes again: the own cgroup is now that
// scope. On failure the first probe is returned, turned to the procfs
// fallback with the reason.
func delegatedScope(opts Options, p *Probe) *Probe {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name, err := startUserScope(ctx)
	if err == nil {
		var q *Probe
		if q, err = ProbeHost(opts); err == nil {
			if q.Path == PathOwnCgroup {
				q.Path = PathScope
				q.RootReason = "the user's systemd instance delegated the transient scope " + name + "; " + q.RootReason
				q.UserManager = p.UserManager
				return q
			}
			err = fmt.Errorf("after moving into %s the own cgroup is still not delegated: %s", name, q.RootReason)
		}
	}
	p.fallBackToProcfs("asking the user's systemd instance for a delegated scope failed: "+err.Error(),
		Gap{What: "no delegated cgroup: " + err.Error(), Remedy: "run cgmon under `systemd-run --user -p Delegate=yes --scope cgmon ...`"})
	return p
}

// checkOptions validates opts and fills in the defaults.
func checkOptions(opts Options) (Options, error) {
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Interval < MinInterval {
		return opts, fmt.Errorf("%w: interval %v is shorter than the minimum of %v", ErrInvalidSpec, opts.Interval, MinInterval)
	}
	switch opts.Backend {
	case "":
		opts.Backend = BackendAuto
	case BackendAuto, BackendCgroup2, BackendProcfs:
	default:
		return opts, fmt.Errorf("%w: unknown backend %q (auto, cgroup2, procfs)", ErrInvalidSpec, opts.Backend)
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = defaultProcRoot
	}
	return opts, nil
}

// requireRoot fails when the options demand a cgroup root that the probe
// did not find.
func requireRoot(opts Options, p *Probe) error {
	switch {
	case p.Root != "":
		return nil
	case p.rootMissing && opts.Backend != BackendProcfs:
		return &missingRootError{p.RootReason}
	case opts.Backend == BackendCgroup2:
		return &notDelegatedError{"backend cgroup2: " + p.RootReason}
	case opts.CgroupRoot != "" && opts.Backend != BackendProcfs:
		return &notDelegatedError{p.RootReason}
	}
	return nil
}

// missingRootError is a given cgroup root that does not exist and cannot
// be made; errors.Is(err, fs.ErrNotExist) holds for it.
type missingRootError struct{ reason string }

func (e *missingRootError) Error() string { return e.reason }
func (e *missingRootError) Unwrap() error { return fs.ErrNotExist }

// prepareRoot prepares the root the probe chose. With the auto backend
// and the default root, a root that cannot be prepared is a gap, and the
// procfs fallback is used.
func (m *Monitor) prepareRoot() error {
	p := m.probe
	if p.Root == "" {
		return nil
	}
	given := m.opts.CgroupRoot != ""
	root, err := prepareRoot(p, given)
	if err == nil {
		m.root = root
		p.rootPrepared(root.controllers)
		return nil
	}
	if m.opts.Backend == BackendCgroup2 || given {
		return err
	}
	p.fallBackToProcfs(fmt.Sprintf("%s could not be prepared (%v); procfs fallback", p.Root, err),
		Gap{What: "cgroup root " + p.Root + " could not be prepared: " + err.Error(), Remedy: "see the gaps above; cgmon uses the procfs fallback"})
	return nil
}

// Reaped returns what New reaped under the execution root.
func (m *Monitor) Reaped() Reaped { return m.reaped }

// Probe returns what the Monitor found and chose. The caller must not
// modify it.
func (m *Monitor) Probe() *Probe { return m.probe }

// Backend returns the backend executions are measured with.
func (m *Monitor) Backend() metrics.Backend { return m.probe.Backend }

// CheckLimits returns an error naming each field of l that Start would
// refuse on this Monitor (ErrInvalidSpec, ErrControllerUnavailable,
// ErrLimitUnsupported): the same decision Start makes, before anything is
// run or created. Device rules are checked by loading their program, which
// is closed at once. A value the kernel rejects when it is written
// (EINVAL) is still Start's error, with nothing left behind.
func (m *Monitor) CheckLimits(l *specs.LinuxResources) error {
	p, err := planLimits(l, m.limitHost())
	p.close()
	return err
}

// limitHost is what decides which limits this Monitor's leaves can take.
func (m *Monitor) limitHost() limitHost {
	h := limitHost{sys: defaultSysRoot}
	if m.root == nil {
		h.noCgroup = "procfs fallback: " + m.probe.RootReason
		return h
	}
	h.root, h.controllers = m.root.path, m.root.controllers
	return h
}

// Close kills every live execution, waits for them, removes the cgroups of
// ended executions that the sampler has not removed yet, and releases what
// New set up (the leaf it moved itself into, a root it created). Its error
// names any cgroup that could not be removed; such a cgroup is left to the
// next monitor's reaping. The process stays a subreaper if
// Options.Subreaper made it one.
func (m *Monitor) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	live := make([]*run, 0, len(m.live))
	for r := range m.live {
		live = append(live, r)
	}
	m.mu.Unlock()
	for _, r := range live {
		r.kill(metrics.StatusCanceled)
		<-r.done
	}
	m.stopStarter()
	err := m.sampler.stop()
	if m.reaper != nil {
		err = errors.Join(err, m.reaper.Close())
	}
	m.undo()
	return err
}

// starter returns the Monitor's starter (starter_linux.go), starting it
// on first use (a Monitor that only watches never starts one); nil once
// Close has stopped it.
func (m *Monitor) starter() *starter {
	m.startOnce.Do(func() { m.st.Store(newStarter(false)) })
	return m.st.Load()
}

// userStarter returns the starter of executions that run as another user
// (Spec.User), whose thread is marked no_new_privs, starting it on first
// use; nil once Close has stopped it.
func (m *Monitor) userStarter() *starter {
	m.userOnce.Do(func() { m.ust.Store(newStarter(true)) })
	return m.ust.Load()
}

// stopStarter ends the starters, those that were started, and waits for
// them. Call it once no execution is live.
func (m *Monitor) stopStarter() {
	m.startOnce.Do(func() {}) // none may start after this
	m.userOnce.Do(func() {})
	for _, st := range []*starter{m.st.Load(), m.ust.Load()} {
		if st != nil {
			st.stop()
		}
	}
}

// undo releases what New set up.
func (m *Monitor) undo() {
	if m.root != nil {
		m.root.undo()
	}
	m.self.close()
}

// track adds a run to the live set; it fails once the Monitor is closed.
func (m *Monitor) track(r *run) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("the monitor is %w", ErrClosed)
	}
	m.live[r] = struct{}{}
	return nil
}

// setLeaf gives the tracked run r its leaf, under the monitor's lock:
// other executions' ends read the leaves of the live set (inOtherLeaf).
func (m *Monitor) setLeaf(r *run, l *leaf) {
	m.mu.Lock()
	r.leaf = l
	m.mu.Unlock()
}

// untrack removes a run from the live set.
func (m *Monitor) untrack(r *run) {
	m.mu.Lock()
	delete(m.live, r)
	m.mu.Unlock()
}

// record hands a finished execution to the sink.
func (m *Monitor) record(e *metrics.Execution) {
	if m.opts.Sink != nil {
		m.opts.Sink.RecordExecution(*e)
	}
}
