package prom

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cgmon/cgmon/metrics"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// ex builds a record of language lang with status st lasting d; mem and
// cpu are measured when >= 0, absent otherwise.
func ex(lang string, st metrics.Status, d time.Duration, mem int64, cpu time.Duration) metrics.Execution {
	e := metrics.Execution{ID: "x", Language: lang, Status: st, StartedAt: t0, EndedAt: t0.Add(d)}
	e.Usage.WallTime = metrics.Measured(d, metrics.SourceMonotonic)
	if mem >= 0 {
		e.Usage.MemoryPeak = metrics.Measured(uint64(mem), metrics.SourceCgroupMemoryPeak)
	} else {
		e.Usage.MemoryPeak = metrics.Unavailable[uint64]("no memory controller")
	}
	if cpu >= 0 {
		e.Usage.CPUTotal = metrics.Measured(cpu, metrics.SourceCgroupCPUStat)
	} else {
		e.Usage.CPUTotal = metrics.Unavailable[time.Duration]("no cpu controller")
	}
	e.OOMKilled = st == metrics.StatusOOM
	e.TimedOut = st == metrics.StatusTimeout
	return e
}

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

func promFixture(t *testing.T) (*metrics.Collector, *metrics.ExecutionMonitor) {
	t.Helper()
	c := metrics.NewCollector()
	c.RecordExecution(ex("python", metrics.StatusSuccess, 3*time.Millisecond, 2<<20, 2*time.Millisecond))
	c.RecordExecution(ex("python", metrics.StatusTimeout, 200*time.Millisecond, 100<<20, 150*time.Millisecond))
	c.RecordExecution(ex("go", metrics.StatusOOM, 1500*time.Millisecond, -1, -1))
	c.RecordExecution(ex("go", "bogus", time.Second, -1, -1))
	m := metrics.NewExecutionMonitor(c)
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
		for _, s := range metrics.Statuses {
			fmt.Fprintf(&b, "cgmon_executions_total{language=%q,status=%q} %d\n", l, s, nonZero[[2]string{l, string(s)}])
		}
	}
	return b.String()
}

func TestPrometheusCompare(t *testing.T) {
	c, m := promFixture(t)
	p := NewCollector(c, m)
	if err := testutil.CollectAndCompare(p, strings.NewReader(expectedProm+expectedExecutionsTotal())); err != nil {
		t.Error(err)
	}
	// Ending the execution moves it from running to the counters.
	if _, err := m.EndExecution("run-1", metrics.StatusSuccess, nil); err != nil {
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
		"full":   NewCollector(c, m),
		"empty":  NewCollector(metrics.NewCollector(), nil),
		"no-mon": NewCollector(c, nil),
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
	reg.MustRegister(NewCollector(c, m))
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
	reg2 := prometheus.NewPedanticRegistry()
	reg2.MustRegister(NewCollector(c, nil))
	if _, err := reg2.Gather(); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(NewCollector(metrics.NewCollector(), nil)); n != 1 {
		t.Errorf("empty collector exposes %d metrics, want only the rejected counter", n)
	}
}

// TestPrometheusConcurrentScrape scrapes while executions are recorded
// (run with -race) and checks the last scrape against what was recorded.
func TestPrometheusConcurrentScrape(t *testing.T) {
	const writers, perWriter = 4, 2000
	c := metrics.NewCollector()
	p := NewCollector(c, nil)
	stop := make(chan struct{})
	scrapes := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				scrapes <- n
				return
			default:
			}
			collectAll(p)
			n++
		}
	}()
	langs := []string{"c", "go"}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				c.RecordExecution(ex(langs[(w+i)%2], metrics.StatusSuccess, time.Millisecond, 1<<20, time.Millisecond))
			}
		}()
	}
	wg.Wait()
	close(stop)
	if n := <-scrapes; n == 0 {
		t.Error("no scrape ran while recording")
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	const each = writers * perWriter / 2
	seen := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "cgmon_executions_total":
				want := 0.0
				if labels["status"] == "success" {
					want = each
				}
				if got := m.GetCounter().GetValue(); got != want {
					t.Errorf("executions_total%v = %v, want %v", labels, got, want)
				}
				seen++
			case "cgmon_execution_duration_seconds", "cgmon_execution_memory_peak_bytes":
				if got := m.GetHistogram().GetSampleCount(); got != each {
					t.Errorf("%s%v count = %d, want %d", mf.GetName(), labels, got, each)
				}
				seen++
			}
		}
	}
	if want := len(langs) * (len(metrics.Statuses) + 2); seen != want {
		t.Errorf("saw %d series, want %d", seen, want)
	}
}

