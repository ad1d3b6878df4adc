package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/cgmon/cgmon/cgroupmon"
)

// reapOptions are the flags of `cgmon reap`.
type reapOptions struct {
	Format     string
	CgroupRoot string
}

// reapMain is `cgmon reap`: it removes the stale cgroups under the
// execution root (those of cgmon processes that died, with every process
// still in them) and says what it removed. An operator runs it from a
// timer or at boot; every run, batch and watch does the same at its start.
func reapMain(args []string, stdio IO) error {
	o := &reapOptions{}
	c := newCommand("reap", "cgmon reap [--cgroup-root PATH] [--format json]")
	c.StringVar(&o.Format, "format", "human", "output format: human or json")
	c.StringVar(&o.CgroupRoot, "cgroup-root", "", "the cgroup `root` to reap (default: the one run uses, as doctor shows)")
	if err := c.parse(args, stdio.Out); err != nil {
		return err
	}
	if c.NArg() > 0 {
		return fail("reap: unexpected argument %q", c.Arg(0))
	}
	if o.Format != "human" && o.Format != "json" {
		return fail("reap: --format %q: want human or json", o.Format)
	}
	r, err := cgroupmon.Reap(cgroupmon.Options{CgroupRoot: o.CgroupRoot})
	if err != nil && len(r.Failed) == 0 {
		return fail("reap: %v", err) // nothing was reaped
	}
	if werr := writeReaped(stdio.Out, o.Format, r); werr != nil {
		return werr
	}
	if err != nil {
		// Some stale cgroups are left (a process that would not die):
		// the next reaping tries again.
		return &exitError{code: 1, err: fmt.Errorf("reap: %w", err)}
	}
	return nil
}

// writeReaped says what Reap removed: one line per cgroup, or JSON.
func writeReaped(w io.Writer, format string, r cgroupmon.Reaped) error {
	if format == "json" {
		if r.Leaves == nil {
			r.Leaves = []cgroupmon.StaleLeaf{}
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	if len(r.Leaves) == 0 {
		_, err := fmt.Fprintf(w, "nothing to reap under %s\n", r.Root)
		return err
	}
	fmt.Fprintf(w, "reaped %d stale cgroup(s) under %s, %d process(es) killed:\n", len(r.Leaves), r.Root, r.ProcessesKilled)
	for _, l := range r.Leaves {
		owner := l.Owner
		if owner == "" {
			owner = "owner unknown"
		}
		fmt.Fprintf(w, "  %s (%s; %d process(es))\n", l.Path, owner, l.Processes)
	}
	return nil
}

// reportReaped prints on w the one line that says what a monitor's New
// reaped, if anything.
func reportReaped(w io.Writer, mon *cgroupmon.Monitor) {
	if s := mon.Reaped().String(); s != "" {
		fmt.Fprintf(w, "cgmon: %s\n", s)
	}
}
