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
		Command:   []string{"python3", "main.py"},
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
