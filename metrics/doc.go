// Package metrics holds cgmon's data model (Execution, Usage, Sample,
// Source), the in-memory Collector and the ExecutionMonitor. It imports
// nothing else of cgmon's, and no metrics client: the Prometheus adapter is
// the package metrics/prom.
package metrics
