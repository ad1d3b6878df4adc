package metrics

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func TestMonitorTimesEachExecutionFromItsOwnStart(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := NewCollector()
	m := NewExecutionMonitor(c, WithClock(clk.Now))
	if err := m.StartExecution("a", "python", 120); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if err := m.StartExecution("b", "go", 40); err != nil {
		t.Fatal(err)
	}
	clk.Advance(1 * time.Second)
	ea, err := m.EndExecution("a", StatusSuccess, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The original module timed every execution from the last start (b):
	// a ran 3 s, not 1 s.
	if ea.Duration() != 3*time.Second || ea.Usage.WallTime.Source() != SourceMonotonic {
		t.Errorf("a: %v from %s, want 3s from the monitor", ea.Duration(), ea.Usage.WallTime.Source())
	}
	if ea.ID != "a" || ea.Language != "python" || ea.CodeLength != 120 || !ea.StartedAt.Equal(t0) || !ea.EndedAt.Equal(t0.Add(3*time.Second)) {
		t.Errorf("a's record: %+v", ea)
	}
	if s := m.Stats(); s.TotalExecutions != 2 || s.CompletedExecutions != 1 || s.RunningExecutions != 1 ||
		s.SuccessCount != 1 || s.ErrorCount != 0 || s.AverageExecutionTime != 3 || s.TotalExecutionTime != 3 {
		t.Errorf("stats after a: %+v", s)
	}

	clk.Advance(500 * time.Millisecond)
	res := &Execution{Language: "ignored", ExitCode: 1, Command: []string{"go", "run", "."}}
	res.Usage.WallTime = Measured(1400*time.Millisecond, SourceCgroupCPUStat)
	res.Usage.MemoryPeak = Measured(uint64(7<<20), SourceCgroupMemoryPeak)
	eb, err := m.EndExecution("b", StatusError, res)
	if err != nil {
		t.Fatal(err)
	}
	if eb.Language != "go" || eb.ExitCode != 1 || eb.Duration() != 1400*time.Millisecond || eb.Status != StatusError {
		t.Errorf("b's record: %+v", eb)
	}
	s := m.Stats()
	if s.CompletedExecutions != 2 || s.RunningExecutions != 0 || s.ErrorCount != 1 ||
		s.TotalExecutionTime != 4.5 || s.AverageExecutionTime != 2.25 {
		t.Errorf("stats after b: %+v (the monitor's own timing: 3 s + 1.5 s)", s)
	}
	// Completed executions fed the collector.
	ls := c.LanguageStats()
	if ls["python"].Count != 1 || ls["python"].SuccessCount != 1 || ls["go"].ErrorCount != 1 ||
		ls["go"].TotalExecutionTime != 1.4 || *ls["go"].MaxMemoryPeakBytes != 7<<20 {
		t.Errorf("collector: %+v", ls)
	}
}

func TestMonitorErrors(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := NewCollector()
	m := NewExecutionMonitor(c, WithClock(clk.Now))
	check := func(name string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", name, err, want)
		}
	}
	check("empty id", m.StartExecution("", "go", 1), ErrInvalidExecution)
	check("negative length", m.StartExecution("x", "go", -1), ErrInvalidExecution)
	if err := m.StartExecution("x", "go", 1); err != nil {
		t.Fatal(err)
	}
	check("duplicate start", m.StartExecution("x", "go", 1), ErrDuplicateExecution)
	_, err := m.EndExecution("x", "bogus", nil)
	check("unknown status", err, ErrInvalidExecution)
	_, err = m.EndExecution("nope", StatusSuccess, nil)
	check("unknown id", err, ErrUnknownExecution)
	if s := m.Stats(); s.TotalExecutions != 1 || s.RunningExecutions != 1 || s.CompletedExecutions != 0 {
		t.Errorf("errors changed the stats: %+v", s)
	}
	if _, err := m.EndExecution("x", StatusSuccess, nil); err != nil {
		t.Fatal(err)
	}
	_, err = m.EndExecution("x", StatusSuccess, nil)
	check("second end", err, ErrExecutionEnded)
	if s := m.Stats(); s.CompletedExecutions != 1 || c.Summary().TotalExecutions != 1 {
		t.Errorf("second end changed the stats: %+v", s)
	}
	// An id may be reused after it ended.
	if err := m.StartExecution("x", "go", 1); err != nil {
		t.Errorf("reuse after end: %v", err)
	}
	if _, err := m.EndExecution("x", StatusTimeout, nil); err != nil {
		t.Errorf("end of reused id: %v", err)
	}
	// Beyond the remembered ends an old id is unknown, still an error.
	for i := range rememberedEnds {
		id := fmt.Sprint("r", i)
		if err := m.StartExecution(id, "go", 1); err != nil {
			t.Fatal(err)
		}
		if _, err := m.EndExecution(id, StatusSuccess, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err = m.EndExecution("x", StatusSuccess, nil)
	check("long-ended id", err, ErrUnknownExecution)
	_, err = m.EndExecution(fmt.Sprint("r", rememberedEnds-1), StatusSuccess, nil)
	check("recently ended id", err, ErrExecutionEnded)
	if n := len(m.ended); n > rememberedEnds {
		t.Errorf("monitor remembers %d ended ids, bound %d", n, rememberedEnds)
	}
}

func TestMonitorEmptyStats(t *testing.T) {
	s := NewExecutionMonitor(nil).Stats()
	if s != (MonitorStats{}) {
		t.Errorf("empty stats %+v", s)
	}
}

func TestMonitorRealClock(t *testing.T) {
	m := NewExecutionMonitor(nil)
	if err := m.StartExecution("a", "sh", 3); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	e, err := m.EndExecution("a", StatusSuccess, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := e.Duration(); d < 20*time.Millisecond || d > 5*time.Second {
		t.Errorf("real clock measured %v for a 20 ms sleep", d)
	}
}

func TestMonitorConcurrent(t *testing.T) {
	const workers, per = 8, 500
	c := NewCollector()
	m := NewExecutionMonitor(c)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := m.StartExecution(id, "go", i); err != nil {
					t.Error(err)
					return
				}
				_ = m.Stats()
				st := StatusSuccess
				if i%4 == 0 {
					st = StatusError
				}
				if _, err := m.EndExecution(id, st, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s := m.Stats()
	if s.TotalExecutions != workers*per || s.CompletedExecutions != workers*per || s.RunningExecutions != 0 ||
		s.ErrorCount != workers*per/4 || s.SuccessCount != workers*per*3/4 {
		t.Errorf("stats %+v", s)
	}
	if cs := c.Summary(); cs.TotalExecutions != workers*per || cs.ErrorCount != workers*per/4 {
		t.Errorf("collector %+v", cs)
	}
}

// TestMonitorFailedToStart checks that an execution that failed to start
// counts as completed (and an error) but in none of the monitor's times.
func TestMonitorFailedToStart(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := NewCollector()
	m := NewExecutionMonitor(c, WithClock(clk.Now))
	for _, id := range []string{"ran", "never"} {
		if err := m.StartExecution(id, "sh", 1); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Second)
	if _, err := m.EndExecution("never", StatusFailedToStart, nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := m.EndExecution("ran", StatusSuccess, nil); err != nil {
		t.Fatal(err)
	}
	s := m.Stats()
	if s.CompletedExecutions != 2 || s.ErrorCount != 1 || s.ExecutionTimeCount != 1 || s.TotalExecutionTime != 2 || s.AverageExecutionTime != 2 {
		t.Errorf("stats %+v, want 2 completed, 1 error, 1 timed of 2 s", s)
	}
	if cs := c.Summary(); cs.TotalExecutions != 2 || cs.ExecutionTimeCount != 1 || cs.AverageExecutionTime != 2 {
		t.Errorf("collector %+v", cs)
	}
}
