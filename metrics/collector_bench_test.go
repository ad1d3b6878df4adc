package metrics

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// benchLanguages are the 20 languages of the benchmarks.
var benchLanguages = func() []string {
	l := make([]string, 20)
	for i := range l {
		l[i] = fmt.Sprintf("lang%02d", i)
	}
	return l
}()

var benchCommand = []string{"python3", "main.py"}

// benchExecution returns a realistic record for the benchmarks; i varies
// its language, status and measures.
func benchExecution(i int) Execution {
	start := time.Unix(1700000000, 0)
	d := time.Duration(1+i%5000) * 200 * time.Microsecond // 0.2 ms .. 1 s
	e := Execution{
		ID:        "bench",
		Language:  benchLanguages[i%len(benchLanguages)],
		Status:    Statuses[i%len(Statuses)],
		StartedAt: start,
		EndedAt:   start.Add(d),
		Command:   benchCommand,
	}
	e.Usage.WallTime = Measured(d, SourceMonotonic)
	e.Usage.CPUTotal = Measured(d/2, SourceCgroupCPUStat)
	if i%3 != 0 {
		e.Usage.MemoryPeak = Measured(uint64(1+i%1000)<<20, SourceCgroupMemoryPeak)
	} else {
		e.Usage.MemoryPeak = Unavailable[uint64]("no memory controller")
	}
	return e
}

// benchSet is a fixed set of records the benchmarks cycle through, so that
// building them is not measured.
var benchSet = func() []Execution {
	s := make([]Execution, 4096)
	for i := range s {
		s[i] = benchExecution(i * 7919)
	}
	return s
}()

func warm(c *Collector) {
	for i := range benchSet {
		c.RecordExecution(benchSet[i])
	}
}

// BenchmarkCollectorRecord measures one RecordExecution on one goroutine
// with 20 languages already seen.
func BenchmarkCollectorRecord(b *testing.B) {
	c := NewCollector()
	warm(c)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		c.RecordExecution(benchSet[i&4095])
		i++
	}
}

// BenchmarkCollectorRecordParallel measures RecordExecution from 8
// goroutines in all (SetParallelism(8/GOMAXPROCS), so 4 per P on a 2-core
// machine), over 20 languages and, as the worst case for contention, over
// one. ns/op is wall time per record with all goroutines running.
func BenchmarkCollectorRecordParallel(b *testing.B) {
	for _, bc := range []struct {
		name    string
		oneLang bool
	}{{"20languages", false}, {"1language", true}} {
		b.Run(bc.name, func(b *testing.B) {
			set := benchSet
			if bc.oneLang {
				set = make([]Execution, len(benchSet))
				copy(set, benchSet)
				for i := range set {
					set[i].Language = "python"
				}
			}
			c := NewCollector()
			for i := range set {
				c.RecordExecution(set[i])
			}
			b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
			var seed atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(1000))
				for pb.Next() {
					c.RecordExecution(set[i&4095])
					i++
				}
			})
		})
	}
}

// heapInUse returns the bytes of live heap objects after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// recordRange records benchExecution(i) for i in [from, to).
func recordRange(c *Collector, from, to int) {
	for i := from; i < to; i++ {
		c.RecordExecution(benchExecution(i))
	}
}

// atBound is the number of benchExecution records after which each of the
// 20 languages holds exactly DefaultExactBound execution times: one record
// in len(Statuses) failed to start and holds none.
var atBound = len(benchLanguages) * DefaultExactBound * len(Statuses) / (len(Statuses) - 1)

// TestCollectorMemoryBounded records 10 million executions of 20 languages
// (1 million with -short, 300 000 under -race) and checks that the collector's heap,
// measured as the growth of live heap since before it was made, does not
// grow past what it was after 100 000 records (by more than 1 MiB of
// slack) and stays under 10 MiB, also when every language holds its
// DefaultExactBound execution times, the most it holds.
func TestCollectorMemoryBounded(t *testing.T) {
	total := 10_000_000
	switch {
	case raceEnabled:
		total = 300_000
	case testing.Short():
		total = 1_000_000
	}
	base := heapInUse()
	c := NewCollector()
	recordRange(c, 0, atBound)
	h0 := int64(heapInUse()) - int64(base)
	if s := c.LanguageStats()[benchLanguages[0]]; !s.QuantilesExact || s.ExecutionTimeCount != DefaultExactBound {
		t.Fatalf("after %d records: %d times, exact %v; want every language at its bound", atBound, s.ExecutionTimeCount, s.QuantilesExact)
	}
	recordRange(c, atBound, 100_000)
	h1 := int64(heapInUse()) - int64(base)
	recordRange(c, 100_000, total)
	h2 := int64(heapInUse()) - int64(base)
	runtime.KeepAlive(c)
	if n := c.Summary().TotalExecutions; n != uint64(total) {
		t.Fatalf("recorded %d, want %d", n, total)
	}
	t.Logf("collector heap: %.2f MiB after %d records (each language at its bound of %d times), %.2f MiB after 100k records, %.2f MiB after %d records (20 languages, %d recent kept)",
		float64(h0)/(1<<20), atBound, DefaultExactBound, float64(h1)/(1<<20), float64(h2)/(1<<20), total, DefaultRecent)
	if h0 > 10<<20 {
		t.Errorf("collector uses %d bytes at the bound, over 10 MiB", h0)
	}
	if h2 > h1+1<<20 {
		t.Errorf("heap grew from %d to %d bytes between 100k and %d records", h1, h2, total)
	}
	if h2 > 10<<20 {
		t.Errorf("collector uses %d bytes, over 10 MiB", h2)
	}
}

// BenchmarkCollectorMemory10M records 10 million executions of 20
// languages per iteration into a fresh Collector and reports its heap
// (live heap growth after GC) as heap-MiB; ns/op is the time of all 10M.
func BenchmarkCollectorMemory10M(b *testing.B) {
	var h int64
	for b.Loop() {
		b.StopTimer()
		base := heapInUse()
		b.StartTimer()
		c := NewCollector()
		recordRange(c, 0, 10_000_000)
		b.StopTimer()
		h = int64(heapInUse()) - int64(base)
		runtime.KeepAlive(c)
		b.StartTimer()
	}
	b.ReportMetric(float64(h)/(1<<20), "heap-MiB")
}

// BenchmarkCollectorUnbounded1M records one million executions of 20
// languages per iteration into a fresh Collector that keeps every
// execution time (WithExactBound(Unbounded), as for exact percentiles over
// a merged result file), and reports its heap (heap-MiB) and the time of
// one Summary with its exact percentiles (summary-ms); ns/op is the time
// of all 1M records.
func BenchmarkCollectorUnbounded1M(b *testing.B) {
	var h int64
	var sum time.Duration
	for b.Loop() {
		b.StopTimer()
		base := heapInUse()
		b.StartTimer()
		c := NewCollector(WithExactBound(Unbounded))
		recordRange(c, 0, 1_000_000)
		b.StopTimer()
		h = int64(heapInUse()) - int64(base)
		start := time.Now()
		if s := c.Summary(); !s.QuantilesExact {
			b.Fatal("an unbounded collector's summary is not exact")
		}
		sum = time.Since(start)
		runtime.KeepAlive(c)
		b.StartTimer()
	}
	b.ReportMetric(float64(h)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(sum)/1e6, "summary-ms")
}
