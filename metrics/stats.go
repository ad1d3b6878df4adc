package metrics

import (
	"slices"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// QuantileRelativeAccuracy is the relative accuracy of the execution-time
// percentiles (p50, p95, p99) of a key that holds more than its bound of
// exact values (see the package documentation, "Quantiles"): a reported
// quantile v lies within 1% of the exact value x that the same definition
// gives over every execution time, |v-x| <= 0.01*x. Each of the two closest
// ranks is read from DDSketch within 1% (its guarantee, which holds while
// the recorded times span a ratio below about 1e17, sketchMaxBins bins: far
// beyond nanoseconds to years), so their interpolation is too, and the clamp
// to the observed [min, max] only brings v closer to x. Up to the bound the
// quantiles are exact.
const QuantileRelativeAccuracy = 0.01

// DefaultExactBound is how many execution times per language a Collector
// keeps, unless WithExactBound says otherwise, to compute exact quantiles.
const DefaultExactBound = 1000

// Unbounded, given to WithExactBound, keeps every execution time: the
// quantiles are always exact, and the Collector's memory grows by 8 to 16
// bytes per execution.
const Unbounded = -1

// sketchMaxBins bounds each sketch to 2048 bins of 8 bytes (16 KiB). With a
// 1% accuracy one bin covers a factor of about 1.0202, so 2048 bins span a
// ratio of about 6e17 before the lowest bins collapse.
const sketchMaxBins = 2048

// DurationBuckets are the upper bounds, in seconds, of the execution-time
// histogram exposed to Prometheus, chosen for code-execution workloads
// (from a 5 ms "hello world" to a 60 s limit).
var DurationBuckets = [...]float64{
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}

// MemoryBuckets are the upper bounds, in bytes, of the memory-peak histogram
// exposed to Prometheus: powers of four from 1 MiB to 16 GiB.
var MemoryBuckets = [...]float64{
	1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30, 4 << 30, 16 << 30,
}

const numStatuses = len(Statuses)

var (
	successIndex = StatusSuccess.Index()
	failedIndex  = StatusFailedToStart.Index()
)

// StatusCounts maps every Status in Statuses to the number of executions
// that ended with it; statuses with no execution are present with 0.
type StatusCounts map[Status]uint64

// Breakdown holds the statistics that Summary and LanguageStats share
// beyond the original module's fields. Absent values (nil pointers, JSON
// null) mean there was no data to compute them from, never zero.
type Breakdown struct {
	// StatusCounts counts executions per status, failed_to_start
	// included.
	StatusCounts StatusCounts `json:"status_counts"`
	// ExecutionTimeCount is the number of executions in the execution-time
	// statistics: every execution but those with StatusFailedToStart, which
	// never ran.
	ExecutionTimeCount uint64 `json:"execution_time_count"`
	// P50ExecutionTime, P95ExecutionTime and P99ExecutionTime are the
	// quantiles 0.5, 0.95 and 0.99 of the execution time, in seconds, as
	// the package documentation defines them ("Quantiles"): exact when
	// QuantilesExact, else within QuantileRelativeAccuracy, and always
	// within [MinExecutionTime, MaxExecutionTime]. nil when
	// ExecutionTimeCount is 0.
	P50ExecutionTime *float64 `json:"p50_execution_time"`
	P95ExecutionTime *float64 `json:"p95_execution_time"`
	P99ExecutionTime *float64 `json:"p99_execution_time"`
	// QuantilesExact is true when the percentiles were computed from every
	// execution time, false when they come from the sketch or are nil.
	QuantilesExact bool `json:"quantiles_exact"`
	// MinExecutionTime and MaxExecutionTime are the exact shortest and
	// longest execution times, in seconds; nil when ExecutionTimeCount is
	// 0.
	MinExecutionTime *float64 `json:"min_execution_time"`
	MaxExecutionTime *float64 `json:"max_execution_time"`
	// MemoryPeakCount is the number of executions whose memory peak was
	// measured (Usage.MemoryPeak valid), failed_to_start excluded; the
	// memory statistics use only those.
	MemoryPeakCount uint64 `json:"memory_peak_count"`
	// AverageMemoryPeakBytes is the mean memory peak, in bytes; nil when
	// MemoryPeakCount is 0.
	AverageMemoryPeakBytes *float64 `json:"average_memory_peak_bytes"`
	// MaxMemoryPeakBytes is the highest memory peak, in bytes; nil when
	// MemoryPeakCount is 0.
	MaxMemoryPeakBytes *uint64 `json:"max_memory_peak_bytes"`
	// CPUCount is the number of executions whose CPU time was measured
	// (Usage.CPUTotal valid), failed_to_start excluded.
	CPUCount uint64 `json:"cpu_measured_count"`
	// TotalCPUSeconds is the CPU time (user + system) of those
	// executions, in seconds; nil when CPUCount is 0.
	TotalCPUSeconds *float64 `json:"total_cpu_seconds"`
	// OOMCount counts executions with OOMKilled set (a process of the
	// execution was killed by the kernel's OOM killer), whatever their
	// status; StatusCounts[StatusOOM] counts those whose status is oom.
	OOMCount uint64 `json:"oom_count"`
	// TimeoutCount counts executions with TimedOut set, whatever their
	// status.
	TimeoutCount uint64 `json:"timeout_count"`
}

// LanguageStats is the statistics of one language, as the original
// module's get_language_stats returned them plus a Breakdown. Execution
// times are in seconds. An execution is a success when its status is
// StatusSuccess; every other status counts as an error. An execution that
// failed to start counts in Count and ErrorCount but in no time, CPU or
// memory statistic.
type LanguageStats struct {
	// Count is the number of executions recorded.
	Count uint64 `json:"count"`
	// SuccessCount counts StatusSuccess; ErrorCount counts every other
	// status (error, signaled, timeout, cpu_timeout, oom, canceled,
	// failed_to_start, ended).
	SuccessCount uint64 `json:"success_count"`
	ErrorCount   uint64 `json:"error_count"`
	// SuccessRate is SuccessCount/Count in [0, 1]; 0 when Count is 0.
	SuccessRate float64 `json:"success_rate"`
	// TotalExecutionTime is the sum of execution times, in seconds.
	TotalExecutionTime float64 `json:"total_execution_time"`
	// AverageExecutionTime is TotalExecutionTime/ExecutionTimeCount, in
	// seconds; 0 when ExecutionTimeCount is 0.
	AverageExecutionTime float64 `json:"average_execution_time"`
	Breakdown
}

// Summary is the statistics over every language, as the original module's
// get_summary returned them plus a Breakdown. Execution times are in
// seconds. An execution is a success when its status is StatusSuccess; every
// other status counts as an error. An execution that failed to start counts
// in TotalExecutions and ErrorCount but in no time, CPU or memory statistic.
type Summary struct {
	// TotalExecutions is the number of executions recorded.
	TotalExecutions uint64 `json:"total_executions"`
	// SuccessCount counts StatusSuccess; ErrorCount counts every other
	// status.
	SuccessCount uint64 `json:"success_count"`
	ErrorCount   uint64 `json:"error_count"`
	// SuccessRate is SuccessCount/TotalExecutions in [0, 1]; 0 when
	// TotalExecutions is 0.
	SuccessRate float64 `json:"success_rate"`
	// AverageExecutionTime is TotalExecutionTime/ExecutionTimeCount, in
	// seconds; 0 when ExecutionTimeCount is 0.
	AverageExecutionTime float64 `json:"average_execution_time"`
	// TotalExecutionTime is the sum of execution times, in seconds.
	TotalExecutionTime float64 `json:"total_execution_time"`
	// Languages is the number of distinct languages recorded.
	Languages int `json:"languages"`
	// RejectedCount counts records that RecordExecution refused (unknown
	// status, negative execution time); they are in no other statistic.
	RejectedCount uint64 `json:"rejected_count"`
	Breakdown
}

// aggregate is the streaming state of a set of executions: fixed-size
// counters, the execution times while they are held (see Collector), and
// one bounded sketch.
type aggregate struct {
	statusCounts [numStatuses]uint64

	// The execution times of the executions that ran (every status but
	// failed_to_start).
	timeCount          uint64
	totalTime          time.Duration
	minTime, maxTime   time.Duration                // valid when timeCount > 0
	durBuckets         [len(DurationBuckets)]uint64 // per bucket, not cumulative; +Inf is the rest
	times              []float64                    // in seconds, unsorted; every one of them when len(times) == timeCount
	sketch             *ddsketch.DDSketch           // in seconds; nil with Unbounded, or in snapshots without quantiles
	memCount           uint64
	memSum             float64 // bytes; float64 so that it cannot wrap
	memMax             uint64
	memBuckets         [len(MemoryBuckets)]uint64
	cpuCount           uint64
	cpuTotal           time.Duration
	oomCount, timeouts uint64
	// The waits for a CPU, memory and I/O (PSI), in that order: how many
	// executions had them measured, and their sum.
	waitCount [3]uint64
	waitTotal [3]time.Duration
}

// sketchMapping maps values to bins with QuantileRelativeAccuracy. The
// cubically interpolated mapping gives the same guarantee as the
// logarithmic one without calling math.Log on the hot path, at the cost of
// about 1% more bins.
var sketchMapping = func() mapping.IndexMapping {
	m, err := mapping.NewCubicallyInterpolatedMapping(QuantileRelativeAccuracy)
	if err != nil {
		panic("metrics: cannot build the DDSketch mapping: " + err.Error()) // constant argument: unreachable
	}
	return m
}()

// newSketch returns an empty sketch of at most sketchMaxBins bins, whose
// lowest bins collapse first (only the lowest quantiles would lose accuracy).
func newSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketch(sketchMapping,
		store.NewCollapsingLowestDenseStore(sketchMaxBins),
		store.NewCollapsingLowestDenseStore(sketchMaxBins))
}

