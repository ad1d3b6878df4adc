// Package metrics holds cgmon's data model (Execution, Usage, Sample,
// Source), the in-memory Collector, the ExecutionMonitor and the Prometheus
// adapter. It imports nothing else of cgmon's.
package metrics
