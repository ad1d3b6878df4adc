package cli

import (
	"flag"
	"io"
	"time"
)

// watchOptions are the flags of `cgmon watch`.
type watchOptions struct {
	Cgroup      string
	PID         int
	Container   string
	CgroupMount string
	Duration    time.Duration
	ID          string
	Language    string
	Interval    time.Duration
	reportFlags
}

const watchSynopsis = "cgmon watch (--cgroup PATH | --pid PID | --container ID) [--duration DURATION] [flags]"

// parseWatchFlags fills watchOptions from args and checks them; nothing is
// attached to or created.
func parseWatchFlags(args []string, help io.Writer) (*watchOptions, error) {
	o := &watchOptions{}
	c := newCommand("watch", watchSynopsis)
	c.StringVar(&o.Cgroup, "cgroup", "", "watch the cgroup v2 directory at `PATH`: absolute, or relative to the cgroup v2 mount as /proc/PID/cgroup shows it (/system.slice/docker-3f2a.scope)")
	c.IntVar(&o.PID, "pid", 0, "watch the process `PID` (its own cgroup, else its process tree)")
	c.StringVar(&o.Container, "container", "", "watch the cgroup of the container with this `ID` or a unique prefix of it (Docker, containerd, CRI-O, Podman)")
	c.StringVar(&o.CgroupMount, "cgroup-mount", "", "the cgroup v2 mount to look in is at `PATH` (default: from mountinfo; e.g. the host's tree mounted into a container)")
	c.DurationVar(&o.Duration, "duration", 0, "stop watching after this `DURATION`; 0 watches until the target ends")
	c.StringVar(&o.ID, "id", "", "record `ID` (default: one unique across processes, in time order, e.g. attach-20261202T140921.290761Z-5f3a9c1e-1)")
	c.StringVar(&o.Language, "language", "unknown", "language `LABEL` of the target")
	c.DurationVar(&o.Interval, "interval", defaultInterval, intervalUsage)
	o.reportFlags.register(c)
	if err := c.parse(args, help); err != nil {
		return nil, err
	}
	if c.NArg() > 0 {
		return nil, fail("watch: unexpected argument %q (%s)", c.Arg(0), watchSynopsis)
	}
	pidSet := false
	c.Visit(func(f *flag.Flag) {
		if f.Name == "pid" {
			pidSet = true
		}
	})
	given := 0
	for _, set := range []bool{o.Cgroup != "", pidSet, o.Container != ""} {
		if set {
			given++
		}
	}
	switch {
	case given > 1:
		return nil, fail("watch: give one of --cgroup, --pid and --container, not several")
	case given == 0:
		return nil, fail("watch: nothing to watch: give --cgroup PATH, --pid PID or --container ID")
	case pidSet && o.PID <= 0:
		return nil, fail("watch: --pid %d: must be a positive process id", o.PID)
	}
	if o.Duration < 0 {
		return nil, fail("watch: --duration %v: must not be negative", o.Duration)
	}
	if err := checkInterval("watch", o.Interval); err != nil {
		return nil, err
	}
	if err := o.reportFlags.check("watch"); err != nil {
		return nil, err
	}
	return o, nil
}
