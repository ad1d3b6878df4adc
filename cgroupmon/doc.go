// Package cgroupmon runs each execution of a user's program in its own
// cgroup v2 leaf, samples it on one shared ticker, and returns an exact,
// labelled record of what it used (metrics.Execution).
//
// A Monitor is made once (New) and runs any number of executions, at once
// or one after the other:
//
//	m, err := cgroupmon.New(cgroupmon.Options{})
//	if err != nil { ... }
//	defer m.Close()
//	ex, err := m.Run(ctx, cgroupmon.Spec{ID: "job-1", Language: "python",
//		Command: []string{"python3", "main.py"}, Timeout: 5 * time.Second})
//
// Run waits; Start returns a Handle to wait on, kill or read live usage
// from. Each execution gets a leaf cgroup under the Monitor's root, with
// the limits of Spec.Limits applied and read back before its first
// instruction runs, or refused with nothing created (the command is
// started inside the leaf with CLONE_INTO_CGROUP). When
// the main process exits, what is left of its tree is killed (or waited
// for, with Spec.WaitAll), the kernel's counters are read, and the record
// is returned and handed to Options.Sink; the emptied leaf is removed at
// the sampler's next tick or by Close.
//
// Every number in the record carries its source ("cgroup2:memory.peak",
// "rusage:maxrss", "sampled:memory.current") or, when it could not be
// measured, the reason; it is never a 0 standing for "unknown". Which
// source each metric comes from depends on the host: ProbeHost (what
// `cgmon doctor` prints) inspects it without changing anything and
// returns, in Probe.Sources, the same table the end of every run reads.
// Where there is no usable cgroup v2 (rootless without delegation, cgroup
// v1) executions run without a cgroup and are measured through /proc and
// rusage (package procfallback), every less exact number labelled so.
//
// Attach watches something cgmon did not start (a container's cgroup, a
// pid) on the same ticker and returns the same record, without writing to
// or killing it.
//
// Errors are sentinels for errors.Is: ErrInvalidSpec and
// ErrControllerUnavailable mean nothing was run; ErrStart means the
// command could not be executed (the record says failed_to_start).
package cgroupmon
