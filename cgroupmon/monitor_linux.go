package cgroupmon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
	"github.com/cgmon/cgmon/procfallback"
)

// selfLeaf is the leaf a Monitor moves its own process into when it nests
// executions in its own delegated cgroup.
const selfLeaf = "cgmon-monitor"

// Monitor runs executions, each in its own cgroup (or the procfs fallback),
// and samples them all on one shared ticker. It is safe for concurrent use.
type Monitor struct {
	opts    Options
	probe   *Probe
	procfs  procfallback.FS
	reaper  *procfallback.Reaper
	sampler *sampler
	// inheritedRSS is the maxrss this process inherited when it was
	// started with vfork, when that exceeds its own peak (see selfPeak);
	// measured once, on first use: only the procfs memory source needs it.
	inheritedRSS     uint64
	inheritedRSSOnce sync.Once
	// status is /proc/self/status, held open once selfPeak needs it.
	status struct {
		mu  sync.Mutex
		fd  int
		buf [4096]byte
	}

	// root is where leaves are made; empty for the procfs backend.
	root string
	// controllers are enabled for the leaves (root's subtree_control).
	controllers []string
	// createdRoot: root was made by New and is removed by Close when empty.
	createdRoot bool
	// sharedRoot: root is the default <mount>/cgmon, which Close removes
	// when no other monitor uses it.
	sharedRoot bool
	// movedFrom is the cgroup this process was moved out of (SelfMove).
	movedFrom string

	seq atomic.Uint64

	mu     sync.Mutex
	closed bool
	live   map[*run]struct{}

	// forceGated makes every start take the gated path (tests only; set
	// through the package's test helpers, never by callers).
	forceGated bool
}

// New probes the host and prepares a Monitor as opts ask. With the default
// root and a delegated own cgroup it moves this process into a leaf
// (cgmon-monitor) and enables the available controllers for its children.
func New(opts Options) (*Monitor, error) {
	if opts.Interval < 0 {
		return nil, fmt.Errorf("%w: negative interval %v", ErrInvalidSpec, opts.Interval)
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	switch opts.Backend {
	case "":
		opts.Backend = BackendAuto
	case BackendAuto, BackendCgroup2, BackendProcfs:
	default:
		return nil, fmt.Errorf("%w: unknown backend %q (auto, cgroup2, procfs)", ErrInvalidSpec, opts.Backend)
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = defaultProcRoot
	}
	p, err := ProbeHost(opts)
	if err != nil {
		return nil, err
	}
	if p.Path == PathScopePossible {
		p = delegatedScope(opts, p)
	}
	if opts.Backend == BackendCgroup2 && p.Root == "" {
		return nil, fmt.Errorf("backend cgroup2: %w: %s", ErrNotDelegated, p.RootReason)
	}
	if opts.CgroupRoot != "" && opts.Backend != BackendProcfs && p.Root == "" {
		return nil, fmt.Errorf("cgroup root: %w: %s", ErrNotDelegated, p.RootReason)
	}
	fsys, err := procfallback.NewFS(opts.ProcRoot)
	if err != nil {
		return nil, err
	}
	m := &Monitor{
		opts:    opts,
		probe:   p,
		procfs:  fsys,
		sampler: newSampler(opts.Interval),
		live:    map[*run]struct{}{},
	}
	m.status.fd = -1
	if p.Root != "" {
		if err := m.prepareRoot(); err != nil {
			m.undoRoot()
			if opts.Backend == BackendCgroup2 || opts.CgroupRoot != "" {
				return nil, err
			}
			// auto: say why and fall back.
			p.Gaps = append(p.Gaps, Gap{What: "cgroup root " + p.Root + " could not be prepared: " + err.Error(), Remedy: "see the gaps above; cgmon uses the procfs fallback"})
			p.RootReason = fmt.Sprintf("%s could not be prepared (%v); procfs fallback", p.Root, err)
			p.Root, p.Available, p.Enabled = "", []string{}, []string{}
			p.Sources = map[string]SourceChoice{}
			p.chooseSources(BackendProcfs)
		}
	}
	if opts.Subreaper {
		if m.reaper, err = procfallback.EnableReaper(fsys); err != nil {
			m.undoRoot()
			return nil, fmt.Errorf("subreaper: %w", err)
		}
	}
	return m, nil
}

// delegatedScope asks the user's systemd instance for a delegated scope holding
// this process, then probes again: the own cgroup is now that scope. On
// failure the first probe is returned with the reason and the fallback.
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
	p.Path = PathProcfs
	p.RootReason = "asking the user's systemd instance for a delegated scope failed: " + err.Error()
	p.Available = []string{}
	p.Sources = map[string]SourceChoice{}
	p.Gaps = append(p.Gaps, Gap{What: "no delegated cgroup: " + err.Error(), Remedy: "run cgmon under `systemd-run --user -p Delegate=yes --scope cgmon ...`"})
	p.chooseSources(BackendProcfs)
	return p
}