func (a *aggregate) count() uint64 {
	var n uint64
	for _, c := range a.statusCounts {
		n += c
	}
	return n
}

// add records one execution whose fields were already validated; st is
// its status's index. Its time d is kept among the exact values when hold.
func (a *aggregate) add(st int, d time.Duration, e *Execution, hold bool) {
	a.statusCounts[st]++
	if e.OOMKilled {
		a.oomCount++
	}
	if e.TimedOut {
		a.timeouts++
	}
	if st == failedIndex {
		return // it never ran: in no time, CPU or memory statistic
	}

	if a.timeCount == 0 || d < a.minTime {
		a.minTime = d
	}
	a.maxTime = max(a.maxTime, d)
	a.timeCount++
	a.totalTime += d
	sec := d.Seconds()
	for i, ub := range DurationBuckets {
		if sec <= ub {
			a.durBuckets[i]++
			break
		}
	}
	if hold {
		a.times = append(a.times, sec)
	}
	if a.sketch != nil {
		_ = a.sketch.Add(sec) // d >= 0 and finite: cannot fail
	}

	if m, ok := e.Usage.MemoryPeak.Get(); ok {
		a.memCount++
		a.memSum += float64(m)
		a.memMax = max(a.memMax, m)
		fm := float64(m)
		for i, ub := range MemoryBuckets {
			if fm <= ub {
				a.memBuckets[i]++
				break
			}
		}
	}
	if c, ok := e.Usage.CPUTotal.Get(); ok {
		a.cpuCount++
		a.cpuTotal += c
	}
	for i, w := range [...]Measure[time.Duration]{e.Usage.CPUWait, e.Usage.MemoryWait, e.Usage.IOWait} {
		if v, ok := w.Get(); ok {
			a.waitCount[i]++
			a.waitTotal[i] += v
		}
	}
}

