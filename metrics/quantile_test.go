package metrics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// The kinds of execution times randomDurations draws.
const (
	kindEqual     = iota // n copies of one value
	kindUniform          // uniform in [0, 10 s)
	kindLognormal        // lognormal around 50 ms, from microseconds to minutes
	kindBimodal          // 90% in [1, 21) ms, 10% in [30, 31) s
	kindFewValues        // 0, 2 ms or 300 ms (the issue's example, and zeros)
	numKinds
)

func randomDurations(rng *rand.Rand, n, kind int) []time.Duration {
	ds := make([]time.Duration, n)
	one := time.Duration(1 + rng.Int64N(int64(5*time.Second)))
	for i := range ds {
		switch kind {
		case kindEqual:
			ds[i] = one
		case kindUniform:
			ds[i] = time.Duration(rng.Int64N(int64(10 * time.Second)))
		case kindLognormal:
			ds[i] = time.Duration(math.Exp(rng.NormFloat64()*2) * float64(50*time.Millisecond))
		case kindBimodal:
			if rng.IntN(10) == 0 {
				ds[i] = 30*time.Second + time.Duration(rng.Int64N(int64(time.Second)))
			} else {
				ds[i] = time.Millisecond + time.Duration(rng.Int64N(int64(20*time.Millisecond)))
			}
		case kindFewValues:
			ds[i] = []time.Duration{0, 2 * time.Millisecond, 300 * time.Millisecond}[rng.IntN(3)]
		}
	}
	return ds
}

// TestQuantileMatchesOracle checks the quantile definition against the
// sorted-slice oracle over random inputs and random q, including n = 1, 2
// and 3, equal values, q = 0 and q = 1: the value is the oracle's (up to
// rounding), lies between the two closest ranks, and never decreases as q
// grows.
func TestQuantileMatchesOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 2026))
	for iter := range 20000 {
		n := 1 + iter%4 // 1, 2, 3, 4 in turn, and a larger size every fifth
		if iter%5 == 4 {
			n = 1 + rng.IntN(300)
		}
		var sorted []float64
		for _, d := range randomDurations(rng, n, iter%numKinds) {
			sorted = append(sorted, d.Seconds())
		}
		slices.Sort(sorted)
		at := func(k int) float64 { return sorted[k] }
		prev := math.Inf(-1)
		qs := []float64{0, rng.Float64(), rng.Float64(), 0.5, 0.95, 0.99, 1}
		slices.Sort(qs)
		for _, q := range qs {
			got, want := quantile(n, at, q), oracleQuantile(sorted, q)
			k := int(math.Floor(q * float64(n-1)))
			lo, hi := sorted[k], sorted[min(k+1, n-1)]
			if !near(got, want) || got < lo || got > hi || got < prev {
				t.Fatalf("n=%d q=%v: quantile %v, oracle %v, closest ranks %v and %v, previous quantile %v; values %v",
					n, q, got, want, lo, hi, prev, sorted)
			}
			prev = got
		}
	}
}

// TestCollectorQuantilesProperty records random execution times (with
// executions that failed to start among them, which must change no time
// statistic) into collectors with a small bound, at sizes around it, and
// checks every language's and the summary's percentiles against the
// sorted-slice oracle: exact up to the bound; beyond it within
// QuantileRelativeAccuracy and inside the observed [min, max]; in order.
func TestCollectorQuantilesProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1415))
	const bound = 40
	sizes := []int{1, 2, 3, bound - 1, bound, bound + 1, 2 * bound, 6 * bound}
	for iter := range 1200 {
		n := sizes[iter%len(sizes)]
		if iter%3 == 0 {
			n = 1 + rng.IntN(8*bound)
		}
		langs := []string{"c", "go", "python"}[:1+rng.IntN(3)]
		checkQuantiles(t, fmt.Sprintf("iteration %d", iter), rng, NewCollector(WithExactBound(bound)), bound, n, rng.IntN(numKinds), langs)
	}
	// The default bound, just below, at and above it, in one language.
	for kind := range numKinds {
		for _, n := range []int{DefaultExactBound - 1, DefaultExactBound, DefaultExactBound + 1} {
			checkQuantiles(t, fmt.Sprintf("default bound, kind %d", kind), rng, NewCollector(), DefaultExactBound, n, kind, []string{"go"})
		}
	}
}