// prepareRoot creates the root if needed, moves this process out of it when
// it is the own cgroup, and enables the available controllers for leaves.
func (m *Monitor) prepareRoot() error {
	p := m.probe
	root := p.Root
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(root, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating cgroup root %s: %w", root, err)
		}
		m.createdRoot = true
	}
	if p.SelfMove {
		leafDir := filepath.Join(root, selfLeaf)
		if err := os.Mkdir(leafDir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating %s: %w", leafDir, err)
		}
		if err := os.WriteFile(filepath.Join(leafDir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			_ = os.Remove(leafDir)
			return fmt.Errorf("moving cgmon into %s: %w", leafDir, err)
		}
		m.movedFrom = root
	}
	m.root = root
	m.sharedRoot = m.opts.CgroupRoot == "" && !p.SelfMove
	b, err := readCapped(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("reading %s/cgroup.controllers: %w", root, err)
	}
	avail, err := parseControllers(b)
	if err != nil {
		return fmt.Errorf("%s/cgroup.controllers: %w", root, err)
	}
	var want []string
	for _, c := range []string{"cpu", "memory", "pids", "io"} {
		if slices.Contains(avail, c) {
			want = append(want, "+"+c)
		}
	}
	if len(want) > 0 {
		sc := filepath.Join(root, "cgroup.subtree_control")
		if err := os.WriteFile(sc, []byte(strings.Join(want, " ")), 0); err != nil {
			return fmt.Errorf("enabling controllers %v in %s: %w", want, sc, err)
		}
	}
	if b, err = readCapped(filepath.Join(root, "cgroup.subtree_control")); err == nil {
		m.controllers, _ = parseControllers(b)
	}
	// Sources depend on what is enabled now, not what the probe guessed;
	// the controller files were just read, so only the features are.
	p.Available, p.Enabled = nonNil(m.controllers), nonNil(m.controllers)
	p.Sources, p.Gaps, p.Features = map[string]SourceChoice{}, nil, Features{}
	p.readFeatures(root)
	p.chooseSources(m.opts.Backend)
	return nil
}

// remakeRoot makes the root again, as prepareRoot left it, after another
// monitor sharing it removed it: the directory and the controllers enabled
// for its children.
func (m *Monitor) remakeRoot() error {
	if err := os.Mkdir(m.root, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("making cgroup root %s again: %w", m.root, err)
	}
	if len(m.controllers) == 0 {
		return nil
	}
	sc := filepath.Join(m.root, "cgroup.subtree_control")
	if err := os.WriteFile(sc, []byte("+"+strings.Join(m.controllers, " +")), 0); err != nil {
		return fmt.Errorf("enabling controllers %v in %s again: %w", m.controllers, sc, err)
	}
	return nil
}

// undoRoot reverts prepareRoot as far as it went (best effort).
func (m *Monitor) undoRoot() {
	if m.movedFrom != "" {
		_ = os.WriteFile(filepath.Join(m.movedFrom, "cgroup.subtree_control"), []byte(disableList(m.controllers)), 0)
		if err := os.WriteFile(filepath.Join(m.movedFrom, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err == nil {
			_ = os.Remove(filepath.Join(m.movedFrom, selfLeaf))
		}
		m.movedFrom = ""
	}
	if m.root != "" && (m.createdRoot || m.sharedRoot) {
		// The last monitor out removes the shared root; while another
		// monitor's leaves exist the kernel refuses (EBUSY), harmlessly.
		_ = unix.Rmdir(m.root)
	}
}

func disableList(cs []string) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = "-" + c
	}
	return strings.Join(out, " ")
}

// Probe returns what the Monitor found and chose. The caller must not
// modify it.
func (m *Monitor) Probe() *Probe { return m.probe }

// Backend returns the backend executions are measured with.
func (m *Monitor) Backend() metrics.Backend { return m.probe.Backend }

// CheckLimits returns an error (ErrControllerUnavailable, ErrInvalidSpec)
// when l cannot be applied on this host; nothing is run or created.
func (m *Monitor) CheckLimits(l *specs.LinuxResources) error {
	res, err := toResources(l)
	if err != nil {
		return err
	}
	if m.root == "" {
		if need := neededControllers(res); len(need) > 0 {
			return fmt.Errorf("%w: limit needs the %s controller, and this monitor has no cgroup (procfs fallback: %s)", ErrControllerUnavailable, strings.Join(need, ", "), m.probe.RootReason)
		}
		return nil
	}
	return checkControllers(res, m.controllers, m.root)
}

// Run starts an execution and waits for it. The error is non-nil when cgmon
// itself failed (nothing was run) or the command could not be started
// (ErrStart; the Execution then has status failed_to_start).
func (m *Monitor) Run(ctx context.Context, s Spec) (metrics.Execution, error) {
	r, err := m.start(ctx, s)
	if err != nil {
		return metrics.Execution{}, err
	}
	if r.waiting {
		r.wait()
	}
	return r.rec, r.err
}

// Close kills every live execution, waits for them, removes the cgroups of
// ended executions that the sampler has not removed yet, and releases what
// New set up (the leaf it moved itself into, a root it created). Its error
// names any cgroup that could not be removed. The process stays a
// subreaper if Options.Subreaper made it one.
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
		r.killAll(metrics.StatusCanceled)
		<-r.done
	}
	err := m.sampler.stop()
	if m.reaper != nil {
		err = errors.Join(err, m.reaper.Close())
	}
	m.undoRoot()
	m.status.mu.Lock()
	if m.status.fd >= 0 {
		unix.Close(m.status.fd)
		m.status.fd = -1
	}
	m.status.mu.Unlock()
	return err
}

func (m *Monitor) track(r *run) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.live[r] = struct{}{}
	return nil
}

func (m *Monitor) untrack(r *run) {
	m.mu.Lock()
	delete(m.live, r)
	m.mu.Unlock()
}
