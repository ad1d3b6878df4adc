package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// collectAll drains one Collect of p.
func collectAll(p prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() { p.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

func promFixture(t *testing.T) (*Collector, *ExecutionMonitor) {
	t.Helper()
	c := NewCollector()
	c.RecordExecution(ex("python", StatusSuccess, 3*time.Millisecond, 2<<20, 2*time.Millisecond))
	c.RecordExecution(ex("python", StatusTimeout, 200*time.Millisecond, 100<<20, 150*time.Millisecond))
	c.RecordExecution(ex("go", StatusOOM, 1500*time.Millisecond, -1, -1))
	c.RecordExecution(ex("go", "bogus", time.Second, -1, -1))
	m := NewExecutionMonitor(c)
	if err := m.StartExecution("run-1", "go", 10); err != nil {
		t.Fatal(err)
	}
	return c, m
}

// expectedProm is worked out by hand from promFixture: python 3 ms and
// 200 ms (2 MiB and 100 MiB, 0.152 s CPU), go 1.5 s with nothing measured.
const expectedProm = `
# HELP cgmon_collector_rejected_records_total Execution records the collector refused (unknown status, negative time).
# TYPE cgmon_collector_rejected_records_total counter
cgmon_collector_rejected_records_total 1
# HELP cgmon_execution_cpu_seconds_total CPU time (user + system) of recorded executions whose CPU time was measured, in seconds.
# TYPE cgmon_execution_cpu_seconds_total counter
cgmon_execution_cpu_seconds_total{language="go"} 0
cgmon_execution_cpu_seconds_total{language="python"} 0.152
# HELP cgmon_execution_duration_seconds Wall-clock execution time of recorded executions, in seconds.
# TYPE cgmon_execution_duration_seconds histogram
cgmon_execution_duration_seconds_bucket{language="go",le="0.005"} 0
cgmon_execution_duration_seconds_bucket{language="go",le="0.01"} 0
cgmon_execution_duration_seconds_bucket{language="go",le="0.025"} 0
cgmon_execution_duration_seconds_bucket{language="go",le="0.05"} 0
cgmon_execution_duration_seconds_bucket{language="go",le="0.1"} 0
cgmon_execution_duration_seconds_bucket{language="go",le="0.25"} 0
cgmon_execution_duration_seconds_bucket{language="go",le="0.5"} 0
cgmon_execution_duration_seconds_bucket{language="go",le="1"} 0
cgmon_execution_duration_seconds_bucket{language="go",le="2.5"} 1
cgmon_execution_duration_seconds_bucket{language="go",le="5"} 1
cgmon_execution_duration_seconds_bucket{language="go",le="10"} 1
cgmon_execution_duration_seconds_bucket{language="go",le="30"} 1
cgmon_execution_duration_seconds_bucket{language="go",le="60"} 1
cgmon_execution_duration_seconds_bucket{language="go",le="+Inf"} 1
cgmon_execution_duration_seconds_sum{language="go"} 1.5
cgmon_execution_duration_seconds_count{language="go"} 1
cgmon_execution_duration_seconds_bucket{language="python",le="0.005"} 1
cgmon_execution_duration_seconds_bucket{language="python",le="0.01"} 1
cgmon_execution_duration_seconds_bucket{language="python",le="0.025"} 1
cgmon_execution_duration_seconds_bucket{language="python",le="0.05"} 1
cgmon_execution_duration_seconds_bucket{language="python",le="0.1"} 1
cgmon_execution_duration_seconds_bucket{language="python",le="0.25"} 2
cgmon_execution_duration_seconds_bucket{language="python",le="0.5"} 2
cgmon_execution_duration_seconds_bucket{language="python",le="1"} 2
cgmon_execution_duration_seconds_bucket{language="python",le="2.5"} 2
cgmon_execution_duration_seconds_bucket{language="python",le="5"} 2
cgmon_execution_duration_seconds_bucket{language="python",le="10"} 2
cgmon_execution_duration_seconds_bucket{language="python",le="30"} 2
cgmon_execution_duration_seconds_bucket{language="python",le="60"} 2
cgmon_execution_duration_seconds_bucket{language="python",le="+Inf"} 2
cgmon_execution_duration_seconds_sum{language="python"} 0.203
cgmon_execution_duration_seconds_count{language="python"} 2
# HELP cgmon_execution_memory_peak_bytes Peak memory of recorded executions whose peak was measured, in bytes.
# TYPE cgmon_execution_memory_peak_bytes histogram
cgmon_execution_memory_peak_bytes_bucket{language="go",le="1048576"} 0
cgmon_execution_memory_peak_bytes_bucket{language="go",le="4194304"} 0
cgmon_execution_memory_peak_bytes_bucket{language="go",le="16777216"} 0
cgmon_execution_memory_peak_bytes_bucket{language="go",le="67108864"} 0
cgmon_execution_memory_peak_bytes_bucket{language="go",le="268435456"} 0
cgmon_execution_memory_peak_bytes_bucket{language="go",le="1073741824"} 0
cgmon_execution_memory_peak_bytes_bucket{language="go",le="4294967296"} 0
cgmon_execution_memory_peak_bytes_bucket{language="go",le="17179869184"} 0
cgmon_execution_memory_peak_bytes_bucket{language="go",le="+Inf"} 0
cgmon_execution_memory_peak_bytes_sum{language="go"} 0
cgmon_execution_memory_peak_bytes_count{language="go"} 0
cgmon_execution_memory_peak_bytes_bucket{language="python",le="1048576"} 0
cgmon_execution_memory_peak_bytes_bucket{language="python",le="4194304"} 1
cgmon_execution_memory_peak_bytes_bucket{language="python",le="16777216"} 1
cgmon_execution_memory_peak_bytes_bucket{language="python",le="67108864"} 1
cgmon_execution_memory_peak_bytes_bucket{language="python",le="268435456"} 2
cgmon_execution_memory_peak_bytes_bucket{language="python",le="1073741824"} 2
cgmon_execution_memory_peak_bytes_bucket{language="python",le="4294967296"} 2
cgmon_execution_memory_peak_bytes_bucket{language="python",le="17179869184"} 2
cgmon_execution_memory_peak_bytes_bucket{language="python",le="+Inf"} 2
cgmon_execution_memory_peak_bytes_sum{language="python"} 106954752
cgmon_execution_memory_peak_bytes_count{language="python"} 2
# HELP cgmon_execution_oom_kills_total Recorded executions in which the kernel's OOM killer killed a process.
# TYPE cgmon_execution_oom_kills_total counter
cgmon_execution_oom_kills_total{language="go"} 1
cgmon_execution_oom_kills_total{language="python"} 0
# HELP cgmon_executions_running Executions started and not yet ended.
# TYPE cgmon_executions_running gauge
cgmon_executions_running 1
`

// expectedExecutionsTotal is cgmon_executions_total for promFixture: one
// series per language and status, zero except those in nonZero.
func expectedExecutionsTotal() string {
	nonZero := map[[2]string]int{
		{"go", "oom"}: 1, {"python", "success"}: 1, {"python", "timeout"}: 1,
	}
	var b strings.Builder
	b.WriteString("# HELP cgmon_executions_total Executions recorded, by language and final status.\n")
	b.WriteString("# TYPE cgmon_executions_total counter\n")
	for _, l := range []string{"go", "python"} {
		for _, s := range Statuses {
			fmt.Fprintf(&b, "cgmon_executions_total{language=%q,status=%q} %d\n", l, s, nonZero[[2]string{l, string(s)}])
		}
	}
	return b.String()
}

func TestPrometheusCompare(t *testing.T) {
	c, m := promFixture(t)
	p := NewPrometheusCollector(c, m)
	if err := testutil.CollectAndCompare(p, strings.NewReader(expectedProm+expectedExecutionsTotal())); err != nil {
		t.Error(err)
	}
	// Ending the execution moves it from running to the counters.
	if _, err := m.EndExecution("run-1", StatusSuccess, nil); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(p, strings.NewReader(`
# HELP cgmon_executions_running Executions started and not yet ended.
# TYPE cgmon_executions_running gauge
cgmon_executions_running 0
`), "cgmon_executions_running"); err != nil {
		t.Error(err)
	}
}

func TestPrometheusLint(t *testing.T) {
	c, m := promFixture(t)
	for name, p := range map[string]prometheus.Collector{
		"full":   NewPrometheusCollector(c, m),
		"empty":  NewPrometheusCollector(NewCollector(), nil),
		"no-mon": NewPrometheusCollector(c, nil),
	} {
		problems, err := testutil.CollectAndLint(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, pr := range problems {
			t.Errorf("%s: lint: %s: %s", name, pr.Metric, pr.Text)
		}
	}
	// Registering checks Describe against Collect.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewPrometheusCollector(c, m))
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
	reg2 := prometheus.NewPedanticRegistry()
	reg2.MustRegister(NewPrometheusCollector(c, nil))
	if _, err := reg2.Gather(); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(NewPrometheusCollector(NewCollector(), nil)); n != 1 {
		t.Errorf("empty collector exposes %d metrics, want only the rejected counter", n)
	}
}

// TestHistogramBucketBoundaries checks that a value equal to a bucket's
// upper bound falls in that bucket (Prometheus's le), and above the last
// one only in +Inf.
func TestHistogramBucketBoundaries(t *testing.T) {
	c := NewCollector()
	c.RecordExecution(ex("go", StatusSuccess, 5*time.Millisecond, 1<<20, -1))
	c.RecordExecution(ex("go", StatusSuccess, 60*time.Second, 16<<30, -1))
	c.RecordExecution(ex("go", StatusSuccess, 61*time.Second, 16<<30+1, -1))
	langs, _ := c.snapshot(false)
	a := langs[0].agg
	last := len(DurationBuckets) - 1
	if a.durBuckets[0] != 1 || a.durBuckets[last] != 1 || a.count()-cumulative(DurationBuckets[:], a.durBuckets[:])[DurationBuckets[last]] != 1 {
		t.Errorf("duration buckets %v", a.durBuckets)
	}
	lastM := len(MemoryBuckets) - 1
	if a.memBuckets[0] != 1 || a.memBuckets[lastM] != 1 || a.memCount-cumulative(MemoryBuckets[:], a.memBuckets[:])[MemoryBuckets[lastM]] != 1 {
		t.Errorf("memory buckets %v", a.memBuckets)
	}
}
