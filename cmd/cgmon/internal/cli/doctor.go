package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
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

// Doctor is the JSON form of `cgmon doctor`: the host probe plus which
// limits would work.
type Doctor struct {
	SchemaVersion int `json:"schema_version"`
	*cgroupmon.Probe
	Limits []LimitSupport `json:"limits"`
}

// limitKinds are the limits cgmon can apply, in the order doctor lists them.
var limitKinds = []struct{ flag, controller string }{
	{"--memory-max", "memory"},
	{"--cpus", "cpu"},
	{"--pids-max", "pids"},
	{"--limits (blockIO)", "io"},
	{"--limits (cpu.cpus, cpu.mems)", "cpuset"},
}

// NewDoctor describes p.
func NewDoctor(p *cgroupmon.Probe) *Doctor {
	d := &Doctor{SchemaVersion: SchemaVersion, Probe: p}
	for _, k := range limitKinds {
		ls := LimitSupport{Flag: k.flag, Controller: k.controller}
		switch {
		case p.Root == "":
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
	c.StringVar(&o.Format, "format", "human", "output format: human or json")
	c.StringVar(&o.Backend, "backend", string(cgroupmon.BackendAuto), "backend to diagnose: auto, cgroup2 or procfs")
	c.StringVar(&o.CgroupRoot, "cgroup-root", "", "diagnose this cgroup root instead of the default")
	c.StringVar(&o.CgroupMount, "cgroup-mount", "", "cgroup v2 mount `point` (default: from mountinfo; for tests and containers)")
	c.StringVar(&o.ProcRoot, "proc-root", "", "proc filesystem `root` (default /proc; for tests and containers)")
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
	})
	if err != nil {
		return fail("doctor: %v", err)
	}
	d := NewDoctor(p)
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
	if p.SelfMove {
		kv("self move", "cgmon moves itself into a leaf of its own cgroup first")
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

	fmt.Fprintln(w, "\nMetric sources:")
	names := make([]string, 0, len(p.Sources))
	for n := range p.Sources {
		names = append(names, n)
	}
	order := map[string]int{}
	for i, f := range (&metrics.Usage{}).Fields() {
		order[f.Name] = i
	}
	sort.Slice(names, func(i, j int) bool {
		oi, iok := order[names[i]]
		oj, jok := order[names[j]]
		if iok != jok {
			return iok
		}
		if oi != oj {
			return oi < oj
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		s := p.Sources[n]
		src := string(s.Source)
		if src == "" {
			src = "unavailable"
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
