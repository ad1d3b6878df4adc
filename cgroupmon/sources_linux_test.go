package cgroupmon

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgmon/cgmon/metrics"
)

// TestRunSourcesAreDoctors: for each backend choice, what a real run
// records as each metric's source is in the set that `cgmon doctor` shows
// (ProbeHost, before anything is prepared) and in the set of the Monitor
// that ran it; a metric without a value has a reason, and never the
// catch-all "not measured". It runs here and in every VM scenario.
func TestRunSourcesAreDoctors(t *testing.T) {
	alloc := wl(t, "alloc")
	for _, backend := range []BackendChoice{BackendAuto, BackendCgroup2, BackendProcfs} {
		t.Run(string(backend), func(t *testing.T) {
			opts := Options{Backend: backend, Interval: 20 * time.Millisecond}
			doctor, err := ProbeHost(opts)
			require.NoError(t, err)
			m, err := New(opts)
			if backend == BackendCgroup2 && doctor.Root == "" && doctor.Path != PathScopePossible {
				// Truly absent: no writable cgroup v2 on this host (the
				// "none" scenario, or a user without delegation).
				require.ErrorIs(t, err, ErrNotDelegated, "backend cgroup2 without a cgroup root must be refused")
				return
			}
			require.NoError(t, err)
			defer func() { require.NoError(t, m.Close()) }()
			for _, cmd := range [][]string{
				{"/bin/true"}, // ends before the first sample
				{"sh", "-c", alloc + " 8 150 & " + alloc + " 4 150; wait"}, // a tree, several samples
			} {
				ex, err := m.Run(t.Context(), Spec{Command: cmd})
				require.NoError(t, err)
				assert.Equal(t, doctor.Backend, ex.Backend, "doctor's backend")
				for _, f := range ex.Usage.Fields() {
					if !f.Valid {
						assert.NotEmpty(t, f.Reason, "%v: %s is absent without a reason", cmd, f.Name)
						assert.NotEqual(t, "not measured", f.Reason, "%v: %s: the catch-all reason", cmd, f.Name)
						continue
					}
					assert.True(t, doctor.Sources[f.Name].Has(f.Source), "%v: %s recorded %s, doctor shows %v", cmd, f.Name, f.Source, doctor.Sources[f.Name].Sources)
					assert.True(t, m.Probe().Sources[f.Name].Has(f.Source), "%v: %s recorded %s, the monitor's table has %v", cmd, f.Name, f.Source, m.Probe().Sources[f.Name].Sources)
				}
			}
		})
	}
}

// TestSourceTableIsComplete: every kind of host gives every metric a row
// with a reason, and a metric without sources is one the kind cannot
// measure.
func TestSourceTableIsComplete(t *testing.T) {
	var kinds []hostKind
	for bits := 0; bits < 1<<6; bits++ {
		on := func(i int) bool { return bits&(1<<i) != 0 }
		k := hostKind{backend: metrics.BackendHybrid, cpu: on(0), memory: on(1), pids: on(2), io: on(3), memoryPeak: on(4), pidsPeak: on(5), where: "/x"}
		if k.memory {
			k.backend = metrics.BackendCgroup2
		}
		kinds = append(kinds, k)
	}
	kinds = append(kinds, hostKind{backend: metrics.BackendProcfs})
	for _, k := range kinds {
		tab := sourcesFor(k)
		require.Len(t, tab, len(metrics.Metrics), "%+v", k)
		for _, m := range metrics.Metrics {
			c, ok := tab[m]
			require.True(t, ok, "%+v: no row for %s", k, m)
			assert.NotEmpty(t, c.Reason, "%+v: %s", k, m)
			assert.NotNil(t, c.Sources, "%+v: %s: JSON shows [] not null", k, m)
		}
		assert.Equal(t, len(tab[metrics.MetricCPUThrottled].Sources) > 0, k.cpu, "%+v: throttling is known exactly when the cpu controller is on", k)
		if k.backend == metrics.BackendCgroup2 && !k.io {
			assert.Empty(t, tab[metrics.MetricIORead].Sources, "%+v: no io controller and no procfs tree: no I/O to read", k)
		}
	}
}