// holdsAll reports whether a holds every one of its execution times.
func (a *aggregate) holdsAll() bool { return uint64(len(a.times)) == a.timeCount }

// merge adds b into a. With quantiles, it also merges b's execution times
// while a and b both hold all of theirs, and b's sketch.
func (a *aggregate) merge(b *aggregate, quantiles bool) {
	if quantiles {
		if a.holdsAll() && b.holdsAll() {
			a.times = append(a.times, b.times...)
		} else {
			a.times = nil // and from now on a does not hold all its times
		}
		if b.sketch != nil {
			if a.sketch == nil {
				a.sketch = newSketch()
			}
			_ = a.sketch.MergeWith(b.sketch) // same mapping: cannot fail
		}
	}
	for i := range a.statusCounts {
		a.statusCounts[i] += b.statusCounts[i]
	}
	if b.timeCount > 0 && (a.timeCount == 0 || b.minTime < a.minTime) {
		a.minTime = b.minTime
	}
	a.maxTime = max(a.maxTime, b.maxTime)
	a.timeCount += b.timeCount
	a.totalTime += b.totalTime
	for i := range a.waitCount {
		a.waitCount[i] += b.waitCount[i]
		a.waitTotal[i] += b.waitTotal[i]
	}
	for i := range a.durBuckets {
		a.durBuckets[i] += b.durBuckets[i]
	}
	a.memCount += b.memCount
	a.memSum += b.memSum
	a.memMax = max(a.memMax, b.memMax)
	for i := range a.memBuckets {
		a.memBuckets[i] += b.memBuckets[i]
	}
	a.cpuCount += b.cpuCount
	a.cpuTotal += b.cpuTotal
	a.oomCount += b.oomCount
	a.timeouts += b.timeouts
}

