// Package cgroupmon runs each execution of a user's program in its own
// cgroup v2 leaf, samples it on one shared ticker and returns an exact,
// labelled metrics.Execution. Where the host has no usable cgroup v2 it
// falls back to procfallback, and labels every number that is less exact.
//
//	m, err := cgroupmon.New(cgroupmon.Options{})
//	if err != nil { ... }
//	defer m.Close()
//	ex, err := m.Run(ctx, cgroupmon.Spec{ID: "job-1", Language: "python",
//		Command: []string{"python3", "main.py"}, Timeout: 5 * time.Second})
package cgroupmon
