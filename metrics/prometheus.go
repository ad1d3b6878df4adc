package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// PrometheusCollector exposes a Collector (and optionally an
// ExecutionMonitor's running count) as Prometheus metrics. Its labels are
// language and status only, never execution ids; the number of languages
// is bounded by WithMaxLanguages. The counters restart from zero after
// Collector.Clear, which Prometheus's rate() treats as a counter reset.
//
// Metrics:
//
//	cgmon_executions_total{language,status}            counter
//	cgmon_execution_duration_seconds{language}          histogram (DurationBuckets)
//	cgmon_execution_cpu_seconds_total{language}         counter, executions with measured CPU only
//	cgmon_execution_memory_peak_bytes{language}         histogram (MemoryBuckets), measured peaks only
//	cgmon_execution_oom_kills_total{language}           counter of executions with OOMKilled
//	cgmon_collector_rejected_records_total              counter
//	cgmon_executions_running                            gauge, when a monitor is given
type PrometheusCollector struct {
	c *Collector
	m *ExecutionMonitor
}

var (
	descExecutions = prometheus.NewDesc("cgmon_executions_total",
		"Executions recorded, by language and final status.",
		[]string{"language", "status"}, nil)
	descDuration = prometheus.NewDesc("cgmon_execution_duration_seconds",
		"Wall-clock execution time of recorded executions, in seconds.",
		[]string{"language"}, nil)
	descCPU = prometheus.NewDesc("cgmon_execution_cpu_seconds_total",
		"CPU time (user + system) of recorded executions whose CPU time was measured, in seconds.",
		[]string{"language"}, nil)
	descMemory = prometheus.NewDesc("cgmon_execution_memory_peak_bytes",
		"Peak memory of recorded executions whose peak was measured, in bytes.",
		[]string{"language"}, nil)
	descOOM = prometheus.NewDesc("cgmon_execution_oom_kills_total",
		"Recorded executions in which the kernel's OOM killer killed a process.",
		[]string{"language"}, nil)
	descRejected = prometheus.NewDesc("cgmon_collector_rejected_records_total",
		"Execution records the collector refused (unknown status, negative time).",
		nil, nil)
	descRunning = prometheus.NewDesc("cgmon_executions_running",
		"Executions started and not yet ended.",
		nil, nil)
)

// NewPrometheusCollector returns a prometheus.Collector over c; m may be
// nil, in which case cgmon_executions_running is not exposed. Register it
// with prometheus.MustRegister or a Registry.
func NewPrometheusCollector(c *Collector, m *ExecutionMonitor) *PrometheusCollector {
	return &PrometheusCollector{c: c, m: m}
}

// Describe sends the descriptors of every metric p can expose.
func (p *PrometheusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descExecutions
	ch <- descDuration
	ch <- descCPU
	ch <- descMemory
	ch <- descOOM
	ch <- descRejected
	if p.m != nil {
		ch <- descRunning
	}
}

// Collect sends the current value of every metric. It reads the Collector
// without its sketches, so a scrape costs a few counters per language.
func (p *PrometheusCollector) Collect(ch chan<- prometheus.Metric) {
	langs, rejected := p.c.snapshot(false)
	for i := range langs {
		l, a := langs[i].name, &langs[i].agg
		for si, s := range Statuses {
			ch <- prometheus.MustNewConstMetric(descExecutions, prometheus.CounterValue,
				float64(a.statusCounts[si]), l, string(s))
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, a.count(), a.totalTime.Seconds(),
			cumulative(DurationBuckets[:], a.durBuckets[:]), l)
		ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, a.cpuTotal.Seconds(), l)
		ch <- prometheus.MustNewConstHistogram(descMemory, a.memCount, a.memSum,
			cumulative(MemoryBuckets[:], a.memBuckets[:]), l)
		ch <- prometheus.MustNewConstMetric(descOOM, prometheus.CounterValue, float64(a.oomCount), l)
	}
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(rejected))
	if p.m != nil {
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(p.m.Running()))
	}
}

// cumulative turns per-bucket counts into Prometheus's cumulative buckets.
func cumulative(bounds []float64, counts []uint64) map[float64]uint64 {
	out := make(map[float64]uint64, len(bounds))
	var sum uint64
	for i, ub := range bounds {
		sum += counts[i]
		out[ub] = sum
	}
	return out
}