func ptr[T any](v T) *T { return &v }

// quantile returns the quantile q in [0, 1] of n >= 1 sorted values, the
// k-th of which (from 0) is at(k): linear interpolation between the closest
// ranks floor(h) and floor(h)+1 where h = q*(n-1), the definition of
// Hyndman and Fan's type 7 and numpy's default.
func quantile(n int, at func(k int) float64, q float64) float64 {
	h := q * float64(n-1)
	k := int(h) // h >= 0: the floor
	if k >= n-1 {
		return at(n - 1)
	}
	lo, hi := at(k), at(k+1)
	// The clamp keeps the rounding of the product inside [lo, hi].
	return min(max(lo+(h-float64(k))*(hi-lo), lo), hi)
}

// sketchRank returns the sketch's estimate of the k-th (from 0) smallest
// value it holds, within QuantileRelativeAccuracy of the exact one. Every
// value is >= 0: the sketch's zero bin comes first, then its positive store.
func sketchRank(s *ddsketch.DDSketch, k int) float64 {
	z := s.GetZeroCount()
	if rank := float64(k); rank >= z {
		return s.Value(s.GetPositiveValueStore().KeyAtRank(rank - z))
	}
	return 0
}

// breakdown computes the shared statistics of a, a snapshot with
// quantiles; it sorts a.times.
func (a *aggregate) breakdown() Breakdown {
	b := Breakdown{
		StatusCounts:       make(StatusCounts, numStatuses),
		ExecutionTimeCount: a.timeCount,
		MemoryPeakCount:    a.memCount,
		CPUCount:           a.cpuCount,
		OOMCount:           a.oomCount,
		TimeoutCount:       a.timeouts,
	}
	for i, s := range Statuses {
		b.StatusCounts[s] = a.statusCounts[i]
	}
	if n := int(a.timeCount); n > 0 {
		lo, hi := a.minTime.Seconds(), a.maxTime.Seconds()
		b.MinExecutionTime, b.MaxExecutionTime = ptr(lo), ptr(hi)
		var at func(k int) float64
		switch {
		case a.holdsAll():
			slices.Sort(a.times)
			at = func(k int) float64 { return a.times[k] }
			b.QuantilesExact = true
		case a.sketch != nil:
			// The sketch holds every execution time: timeCount of them.
			at = func(k int) float64 { return sketchRank(a.sketch, k) }
		}
		if at != nil {
			q := func(q float64) *float64 { return ptr(min(max(quantile(n, at, q), lo), hi)) }
			b.P50ExecutionTime, b.P95ExecutionTime, b.P99ExecutionTime = q(0.50), q(0.95), q(0.99)
		}
	}
	if a.memCount > 0 {
		b.AverageMemoryPeakBytes = ptr(a.memSum / float64(a.memCount))
		b.MaxMemoryPeakBytes = ptr(a.memMax)
	}
	if a.cpuCount > 0 {
		b.TotalCPUSeconds = ptr(a.cpuTotal.Seconds())
	}
	return b
}

