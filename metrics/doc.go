// Package metrics holds cgmon's data model (Execution, Usage, Sample,
// Source), the in-memory Collector and the ExecutionMonitor. It imports
// nothing else of cgmon's, and no metrics client: the Prometheus adapter is
// the package metrics/prom.
//
// # Quantiles
//
// The Collector's percentiles (p50, p95, p99 of the execution time, per
// language and over all) have one definition: for the n execution times of
// a key sorted as x[0] <= ... <= x[n-1], the quantile q is
//
//	h = q*(n-1),  k = floor(h),  Q(q) = x[k] + (h-k)*(x[k+1]-x[k])
//
// (Q(q) = x[n-1] when k = n-1): linear interpolation between the closest
// ranks, Hyndman and Fan's type 7, the default of numpy.quantile, R and
// spreadsheets' PERCENTILE. For the times 0.002 s and 0.3 s it gives p50 =
// 0.151 s, p95 = 0.2851 s, p99 = 0.29702 s.
//
// Q is exact while a key holds every one of its times: a language holds up
// to WithExactBound of them (DefaultExactBound, 1000; Unbounded keeps all),
// and the summary over every language is exact when every language's is.
// Beyond the bound, each of x[k] and x[k+1] is read from the key's DDSketch
// within QuantileRelativeAccuracy (1%), and so is Q. Every reported
// quantile is clamped to the observed [min, max] of the key, so no
// percentile is ever below the shortest or above the longest execution.
// Breakdown.QuantilesExact says which of the two a reader has.
//
// An execution with StatusFailedToStart never ran: it counts in the totals
// and by status, but in no time, CPU or memory statistic, no quantile and
// no histogram (nor in metrics/prom's duration and memory histograms).
package metrics