// TestPrometheusFailedToStartAndCPUTimeout checks that an execution that
// failed to start is counted by status but observed in no histogram and no
// CPU counter, even when its record carries measured zeros, and that
// cpu_timeout is a status of its own.
func TestPrometheusFailedToStartAndCPUTimeout(t *testing.T) {
	c := metrics.NewCollector()
	c.RecordExecution(ex("c", metrics.StatusSuccess, 3*time.Millisecond, 2<<20, 2*time.Millisecond))
	c.RecordExecution(ex("c", metrics.StatusFailedToStart, 0, 0, 0))
	c.RecordExecution(ex("c", metrics.StatusCPUTimeout, 2*time.Second, 8<<20, 2*time.Second))
	p := NewCollector(c, nil)
	var want strings.Builder
	want.WriteString(`# HELP cgmon_executions_total Executions recorded, by language and final status.
# TYPE cgmon_executions_total counter
`)
	for _, s := range metrics.Statuses {
		n := 0
		if s == metrics.StatusSuccess || s == metrics.StatusFailedToStart || s == metrics.StatusCPUTimeout {
			n = 1
		}
		fmt.Fprintf(&want, "cgmon_executions_total{language=\"c\",status=%q} %d\n", s, n)
	}
	want.WriteString(`# HELP cgmon_execution_cpu_seconds_total CPU time (user + system) of recorded executions whose CPU time was measured, in seconds.
# TYPE cgmon_execution_cpu_seconds_total counter
cgmon_execution_cpu_seconds_total{language="c"} 2.002
`)
	if err := testutil.CollectAndCompare(p, strings.NewReader(want.String()),
		"cgmon_executions_total", "cgmon_execution_cpu_seconds_total"); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "cgmon_execution_duration_seconds":
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 2 || h.GetSampleSum() != 2.003 || h.GetBucket()[0].GetCumulativeCount() != 1 {
				t.Errorf("duration histogram %v, want the 3 ms and 2 s executions only", h)
			}
		case "cgmon_execution_memory_peak_bytes":
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 2 || h.GetSampleSum() != 10<<20 || h.GetBucket()[0].GetCumulativeCount() != 0 {
				t.Errorf("memory histogram %v, want the 2 MiB and 8 MiB peaks only", h)
			}
		}
	}
}

// TestPrometheusPressureWaits checks that the PSI waits of executions are
// summed per language and resource, and that executions without PSI are
// not counted as a wait of 0.
func TestPrometheusPressureWaits(t *testing.T) {
	c := metrics.NewCollector()
	a := ex("c", metrics.StatusSuccess, time.Second, 2<<20, time.Second)
	a.Usage.CPUWait = metrics.Measured(250*time.Millisecond, metrics.SourceCgroupCPUPressure)
	a.Usage.MemoryWait = metrics.Measured(time.Duration(0), metrics.SourceCgroupMemoryPressure)
	a.Usage.IOWait = metrics.Unavailable[time.Duration]("io.pressure could not be read")
	b := ex("c", metrics.StatusSuccess, time.Second, 2<<20, time.Second)
	b.Usage.CPUWait = metrics.Measured(500*time.Millisecond, metrics.SourceCgroupCPUPressure)
	c.RecordExecution(a)
	c.RecordExecution(b)
	c.RecordExecution(ex("go", metrics.StatusSuccess, time.Second, 2<<20, time.Second)) // no PSI
	want := `# HELP cgmon_execution_pressure_wait_seconds_total Time the executions' tasks waited for a resource (cpu, memory or io), from their cgroups' pressure stall information (PSI); executions without PSI are not counted.
# TYPE cgmon_execution_pressure_wait_seconds_total counter
cgmon_execution_pressure_wait_seconds_total{language="c",resource="cpu"} 0.75
cgmon_execution_pressure_wait_seconds_total{language="c",resource="memory"} 0
`
	if err := testutil.CollectAndCompare(NewCollector(c, nil), strings.NewReader(want), "cgmon_execution_pressure_wait_seconds_total"); err != nil {
		t.Error(err)
	}
}
