package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/cgmon/cgmon/cgroupmon"
	"github.com/cgmon/cgmon/metrics"
)

// doctorOptions are the flags of `cgmon doctor`.
type doctorOptions struct {
	Format      string
	Backend     string
	CgroupRoot  string
	CgroupMount string
	ProcRoot    string
	MoveOthers  bool
}

// LimitSupport says whether a kind of limit would work on this host.
type LimitSupport struct {
	// Flag is how the limit is given to `cgmon run`.
	Flag string `json:"flag"`
	// Controller is the cgroup controller it needs.
	Controller string `json:"controller"`
	Works      bool   `json:"works"`
	// Reason says why it would not work; empty when it works.
	Reason string `json:"reason,omitempty"`
}

// Doctor is the JSON form of `cgmon doctor`: the host probe, the way
// `cgmon run` gets a cgroup (RunPath) and which limits would work.
type Doctor struct {
	SchemaVersion int `json:"schema_version"`
	*cgroupmon.Probe
	// RunPath is each way of getting a cgroup, in the order `cgmon run`
	// tries them, with whether it is the one used.
	RunPath []PathStep     `json:"run_path"`
	Limits  []LimitSupport `json:"limits"`
	// StaleLeaves are execution cgroups under the root whose monitor is
	// gone: `cgmon reap`, or the next run, removes them.
	StaleLeaves []cgroupmon.StaleLeaf `json:"stale_leaves,omitempty"`
}

// PathStep is one way `cgmon run` may get a cgroup for its executions.
type PathStep struct {
	// Step is "a" (own delegated cgroup), "b" (a scope from the user's
	// systemd instance) or "c" (the procfs fallback); empty for the shared
	// root and a given root, which are outside that order.
	Step string `json:"step,omitempty"`
	// Path is the Probe.Path value this step stands for.
	Path cgroupmon.RootPath `json:"path"`
	// Name says the way in words.
	Name string `json:"name"`
	// State is "used", "will be used", "no", "not tried" or "not needed".
	State string `json:"state"`
	// Detail is where the cgroup is, or why this way does not work.
	Detail string `json:"detail,omitempty"`
}

