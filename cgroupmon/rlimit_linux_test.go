package cgroupmon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

// limitsLine returns the line of /proc/self/limits, as the child printed
// it, that starts with name.
func limitsLine(t *testing.T, out, name string) string {
	t.Helper()
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, name) {
			return strings.Join(strings.Fields(strings.TrimPrefix(l, name)), " ")
		}
	}
	t.Fatalf("no %q line in the child's limits:\n%s", name, out)
	return ""
}

// TestRlimitsInForceAtFirstInstruction checks that the child's own reads
// of its limits (the kernel's /proc/self/limits, read by cat as its work,
// and the shell's ulimit) see the spec's rlimits, on every start path:
// the direct one, the gated one, and the procfs backend's.
func TestRlimitsInForceAtFirstInstruction(t *testing.T) {
	rl := []specs.POSIXRlimit{
		{Type: "RLIMIT_NOFILE", Soft: 37, Hard: 41},
		{Type: "RLIMIT_FSIZE", Soft: 1 << 20, Hard: 2 << 20},
		{Type: "RLIMIT_CORE", Soft: 0, Hard: 0},
	}
	for _, c := range []struct {
		name   string
		opts   Options
		gated  bool
		wantGt bool
	}{
		{name: "auto", opts: Options{}},
		{name: "gated", opts: Options{}, gated: true},
		{name: "procfs", opts: Options{Backend: BackendProcfs, Subreaper: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMonitor(t, c.opts)
			if c.gated {
				if m.rootPath() == "" {
					t.Skipf("no writable cgroup v2 here: %s", m.probe.RootReason)
				}
				m.forceGated = true
			}
			var out bytes.Buffer
			ex := mustRun(t, m, Spec{Command: []string{"cat", "/proc/self/limits"}, Rlimits: rl, Stdout: &out})
			require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
			assert.Equal(t, "37 41 files", limitsLine(t, out.String(), "Max open files"))
			assert.Equal(t, "1048576 2097152 bytes", limitsLine(t, out.String(), "Max file size"))
			assert.Equal(t, "0 0 bytes", limitsLine(t, out.String(), "Max core file size"))
			if c.gated {
				assert.True(t, ex.StartedAt.Before(ex.EndedAt))
			}

			out.Reset()
			ex = mustRun(t, m, Spec{Command: []string{"/bin/sh", "-c", "ulimit -n; ulimit -Hn"}, Rlimits: rl[:1], Stdout: &out})
			require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
			assert.Equal(t, "37\n41\n", out.String())
		})
	}
}

// TestNoRlimitsKeepsTheUsualStart checks that a spec without rlimits is
// neither traced nor given other limits: its child has cgmon's own
// RLIMIT_FSIZE and RLIMIT_CORE, and the start is not the gated one where
// CLONE_INTO_CGROUP works.
func TestNoRlimitsKeepsTheUsualStart(t *testing.T) {
	m := newMonitor(t, Options{})
	var out bytes.Buffer
	h, err := m.Start(context.Background(), Spec{Command: []string{"cat", "/proc/self/status", "/proc/self/limits"}, Stdout: &out})
	require.NoError(t, err)
	ex, err := h.Wait()
	require.NoError(t, err)
	require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
	assert.Contains(t, out.String(), "TracerPid:\t0\n")
	var own unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_CORE, &own))
	assert.Equal(t, strings.Fields(limitsLine(t, out.String(), "Max core file size"))[0], rlimitValue(own.Cur))
	// The container scenarios refuse clone3 (Docker's seccomp answers
	// ENOSYS), so every start there is gated, rlimits or not.
	if m.rootPath() != "" && !m.forceGated && !strings.HasPrefix(scenario, "container-") {
		assert.False(t, h.r.gated && m.probe.Features.CloneIntoCgroup, "a spec without rlimits must keep the direct start")
	}
}

// TestRlimitFsizeStopsAWriter checks the acceptance line: an RLIMIT_FSIZE
// of 1 MiB stops `head -c 5242880 /dev/zero` (5 MiB; busybox's head takes no M) writing to a file, which holds
// exactly 1 MiB, and the record says which limit it was.
func TestRlimitFsizeStopsAWriter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs})
		f, err := os.Create(filepath.Join(t.TempDir(), "out"))
		require.NoError(t, err)
		defer f.Close()
		ex := mustRun(t, m, Spec{
			Command: []string{"head", "-c", "5242880", "/dev/zero"},
			Stdout:  f,
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_FSIZE", Soft: 1 << 20, Hard: 1 << 20}},
		})
		assert.Equal(t, metrics.StatusSignaled, ex.Status)
		assert.Equal(t, int(unix.SIGXFSZ), ex.Signal)
		assert.Contains(t, ex.Reason, "the output file limit (RLIMIT_FSIZE 1 MiB) was reached")
		st, err := f.Stat()
		require.NoError(t, err)
		assert.Equal(t, int64(1<<20), st.Size())
	})
}

// TestSignalWithoutRlimitKeepsItsName checks that SIGXFSZ is only
// explained by a limit the spec set.
func TestSignalWithoutRlimitKeepsItsName(t *testing.T) {
	assert.Equal(t, "", signalReason(unix.SIGXFSZ, nil))
	assert.Equal(t, "", signalReason(unix.SIGKILL, []specs.POSIXRlimit{{Type: "RLIMIT_FSIZE", Soft: 1, Hard: 1}}))
	assert.Contains(t, signalReason(unix.SIGXCPU, []specs.POSIXRlimit{{Type: "RLIMIT_CPU", Soft: 2, Hard: 3}}), "RLIMIT_CPU 2 s")
	assert.Equal(t, "1536 KiB", byteSize(1536<<10))
	assert.Equal(t, "100 bytes", byteSize(100))
	assert.Equal(t, "unlimited", byteSize(RlimitInfinity))
}

