// Package prom exposes a metrics.Collector to Prometheus. It is a package
// of its own so that only the programs that serve Prometheus link its
// client library: importing metrics or cgroupmon does not.
//
// Labels are language and status only, never execution ids; the number of
// languages is bounded by metrics.WithMaxLanguages. The counters restart
// from zero after metrics.Collector.Clear, which Prometheus's rate() treats
// as a counter reset.
//
// Metrics:
//
//	cgmon_executions_total{language,status}            counter
//	cgmon_execution_duration_seconds{language}          histogram (metrics.DurationBuckets)
//	cgmon_execution_cpu_seconds_total{language}         counter, executions with measured CPU only
//	cgmon_execution_memory_peak_bytes{language}         histogram (metrics.MemoryBuckets), measured peaks only
//	cgmon_execution_oom_kills_total{language}           counter of executions with OOMKilled
//	cgmon_collector_rejected_records_total              counter
//	cgmon_executions_running                            gauge, when a monitor is given
package prom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cgmon/cgmon/metrics"
)

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
	descWait = prometheus.NewDesc("cgmon_execution_pressure_wait_seconds_total",
		"Time the executions' tasks waited for a resource (cpu, memory or io), from their cgroups' pressure stall information (PSI); executions without PSI are not counted.",
		[]string{"language", "resource"}, nil)
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

// collector is the prometheus.Collector that NewCollector returns.
type collector struct {
	c *metrics.Collector
	m *metrics.ExecutionMonitor
}

// NewCollector returns a prometheus.Collector over coll; em may be nil, in
// which case cgmon_executions_running is not exposed. Register it with a
// prometheus.Registry (or prometheus.MustRegister) and serve the registry
// with promhttp.HandlerFor.
func NewCollector(coll *metrics.Collector, em *metrics.ExecutionMonitor) prometheus.Collector {
	return &collector{c: coll, m: em}
}

// Describe sends the descriptors of every metric p can expose.
func (p *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descExecutions
	ch <- descDuration
	ch <- descCPU
	ch <- descMemory
	ch <- descOOM
	ch <- descWait
	ch <- descRejected
	if p.m != nil {
		ch <- descRunning
	}
}

// Collect sends the current value of every metric. It reads the
// Collector's counters only (metrics.Collector.Counters), so a scrape costs
// a few counters per language.
func (p *collector) Collect(ch chan<- prometheus.Metric) {
	langs, rejected := p.c.Counters()
	for i := range langs {
		l := &langs[i]
		for _, s := range metrics.Statuses {
			ch <- prometheus.MustNewConstMetric(descExecutions, prometheus.CounterValue,
				float64(l.StatusCounts[s]), l.Language, string(s))
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, l.Duration.Count, l.Duration.Sum,
			buckets(metrics.DurationBuckets[:], l.Duration.Buckets), l.Language)
		ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, l.CPUSeconds, l.Language)
		ch <- prometheus.MustNewConstHistogram(descMemory, l.MemoryPeak.Count, l.MemoryPeak.Sum,
			buckets(metrics.MemoryBuckets[:], l.MemoryPeak.Buckets), l.Language)
		ch <- prometheus.MustNewConstMetric(descOOM, prometheus.CounterValue, float64(l.OOMCount), l.Language)
		for _, w := range []struct {
			resource string
			n        uint64
			s        float64
		}{{"cpu", l.CPUWaitCount, l.CPUWaitSeconds}, {"memory", l.MemoryWaitCount, l.MemoryWaitSeconds}, {"io", l.IOWaitCount, l.IOWaitSeconds}} {
			if w.n > 0 {
				ch <- prometheus.MustNewConstMetric(descWait, prometheus.CounterValue, w.s, l.Language, w.resource)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(rejected))
	if p.m != nil {
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(p.m.Running()))
	}
}

// buckets pairs upper bounds with their cumulative counts, as
// prometheus.MustNewConstHistogram takes them.
func buckets(bounds []float64, cumulative []uint64) map[float64]uint64 {
	out := make(map[float64]uint64, len(bounds))
	for i, ub := range bounds {
		out[ub] = cumulative[i]
	}
	return out
}