// runPath lists the ways of getting a cgroup in the order run tries them:
// a given root, then (a) the own cgroup, the shared root <mount>/cgmon,
// (b) the user's systemd instance, and (c) the procfs fallback.
// procfsAsked: --backend procfs, so no cgroup was looked for.
func runPath(p *cgroupmon.Probe, procfsAsked bool) []PathStep {
	var steps []PathStep
	if p.Path == cgroupmon.PathGiven {
		steps = append(steps, PathStep{Path: cgroupmon.PathGiven, Name: "the given cgroup root (--cgroup-root)", State: "used", Detail: p.Root})
	}
	// (a) the own cgroup.
	a := PathStep{Step: "a", Path: cgroupmon.PathOwnCgroup, Name: "own delegated cgroup"}
	switch {
	case p.Path == cgroupmon.PathOwnCgroup:
		a.State, a.Detail = "used", p.OwnCgroup+": cgmon moves itself into a leaf and nests executions beside it"
	case p.Path == cgroupmon.PathGiven:
		a.State = "not tried"
	case p.Mount == "":
		a.State, a.Detail = "no", "no cgroup v2 hierarchy is mounted"
	case p.OwnCgroup == "":
		a.State, a.Detail = "no", "this process's cgroup v2 path is unknown"
	case p.OwnCgroup == "/" && p.Container != nil && p.Container.NamespaceRoot:
		a.State, a.Detail = "no", "own cgroup is the root of the container's cgroup namespace, which holds the container's processes"
	case p.OwnCgroup == "/":
		a.State, a.Detail = "no", "own cgroup is the root of the hierarchy, which is never delegated"
	default:
		a.State, a.Detail = "no", "own cgroup "+p.OwnCgroup+" is not delegated (not writable by this user, or it holds other processes)"
	}
	// The shared root.
	sh := PathStep{Path: cgroupmon.PathSharedRoot, Name: "shared root <mount>/cgmon"}
	switch {
	case p.Path == cgroupmon.PathSharedRoot:
		sh.State, sh.Detail = "used", p.Root+" (writable by this user)"
	case p.Path == cgroupmon.PathGiven:
		sh.State = "not tried"
	case p.Path == cgroupmon.PathOwnCgroup:
		sh.State = "not needed"
	case p.Mount == "":
		sh.State, sh.Detail = "no", "no cgroup v2 hierarchy is mounted"
	case p.Container != nil && p.Container.ReadOnly:
		sh.State, sh.Detail = "no", "the cgroup v2 mount "+p.Mount+" is read-only"
	default:
		sh.State, sh.Detail = "no", p.Mount+"/cgmon is not writable by this user"
	}
	// (b) the user's systemd instance.
	b := PathStep{Step: "b", Path: cgroupmon.PathScope, Name: "transient scope (Delegate=yes) from the user's systemd"}
	um := p.UserManager
	switch {
	case p.Path == cgroupmon.PathScope:
		b.State, b.Detail = "used", p.Root
	case p.Path == cgroupmon.PathScopePossible:
		b.State, b.Detail = "will be used", "run asks the user manager at "+um.Address+" for the scope when it starts"
	case p.Path == cgroupmon.PathGiven:
		b.State = "not tried"
	case p.Path == cgroupmon.PathOwnCgroup || p.Path == cgroupmon.PathSharedRoot:
		b.State = "not needed"
	case p.Mount == "":
		b.State, b.Detail = "no", "no cgroup v2 hierarchy is mounted"
	case um.Reason != "":
		b.State, b.Detail = "no", um.Reason
	default:
		b.State, b.Detail = "no", p.RootReason
	}
	// (c) the procfs fallback.
	c := PathStep{Step: "c", Path: cgroupmon.PathProcfs, Name: "procfs fallback (no cgroup)"}
	if p.Path == cgroupmon.PathProcfs {
		c.State, c.Detail = "used", "rusage, sampled /proc of the process tree and a child subreaper; no limits"
	} else {
		c.State = "not needed"
	}
	if procfsAsked {
		a.State, a.Detail, sh.State, sh.Detail, b.State, b.Detail = "not tried", "", "not tried", "", "not tried", ""
		c.Detail = "--backend procfs was asked for; " + c.Detail
	}
	return append(steps, a, sh, b, c)
}

// limitKinds are the limits cgmon can apply, in the order doctor lists them.
var limitKinds = []struct{ flag, controller string }{
	{"--memory-max", "memory"},
	{"--cpus", "cpu"},
	{"--pids-max", "pids"},
	{"--limits (blockIO)", "io"},
	{"--limits (cpu.cpus, cpu.mems)", "cpuset"},
}

// NewDoctor describes p, probed for the backend choice (auto, cgroup2 or
// procfs; empty means auto).
func NewDoctor(p *cgroupmon.Probe, choice cgroupmon.BackendChoice) *Doctor {
	d := &Doctor{SchemaVersion: SchemaVersion, Probe: p, RunPath: runPath(p, choice == cgroupmon.BackendProcfs)}
	ip := p.InternalProcesses
	for _, k := range limitKinds {
		ls := LimitSupport{Flag: k.flag, Controller: k.controller}
		switch {
		case ip != nil && !ip.Move && slices.Contains(ip.Controllers, k.controller):
			ls.Reason = fmt.Sprintf("the %s controller cannot be enabled below %s while it holds processes (--move-others)", k.controller, ip.Cgroup)
		case p.Path == cgroupmon.PathScopePossible && !p.HasController(k.controller):
			ls.Reason = fmt.Sprintf("the user's systemd instance does not delegate the %s controller", k.controller)
		case p.Root == "" && p.Path != cgroupmon.PathScopePossible:
			ls.Reason = "no cgroup: " + p.RootReason
		case !p.HasController(k.controller):
			ls.Reason = fmt.Sprintf("the %s controller is not available in %s", k.controller, p.Root)
		default:
			ls.Works = true
		}
		d.Limits = append(d.Limits, ls)
	}
	return d
}

