package cli

import (
	"context"
	"syscall"

	"github.com/cgmon/cgmon/cgroupmon"
)

// watchMain attaches to a cgroup, a process or a container's cgroup,
// watches it until it ends, --duration passes or cgmon is interrupted, and
// reports it as `run` does.
// Watching is read-only: nothing is limited, written, moved or killed.
func watchMain(args []string, stdio IO) (int, error) {
	o, err := parseWatchFlags(args, stdio.Out)
	if err != nil {
		return 0, err
	}
	// The procfs backend keeps New from preparing an execution root
	// (creating <mount>/cgmon, moving cgmon into a leaf or asking systemd
	// for a scope): watch starts nothing, so it needs none. Attach reads
	// the target's own cgroup files whatever the backend.
	mon, err := cgroupmon.New(cgroupmon.Options{Interval: o.Interval, Backend: cgroupmon.BackendProcfs, CgroupMount: o.CgroupMount})
	if err != nil {
		return 0, fail("watch: %v", err)
	}
	defer mon.Close()

	// SIGINT and SIGTERM to cgmon stop the watch (never the target): the
	// report is written and cgmon exits 130 or 143.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := catchSignals(cancel)
	defer signals.release()

	h, err := mon.Attach(ctx, cgroupmon.Target{
		CgroupPath:  o.Cgroup,
		PID:         o.PID,
		ContainerID: o.Container,
		ID:          o.ID,
		Language:    o.Language,
		Duration:    o.Duration,
		KeepSamples: o.keepSamples(),
	})
	if err != nil {
		signals.stop()
		return 0, fail("watch: %v", err)
	}
	// The files are created once the target is known to exist, so that a
	// bad target leaves nothing behind.
	out, err := openOutputs("watch", o.reportFlags)
	if err != nil {
		_ = h.Kill() // stops the watch only
		_, _ = h.Wait()
		signals.stop()
		return 0, err
	}
	defer out.close()

	ex, waitErr := h.Wait()
	sig := signals.stop()
	if err := out.write("watch", o.reportFlags, &ex, stdio); err != nil {
		return 0, err
	}
	if waitErr != nil {
		return 0, fail("watch: %v", waitErr)
	}
	if s, ok := sig.(syscall.Signal); ok {
		return exitSignalBase + int(s), nil
	}
	return 0, nil
}