func (a *aggregate) languageStats() LanguageStats {
	n := a.count()
	s := LanguageStats{
		Count:              n,
		SuccessCount:       a.statusCounts[successIndex],
		ErrorCount:         n - a.statusCounts[successIndex],
		TotalExecutionTime: a.totalTime.Seconds(),
		Breakdown:          a.breakdown(),
	}
	if n > 0 {
		s.SuccessRate = float64(s.SuccessCount) / float64(n)
	}
	if a.timeCount > 0 {
		s.AverageExecutionTime = s.TotalExecutionTime / float64(a.timeCount)
	}
	return s
}

// Histogram is a histogram over fixed upper bounds, cumulative as
// Prometheus and OpenTelemetry take it.
type Histogram struct {
	// Count is the number of observations and Sum their sum.
	Count uint64
	Sum   float64
	// Buckets holds, at i, the number of observations less than or equal to the
	// i-th bound (DurationBuckets or MemoryBuckets); observations above
	// the last bound are in Count only.
	Buckets []uint64
}

// Counters is one language's cumulative counts, as an exporter of counters
// and histograms (such as the Prometheus adapter in metrics/prom) reads
// them. They only grow, until Collector.Clear. Executions that failed to
// start are in StatusCounts only.
type Counters struct {
	// Language is the language counted.
	Language string
	// StatusCounts counts executions per status.
	StatusCounts StatusCounts
	// Duration is the histogram of execution times, in seconds, over
	// DurationBuckets.
	Duration Histogram
	// MemoryPeak is the histogram of the measured memory peaks, in bytes,
	// over MemoryBuckets.
	MemoryPeak Histogram
	// CPUCount is the number of executions whose CPU time was measured,
	// and CPUSeconds their CPU time (user + system), in seconds.
	CPUCount   uint64
	CPUSeconds float64
	// OOMCount counts executions with OOMKilled set.
	OOMCount uint64
	// CPUWaitCount, MemoryWaitCount and IOWaitCount are the numbers of
	// executions whose waits for a CPU, memory and I/O were measured
	// (Usage.CPUWait, MemoryWait, IOWait, from PSI).
	CPUWaitCount, MemoryWaitCount, IOWaitCount uint64
	// CPUWaitSeconds, MemoryWaitSeconds and IOWaitSeconds are the sums of
	// those waits, in seconds.
	CPUWaitSeconds, MemoryWaitSeconds, IOWaitSeconds float64
}

// counters returns a's counters under the name lang.
func (a *aggregate) counters(lang string) Counters {
	c := Counters{
		Language:     lang,
		StatusCounts: make(StatusCounts, numStatuses),
		Duration:     Histogram{Count: a.timeCount, Sum: a.totalTime.Seconds(), Buckets: cumulative(a.durBuckets[:])},
		MemoryPeak:   Histogram{Count: a.memCount, Sum: a.memSum, Buckets: cumulative(a.memBuckets[:])},
		CPUCount:     a.cpuCount,
		CPUSeconds:   a.cpuTotal.Seconds(),
		OOMCount:     a.oomCount,

		CPUWaitCount: a.waitCount[0], MemoryWaitCount: a.waitCount[1], IOWaitCount: a.waitCount[2],
		CPUWaitSeconds: a.waitTotal[0].Seconds(), MemoryWaitSeconds: a.waitTotal[1].Seconds(), IOWaitSeconds: a.waitTotal[2].Seconds(),
	}
	for i, s := range Statuses {
		c.StatusCounts[s] = a.statusCounts[i]
	}
	return c
}

// cumulative returns the running sums of per-bucket counts.
func cumulative(counts []uint64) []uint64 {
	out := make([]uint64, len(counts))
	var sum uint64
	for i, n := range counts {
		sum += n
		out[i] = sum
	}
	return out
}