func doctorMain(args []string, stdio IO) error {
	o := &doctorOptions{}
	c := newCommand("doctor", "cgmon doctor [--format json]")
	c.StringVar(&o.Format, "format", "human", "output `FORMAT`: human or json")
	c.StringVar(&o.Backend, "backend", string(cgroupmon.BackendAuto), "`BACKEND` to diagnose: auto, cgroup2 or procfs")
	c.StringVar(&o.CgroupRoot, "cgroup-root", "", "diagnose the cgroup root at `PATH` instead of the default")
	c.StringVar(&o.CgroupMount, "cgroup-mount", "", "the cgroup v2 mount is at `PATH` (default: from mountinfo; for tests and containers)")
	c.StringVar(&o.ProcRoot, "proc-root", "", "the proc filesystem is at `PATH` (default /proc; for tests and containers)")
	c.BoolVar(&o.MoveOthers, "move-others", false, "describe run --move-others: the container's processes moved out of its cgroup-namespace root first (doctor itself moves nothing)")
	if err := c.parse(args, stdio.Out); err != nil {
		return err
	}
	if c.NArg() > 0 {
		return fail("doctor: unexpected argument %q", c.Arg(0))
	}
	if o.Format != "human" && o.Format != "json" {
		return fail("doctor: --format %q: want human or json", o.Format)
	}
	switch cgroupmon.BackendChoice(o.Backend) {
	case cgroupmon.BackendAuto, cgroupmon.BackendCgroup2, cgroupmon.BackendProcfs:
	default:
		return fail("doctor: --backend %q: want auto, cgroup2 or procfs", o.Backend)
	}
	p, err := cgroupmon.ProbeHost(cgroupmon.Options{
		Backend:     cgroupmon.BackendChoice(o.Backend),
		CgroupRoot:  o.CgroupRoot,
		CgroupMount: o.CgroupMount,
		ProcRoot:    o.ProcRoot,
		MoveOthers:  o.MoveOthers,
	})
	if err != nil {
		return fail("doctor: %v", err)
	}
	d := NewDoctor(p, cgroupmon.BackendChoice(o.Backend))
	if p.Root != "" {
		// Read-only: a stale leaf is one cgmon made whose lock no one holds.
		d.StaleLeaves, _ = cgroupmon.FindStale(p.Root)
	}
	if o.Format == "json" {
		return d.WriteJSON(stdio.Out)
	}
	return d.WriteHuman(stdio.Out)
}

// WriteJSON writes the diagnosis as one indented JSON object.
func (d *Doctor) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, " ")
}

