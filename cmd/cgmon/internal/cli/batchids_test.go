package cli

import (
	"runtime"
	"strconv"
	"testing"
)

// TestIDSet: the first line of an id is remembered, a repeat names it,
// and once maxCheckedIDs ids are held the set says so once and stops
// checking (and holding) any.
func TestIDSet(t *testing.T) {
	var s idSet
	if _, st := s.add("a", 1); st != idNew {
		t.Fatalf("first a: %v", st)
	}
	if _, st := s.add("b", 2); st != idNew {
		t.Fatalf("first b: %v", st)
	}
	if first, st := s.add("a", 5); st != idRepeated || first != 1 {
		t.Fatalf("second a: line %d, %v; want line 1, repeated", first, st)
	}
	s.first = make(map[uint64]int, maxCheckedIDs)
	for i := range maxCheckedIDs {
		s.first[uint64(i)] = i
	}
	if _, st := s.add("c", 7); st != idSetFull {
		t.Fatalf("add to a full set: %v, want idSetFull", st)
	}
	if _, st := s.add("a", 8); st != idUnchecked || s.first != nil {
		t.Fatalf("add after full: %v (map kept: %v), want idUnchecked and the map dropped", st, s.first != nil)
	}
}

// BenchmarkIDSetMemory measures what the duplicate check holds per id of
// a batch (reported as bytes/id).
func BenchmarkIDSetMemory(b *testing.B) {
	const n = 1 << 20
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var s idSet
		for i := range n {
			s.add("submission-"+strconv.Itoa(i), i+1)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/id")
		runtime.KeepAlive(&s)
	}
}