// checkQuantiles records n random times of kind spread over langs, and a
// few executions that failed to start, into c, whose bound is bound, and
// checks its statistics against the reference.
func checkQuantiles(t *testing.T, what string, rng *rand.Rand, c *Collector, bound, n, kind int, langs []string) {
	t.Helper()
	byLang := map[string][]Execution{}
	var all []Execution
	rec := func(e Execution) {
		if err := c.Record(e); err != nil {
			t.Fatal(err)
		}
		byLang[e.Language] = append(byLang[e.Language], e)
		all = append(all, e)
	}
	for _, d := range randomDurations(rng, n, kind) {
		rec(ex(langs[rng.IntN(len(langs))], StatusSuccess, d, int64(rng.IntN(1<<30)), d/2))
	}
	for range rng.IntN(3) {
		// Longer than anything above and measured: counted, they would show.
		rec(ex(langs[rng.IntN(len(langs))], StatusFailedToStart, time.Hour, 1<<40, time.Hour))
	}
	ls := c.LanguageStats()
	allExact := true
	for lang, execs := range byLang {
		r := newReference(execs)
		r.exact = bound == Unbounded || len(r.times) <= bound
		allExact = allExact && r.exact
		st := ls[lang]
		checkStats(t, what+": "+lang, r, st.Count, st.SuccessCount, st.ErrorCount, st.SuccessRate, st.AverageExecutionTime, st.TotalExecutionTime, st.Breakdown)
		checkOrder(t, what+": "+lang, st.Breakdown)
	}
	r := newReference(all)
	r.exact = allExact
	s := c.Summary()
	checkStats(t, what+": summary", r, s.TotalExecutions, s.SuccessCount, s.ErrorCount, s.SuccessRate, s.AverageExecutionTime, s.TotalExecutionTime, s.Breakdown)
	checkOrder(t, what+": summary", s.Breakdown)
	if t.Failed() {
		t.Fatalf("%s: n=%d, kind %d, languages %v", what, n, kind, langs)
	}
}

// checkOrder checks min <= p50 <= p95 <= p99 <= max where they are present.
func checkOrder(t *testing.T, what string, b Breakdown) {
	t.Helper()
	if b.ExecutionTimeCount == 0 {
		return
	}
	v := []*float64{b.MinExecutionTime, b.P50ExecutionTime, b.P95ExecutionTime, b.P99ExecutionTime, b.MaxExecutionTime}
	for i := 1; i < len(v); i++ {
		if v[i-1] == nil || v[i] == nil || *v[i-1] > *v[i] {
			t.Errorf("%s: min, p50, p95, p99, max out of order: %v %v %v %v %v", what,
				deref(v[0]), deref(v[1]), deref(v[2]), deref(v[3]), deref(v[4]))
			return
		}
	}
}