// WriteHuman writes the diagnosis for a person: the host, the source of
// each metric, which limits would work, and every gap with its remedy.
func (d *Doctor) WriteHuman(w io.Writer) error {
	p := d.Probe
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	kv := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	kv("cgroup mode", string(p.Mode))
	kv("cgroup v2 mount", orDash(p.Mount))
	if c := p.Container; c != nil {
		kv("container", describeContainer(c))
	}
	own := orDash(p.OwnCgroup)
	if p.OwnCgroup != "" {
		if p.OwnCgroupDelegated {
			own += " (delegated: writable and holds only cgmon)"
		} else {
			own += " (not delegated)"
		}
	}
	kv("own cgroup", own)
	kv("execution root", orDash(p.Root))
	kv("why", p.RootReason)
	kv("user manager", describeUserManager(p))
	if p.SelfMove {
		kv("self move", "cgmon moves itself into a leaf of its own cgroup first")
	}
	if ip := p.InternalProcesses; ip != nil {
		kv("other processes", describeInternalProcesses(ip))
	}
	kv("backend", string(p.Backend))
	kv("controllers available", orNone(p.Available))
	kv("controllers enabled", orNone(p.Enabled))
	f := p.Features
	kv("features", fmt.Sprintf("memory.peak %s, pids.peak %s, cgroup.kill %s, PSI %s, clone into cgroup %s",
		yesNo(f.MemoryPeak), yesNo(f.PidsPeak), yesNo(f.CgroupKill), yesNo(f.PSI), yesNo(f.CloneIntoCgroup)))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nHow run gets a cgroup (in order):")
	for _, st := range d.RunPath {
		name := st.Name
		if st.Step != "" {
			name = "(" + st.Step + ") " + name
		}
		v := st.State
		if st.Detail != "" {
			v += ": " + st.Detail
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nMetric sources:")
	for _, n := range metrics.Metrics {
		s := p.Sources[n]
		src := "unavailable"
		if len(s.Sources) > 0 {
			src = joinSources(s.Sources)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", n, src, s.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nLimits:")
	for _, l := range d.Limits {
		v := "works"
		if !l.Works {
			v = "no: " + l.Reason
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", l.Flag, l.Controller, v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(d.StaleLeaves) > 0 {
		fmt.Fprintln(w, "\nStale cgroups (their monitor is gone; `cgmon reap`, or the next run, removes them):")
		for _, l := range d.StaleLeaves {
			owner := l.Owner
			if owner == "" {
				owner = "owner unknown (no user xattrs here: known by its name)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d process(es)\n", l.Path, owner, l.Processes)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(p.Gaps) == 0 {
		_, err := fmt.Fprintln(w, "\nGaps: none; every metric is exact and every limit works.")
		return err
	}
	fmt.Fprintln(w, "\nGaps and remedies:")
	for _, g := range p.Gaps {
		fmt.Fprintf(w, "  - %s\n    remedy: %s\n", g.What, g.Remedy)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// describeUserManager says whether the user's systemd instance answered,
// its version and what it would delegate, or why it was not asked.
func describeUserManager(p *cgroupmon.Probe) string {
	um := p.UserManager
	switch {
	case p.Container != nil && p.Container.ReadOnly && p.Mount != "":
		return "not asked: the cgroup v2 mount is read-only, so no scope it handed out could be used"
	case um.Reachable:
		s := "reachable at " + um.Address
		if um.Version != "" {
			s += ", systemd " + um.Version
		}
		if len(um.Delegates) > 0 {
			return s + "; would delegate " + strings.Join(um.Delegates, " ")
		}
		return s + "; what it would delegate is unknown (its user@UID.service cgroup was not found)"
	case um.Reason != "":
		s := "not reachable: " + um.Reason
		if um.Address != "" {
			s = "not reachable at " + um.Address + ": " + um.Reason
		}
		return s
	default:
		return "not asked (run does not need it here)"
	}
}

// joinSources shows the sources a run may record for one metric.
func joinSources(srcs []metrics.Source) string {
	out := make([]string, len(srcs))
	for i, s := range srcs {
		out[i] = string(s)
	}
	return strings.Join(out, " | ")
}

// describeContainer says which container was seen and by which signs.
func describeContainer(c *cgroupmon.Container) string {
	name := c.Runtime
	if name == "" {
		name = "yes"
	}
	if c.ID != "" {
		name += " " + c.ID[:12]
	}
	return name + ": " + strings.Join(c.Signals, "; ")
}

// describeInternalProcesses says what holds the controllers back, and
// what run --move-others does about it.
func describeInternalProcesses(ip *cgroupmon.InternalProcesses) string {
	ctl := strings.Join(ip.Controllers, " ")
	if ip.Move {
		return fmt.Sprintf("run moves the %d processes of %s into %s, then enables %s there (--move-others)", ip.Processes, ip.Cgroup, ip.Sibling, ctl)
	}
	return fmt.Sprintf("%s holds %d processes, so %s cannot be enabled below it; run --move-others would move them into %s", ip.Cgroup, ip.Processes, ctl, ip.Sibling)
}