// TestBadRlimitsAreRefused checks that each bad rlimit is refused before
// anything runs, with an error naming the entry.
func TestBadRlimitsAreRefused(t *testing.T) {
	m := newMonitor(t, Options{})
	marker := filepath.Join(t.TempDir(), "ran")
	type badRlimit struct {
		rl   []specs.POSIXRlimit
		kind error
		want string
	}
	cases := []badRlimit{
		{[]specs.POSIXRlimit{{Type: "RLIMIT_BOGUS", Soft: 1, Hard: 1}}, ErrInvalidSpec, `rlimits[0]: unknown type "RLIMIT_BOGUS"`},
		{[]specs.POSIXRlimit{{Type: "nofile", Soft: 1, Hard: 1}}, ErrInvalidSpec, `unknown type "nofile"`},
		{[]specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 5}}, ErrInvalidSpec, "rlimits[0] RLIMIT_NOFILE: soft limit 10 is above the hard limit 5"},
		{[]specs.POSIXRlimit{{Type: "RLIMIT_CORE", Soft: 0, Hard: 0}, {Type: "RLIMIT_CORE", Soft: 0, Hard: 0}}, ErrInvalidSpec, "rlimits[1] RLIMIT_CORE: given twice"},
		{[]specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: RlimitInfinity, Hard: RlimitInfinity}}, ErrInvalidSpec, "unlimited RLIMIT_NOFILE"},
		{[]specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1 << 40, Hard: 1 << 40}}, ErrInvalidSpec, "fs.nr_open"},
	}
	var own unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &own))
	if max, err := nrOpen(); err == nil && !hasSysResource() && own.Max < max {
		cases = append(cases, badRlimit{[]specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 0, Hard: own.Max + 1}}, ErrLimitUnsupported, "only a process with CAP_SYS_RESOURCE may raise it"})
	}
	for _, c := range cases {
		ex, err := m.Run(context.Background(), Spec{Command: []string{"touch", marker}, Rlimits: c.rl})
		require.Error(t, err, "%v", c.rl)
		assert.True(t, errors.Is(err, c.kind), "%v", err)
		assert.Contains(t, err.Error(), c.want)
		assert.True(t, ex.StartedAt.IsZero())
		assert.NoFileExists(t, marker, "nothing may run")
	}
}

// TestRlimitRefusedByTheKernelRunsNothing checks the path where the
// kernel refuses a limit on the held child (here RLIMIT_NOFILE above
// fs.nr_open, with the check before the start turned off, as when
// fs.nr_open changes in between): the child is killed before its first
// instruction, the error says so, and nothing is left.
func TestRlimitRefusedByTheKernelRunsNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend BackendChoice) {
		m := newMonitor(t, Options{Backend: backend, Subreaper: backend == BackendProcfs})
		m.rlimitsUnchecked = true
		marker := filepath.Join(t.TempDir(), "ran")
		max, err := nrOpen()
		require.NoError(t, err)
		ex, err := m.Run(context.Background(), Spec{
			Command: []string{"touch", marker},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_CORE", Soft: 0, Hard: 0}, {Type: "RLIMIT_NOFILE", Soft: max + 1, Hard: max + 1}},
		})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "setting RLIMIT_NOFILE on the execution")
		assert.Contains(t, err.Error(), "nothing of the command ran")
		assert.False(t, errors.Is(err, ErrStart), "a refused limit is cgmon's failure, not the command's")
		assert.True(t, ex.StartedAt.IsZero())
		assert.NoFileExists(t, marker, "nothing may run")
	})
}

// BenchmarkRunTrueRlimits is what rlimits cost a start: every iteration
// runs /bin/true without rlimits (the usual start), with one (RLIMIT_CORE
// 0: the held start, one prlimit and its read-back) and with four, in
// turn, and it reports the median of each and the ratios to the usual
// start.
func BenchmarkRunTrueRlimits(b *testing.B) {
	m, err := New(Options{})
	require.NoError(b, err)
	defer m.Close()
	ctx := context.Background()
	one := []specs.POSIXRlimit{{Type: "RLIMIT_CORE", Soft: 0, Hard: 0}}
	four := append(slices.Clone(one),
		specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 64, Hard: 64},
		specs.POSIXRlimit{Type: "RLIMIT_FSIZE", Soft: 1 << 20, Hard: 1 << 20},
		specs.POSIXRlimit{Type: "RLIMIT_STACK", Soft: 8 << 20, Hard: 8 << 20})
	var times [3][]time.Duration
	i := 0
	for b.Loop() {
		for k := range 3 {
			k = (k + i) % 3 // each kind goes first in turn
			var rl []specs.POSIXRlimit
			switch k {
			case 1:
				rl = one
			case 2:
				rl = four
			}
			t0 := time.Now()
			if _, err := m.Run(ctx, Spec{Command: []string{"/bin/true"}, Rlimits: rl}); err != nil {
				b.Fatal(err)
			}
			times[k] = append(times[k], time.Since(t0))
		}
		i++
	}
	none, m1, m4 := median(times[0]), median(times[1]), median(times[2])
	b.ReportMetric(float64(none.Microseconds()), "none-µs")
	b.ReportMetric(float64(m1.Microseconds()), "one-µs")
	b.ReportMetric(float64(m4.Microseconds()), "four-µs")
	b.ReportMetric(float64(m1)/float64(none), "one-ratio")
	b.ReportMetric(float64(m4)/float64(none), "four-ratio")
}