// TestCollectorIssueExamples checks the three statistics the issue saw
// wrong on main: p95 = p99 = 0.002 s after 0.002 s and 0.3 s; a p50 above
// the max; an execution that failed to start counted as 0 s.
func TestCollectorIssueExamples(t *testing.T) {
	c := NewCollector()
	c.RecordExecution(ex("sh", StatusSuccess, 2*time.Millisecond, -1, -1))
	c.RecordExecution(ex("sh", StatusSuccess, 300*time.Millisecond, -1, -1))
	s := c.Summary()
	// By hand: 0.002 + q*(0.3-0.002).
	for _, p := range []struct {
		got  *float64
		want float64
	}{{s.P50ExecutionTime, 0.151}, {s.P95ExecutionTime, 0.2851}, {s.P99ExecutionTime, 0.29702}} {
		if p.got == nil || !near(*p.got, p.want) {
			t.Errorf("0.002 s and 0.3 s: percentile %v, want %v", deref(p.got), p.want)
		}
	}
	if !s.QuantilesExact || *s.MinExecutionTime != 0.002 || *s.MaxExecutionTime != 0.3 {
		t.Errorf("0.002 s and 0.3 s: exact %v, min %v, max %v", s.QuantilesExact, *s.MinExecutionTime, *s.MaxExecutionTime)
	}

	// From the sketch, five times 0.227 s: the sketch's own value for them
	// is its bin's, not 0.227; clamped to [min, max] it is 0.227.
	c = NewCollector(WithExactBound(0))
	for range 5 {
		c.RecordExecution(ex("sh", StatusSuccess, 227*time.Millisecond, -1, -1))
	}
	if v, _ := newSketchOf(0.227).GetValueAtQuantile(0.5); v == 0.227 {
		t.Fatalf("the sketch gives 0.227 exactly: this case would not show the clamp")
	}
	s = c.Summary()
	if s.QuantilesExact || *s.P50ExecutionTime != 0.227 || *s.P95ExecutionTime != 0.227 || *s.P99ExecutionTime != 0.227 || *s.MaxExecutionTime != 0.227 {
		t.Errorf("5 x 0.227 s from the sketch: exact %v, p50 %v, p95 %v, p99 %v, max %v, want all 0.227", s.QuantilesExact,
			*s.P50ExecutionTime, *s.P95ExecutionTime, *s.P99ExecutionTime, *s.MaxExecutionTime)
	}

	// An execution that failed to start: in the counts, in no time, CPU or
	// memory statistic, even when its record carries measured zeros.
	c = NewCollector()
	c.RecordExecution(ex("sh", StatusSuccess, 300*time.Millisecond, 10<<20, 100*time.Millisecond))
	c.RecordExecution(ex("sh", StatusFailedToStart, 0, 0, 0))
	s = c.Summary()
	if s.TotalExecutions != 2 || s.ErrorCount != 1 || s.StatusCounts[StatusFailedToStart] != 1 || s.SuccessRate != 0.5 {
		t.Errorf("failed_to_start not in the counts: %+v", s)
	}
	if s.ExecutionTimeCount != 1 || s.AverageExecutionTime != 0.3 || s.TotalExecutionTime != 0.3 ||
		*s.P50ExecutionTime != 0.3 || *s.MinExecutionTime != 0.3 {
		t.Errorf("failed_to_start in the times: count %d, average %v, total %v, p50 %v, min %v", s.ExecutionTimeCount,
			s.AverageExecutionTime, s.TotalExecutionTime, *s.P50ExecutionTime, *s.MinExecutionTime)
	}
	if s.MemoryPeakCount != 1 || *s.AverageMemoryPeakBytes != 10<<20 || s.CPUCount != 1 || *s.TotalCPUSeconds != 0.1 {
		t.Errorf("failed_to_start in memory or CPU: %d peaks averaging %v, %d CPU times totalling %v", s.MemoryPeakCount,
			*s.AverageMemoryPeakBytes, s.CPUCount, *s.TotalCPUSeconds)
	}
	if ls := c.LanguageStats()["sh"]; ls.Count != 2 || ls.ExecutionTimeCount != 1 || ls.AverageExecutionTime != 0.3 {
		t.Errorf("language: count %d, timed %d, average %v", ls.Count, ls.ExecutionTimeCount, ls.AverageExecutionTime)
	}
	cs, _ := c.Counters()
	if d, m := cs[0].Duration, cs[0].MemoryPeak; d.Count != 1 || d.Sum != 0.3 || d.Buckets[0] != 0 || m.Count != 1 || m.Buckets[0] != 0 || cs[0].CPUCount != 1 {
		t.Errorf("failed_to_start in a histogram: duration %+v, memory %+v, CPU count %d", d, m, cs[0].CPUCount)
	}
}

func newSketchOf(vs ...float64) interface {
	GetValueAtQuantile(float64) (float64, error)
} {
	s := newSketch()
	for _, v := range vs {
		_ = s.Add(v)
	}
	return s
}

// TestCollectorUnbounded checks that with Unbounded every time is kept and
// the quantiles are exact far past the default bound, with no sketch.
func TestCollectorUnbounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	c := NewCollector(WithExactBound(Unbounded))
	checkQuantiles(t, "unbounded", rng, c, Unbounded, 5*DefaultExactBound, kindLognormal, []string{"c", "go"})
	for _, l := range c.st.Load().list {
		for i := range l.shards {
			if l.shards[i].agg.sketch != nil {
				t.Fatalf("%s: an unbounded collector keeps a sketch", l.name)
			}
		}
	}
}

// TestCollectorFreesTimesPastTheBound checks that a language's kept times
// are freed once it passed its bound, and that its statistics stay right.
func TestCollectorFreesTimesPastTheBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	c := NewCollector(WithExactBound(100))
	checkQuantiles(t, "past the bound", rng, c, 100, 50*100, kindUniform, []string{"go"})
	l := c.st.Load().byName["go"]
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		kept := cap(s.agg.times)
		s.mu.Unlock()
		if kept != 0 {
			t.Errorf("shard %d still holds room for %d times after 5000 records past a bound of 100", i, kept)
		}
	}
}

// TestCollectorBoundConcurrent records exactly the bound, and one more,
// from 8 goroutines: the quantiles are exact, then from the sketch.
func TestCollectorBoundConcurrent(t *testing.T) {
	for _, n := range []int{DefaultExactBound, DefaultExactBound + 1} {
		c := NewCollector()
		execs := make([]Execution, n)
		for i := range execs {
			execs[i] = ex("go", StatusSuccess, time.Duration(i+1)*time.Millisecond, -1, -1)
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 8 {
					c.RecordExecution(execs[i])
				}
			}()
		}
		wg.Wait()
		r := newReference(execs)
		st := c.LanguageStats()["go"]
		checkStats(t, fmt.Sprint(n, " records"), r, st.Count, st.SuccessCount, st.ErrorCount, st.SuccessRate, st.AverageExecutionTime, st.TotalExecutionTime, st.Breakdown)
	}
}
