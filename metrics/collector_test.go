package metrics

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// ex builds a record of language lang with status st lasting d; mem and
// cpu are measured when >= 0, absent otherwise.
func ex(lang string, st Status, d time.Duration, mem int64, cpu time.Duration) Execution {
	e := Execution{ID: "x", Language: lang, Status: st, StartedAt: t0, EndedAt: t0.Add(d)}
	e.Usage.WallTime = Measured(d, SourceMonotonic)
	if mem >= 0 {
		e.Usage.MemoryPeak = Measured(uint64(mem), SourceCgroupMemoryPeak)
	} else {
		e.Usage.MemoryPeak = Unavailable[uint64]("no memory controller")
	}
	if cpu >= 0 {
		e.Usage.CPUTotal = Measured(cpu, SourceCgroupCPUStat)
	} else {
		e.Usage.CPUTotal = Unavailable[time.Duration]("no cpu controller")
	}
	e.OOMKilled = st == StatusOOM
	e.TimedOut = st == StatusTimeout
	return e
}

// reference computes the statistics of execs directly, exactly, without
// the Collector's code: executions that failed to start are in the counts
// only; percentiles interpolate linearly between the closest ranks (type
// 7). exact says whether the Collector should report them exactly (at
// most DefaultExactBound times) or from its sketch.
type reference struct {
	count, success uint64
	status         map[Status]uint64
	total          time.Duration
	times          []float64 // sorted
	exact          bool
	memN           uint64
	memSum         float64
	memMax         uint64
	cpuN           uint64
	cpu            time.Duration
	oom, timeout   uint64
}

func newReference(execs []Execution) *reference {
	r := &reference{status: map[Status]uint64{}}
	for _, s := range Statuses {
		r.status[s] = 0
	}
	for i := range execs {
		e := &execs[i]
		r.count++
		r.status[e.Status]++
		if e.Status == StatusSuccess {
			r.success++
		}
		if e.OOMKilled {
			r.oom++
		}
		if e.TimedOut {
			r.timeout++
		}
		if e.Status == StatusFailedToStart {
			continue // it never ran
		}
		r.total += e.Duration()
		r.times = append(r.times, e.Duration().Seconds())
		if m, ok := e.Usage.MemoryPeak.Get(); ok {
			r.memN++
			r.memSum += float64(m)
			r.memMax = max(r.memMax, m)
		}
		if c, ok := e.Usage.CPUTotal.Get(); ok {
			r.cpuN++
			r.cpu += c
		}
	}
	sort.Float64s(r.times)
	r.exact = len(r.times) <= DefaultExactBound
	return r
}

func (r *reference) quantile(q float64) float64 {
	return oracleQuantile(r.times, q)
}

// oracleQuantile is the type-7 quantile q of sorted, written as the
// weighted mean of the two closest ranks.
func oracleQuantile(sorted []float64, q float64) float64 {
	h := q * float64(len(sorted)-1)
	k := math.Floor(h)
	if int(k) == len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	f := h - k
	return (1-f)*sorted[int(k)] + f*sorted[int(k)+1]
}

// checkStats compares what the Collector reported with the reference.
func checkStats(t *testing.T, what string, r *reference, count, success, errs uint64, rate, avg, total float64, b Breakdown) {
	t.Helper()
	if count != r.count || success != r.success || errs != r.count-r.success {
		t.Errorf("%s: count/success/error = %d/%d/%d, want %d/%d/%d", what, count, success, errs, r.count, r.success, r.count-r.success)
	}
	wantRate, wantAvg := 0.0, 0.0
	if r.count > 0 {
		wantRate = float64(r.success) / float64(r.count)
	}
	if n := len(r.times); n > 0 {
		wantAvg = r.total.Seconds() / float64(n)
	}
	if b.ExecutionTimeCount != uint64(len(r.times)) {
		t.Errorf("%s: execution time count %d, want %d", what, b.ExecutionTimeCount, len(r.times))
	}
	if rate != wantRate || !near(avg, wantAvg) || total != r.total.Seconds() {
		t.Errorf("%s: rate/avg/total = %v/%v/%v, want %v/%v/%v", what, rate, avg, total, wantRate, wantAvg, r.total.Seconds())
	}
	if !reflect.DeepEqual(map[Status]uint64(b.StatusCounts), r.status) {
		t.Errorf("%s: status counts %v, want %v", what, b.StatusCounts, r.status)
	}
	if len(r.times) == 0 {
		if b.P50ExecutionTime != nil || b.P95ExecutionTime != nil || b.P99ExecutionTime != nil || b.MaxExecutionTime != nil || b.MinExecutionTime != nil || b.QuantilesExact {
			t.Errorf("%s: percentiles present without data", what)
		}
	} else {
		lo, hi := r.times[0], r.times[len(r.times)-1]
		for _, p := range []struct {
			q   float64
			got *float64
		}{{0.5, b.P50ExecutionTime}, {0.95, b.P95ExecutionTime}, {0.99, b.P99ExecutionTime}} {
			want := r.quantile(p.q)
			switch {
			case p.got == nil:
				t.Errorf("%s: p%v missing, want %v", what, p.q*100, want)
			case r.exact && !near(*p.got, want):
				t.Errorf("%s: p%v = %v, want exactly %v", what, p.q*100, *p.got, want)
			case !withinAccuracy(*p.got, want) || *p.got < lo || *p.got > hi:
				t.Errorf("%s: p%v = %v, want %v within %v and in [%v, %v]", what, p.q*100, *p.got, want, QuantileRelativeAccuracy, lo, hi)
			}
		}
		if b.QuantilesExact != r.exact {
			t.Errorf("%s: quantiles exact = %v, want %v", what, b.QuantilesExact, r.exact)
		}
		if b.MaxExecutionTime == nil || *b.MaxExecutionTime != hi || b.MinExecutionTime == nil || *b.MinExecutionTime != lo {
			t.Errorf("%s: min/max = %v/%v, want exactly %v/%v", what, deref(b.MinExecutionTime), deref(b.MaxExecutionTime), lo, hi)
		}
	}
	if b.MemoryPeakCount != r.memN {
		t.Errorf("%s: memory peak count %d, want %d", what, b.MemoryPeakCount, r.memN)
	}
	if r.memN == 0 {
		if b.AverageMemoryPeakBytes != nil || b.MaxMemoryPeakBytes != nil {
			t.Errorf("%s: memory statistics present without measured memory", what)
		}
	} else if b.AverageMemoryPeakBytes == nil || !near(*b.AverageMemoryPeakBytes, r.memSum/float64(r.memN)) ||
		b.MaxMemoryPeakBytes == nil || *b.MaxMemoryPeakBytes != r.memMax {
		t.Errorf("%s: memory avg/max = %v/%v, want %v/%v", what, deref(b.AverageMemoryPeakBytes), deref(b.MaxMemoryPeakBytes), r.memSum/float64(r.memN), r.memMax)
	}
	if b.CPUCount != r.cpuN {
		t.Errorf("%s: cpu count %d, want %d", what, b.CPUCount, r.cpuN)
	}
	if r.cpuN == 0 {
		if b.TotalCPUSeconds != nil {
			t.Errorf("%s: total CPU present without measured CPU", what)
		}
	} else if b.TotalCPUSeconds == nil || *b.TotalCPUSeconds != r.cpu.Seconds() {
		t.Errorf("%s: total CPU %v, want %v", what, deref(b.TotalCPUSeconds), r.cpu.Seconds())
	}
	if b.OOMCount != r.oom || b.TimeoutCount != r.timeout {
		t.Errorf("%s: oom/timeout = %d/%d, want %d/%d", what, b.OOMCount, b.TimeoutCount, r.oom, r.timeout)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

// withinAccuracy reports whether got is within the sketch's documented
// relative accuracy of want (plus float rounding).
func withinAccuracy(got, want float64) bool {
	return math.Abs(got-want) <= QuantileRelativeAccuracy*want*(1+1e-9)+1e-15
}

func TestCollectorStatistics(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name  string
		execs []Execution
	}{
		{"empty", nil},
		{"single success", []Execution{ex("python", StatusSuccess, 120*ms, 30<<20, 100*ms)}},
		{"single without measures", []Execution{ex("go", StatusSuccess, 7*ms, -1, -1)}},
		{"zero duration", []Execution{ex("go", StatusSuccess, 0, 0, 0)}},
		{"all errors", []Execution{
			ex("python", StatusError, 10*ms, 1<<20, 5*ms),
			ex("python", StatusTimeout, 2*time.Second, 5<<20, 2*time.Second),
			ex("python", StatusOOM, 300*ms, 256<<20, 250*ms),
			ex("python", StatusFailedToStart, 0, -1, -1),
		}},
		{"mixed", []Execution{
			ex("python", StatusSuccess, 15*ms, 10<<20, 12*ms),
			ex("python", StatusSuccess, 25*ms, -1, 20*ms),
			ex("python", StatusSignaled, 40*ms, 11<<20, -1),
			ex("go", StatusSuccess, 3*ms, 2<<20, 2*ms),
			ex("go", StatusCanceled, 900*ms, 3<<20, 800*ms),
			ex("c", StatusTimeout, 5*time.Second, -1, 4*time.Second),
			ex("c", StatusSuccess, 1*ms, 1<<20, 1*ms),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCollector()
			for _, e := range tc.execs {
				if err := c.Record(e); err != nil {
					t.Fatal(err)
				}
			}
			s := c.Summary()
			r := newReference(tc.execs)
			checkStats(t, "summary", r, s.TotalExecutions, s.SuccessCount, s.ErrorCount, s.SuccessRate, s.AverageExecutionTime, s.TotalExecutionTime, s.Breakdown)

			byLang := map[string][]Execution{}
			for _, e := range tc.execs {
				byLang[e.Language] = append(byLang[e.Language], e)
			}
			ls := c.LanguageStats()
			if len(ls) != len(byLang) || s.Languages != len(byLang) {
				t.Fatalf("languages: stats for %d, summary says %d, want %d", len(ls), s.Languages, len(byLang))
			}
			for lang, execs := range byLang {
				st, ok := ls[lang]
				if !ok {
					t.Fatalf("no stats for %q", lang)
				}
				checkStats(t, lang, newReference(execs), st.Count, st.SuccessCount, st.ErrorCount, st.SuccessRate, st.AverageExecutionTime, st.TotalExecutionTime, st.Breakdown)
			}
		})
	}
}

// TestCollectorHandValues checks a few statistics against values worked
// out by hand, independently of the reference implementation.
func TestCollectorHandValues(t *testing.T) {
	c := NewCollector()
	c.RecordExecution(ex("python", StatusSuccess, 1*time.Second, 100, 500*time.Millisecond))
	c.RecordExecution(ex("python", StatusError, 3*time.Second, 300, -1))
	c.RecordExecution(ex("python", StatusSuccess, 2*time.Second, -1, 250*time.Millisecond))
	c.RecordExecution(ex("python", StatusOOM, 2*time.Second, 600, 1*time.Second))
	s := c.LanguageStats()["python"]
	if s.Count != 4 || s.SuccessCount != 2 || s.ErrorCount != 2 || s.SuccessRate != 0.5 {
		t.Errorf("counts: %+v", s)
	}
	if s.TotalExecutionTime != 8 || s.AverageExecutionTime != 2 || *s.MaxExecutionTime != 3 {
		t.Errorf("times: total %v avg %v max %v, want 8, 2, 3", s.TotalExecutionTime, s.AverageExecutionTime, *s.MaxExecutionTime)
	}
	if *s.AverageMemoryPeakBytes != 1000.0/3 || *s.MaxMemoryPeakBytes != 600 || s.MemoryPeakCount != 3 {
		t.Errorf("memory: avg %v max %v n %d", *s.AverageMemoryPeakBytes, *s.MaxMemoryPeakBytes, s.MemoryPeakCount)
	}
	if *s.TotalCPUSeconds != 1.75 || s.CPUCount != 3 || s.OOMCount != 1 || s.TimeoutCount != 0 {
		t.Errorf("cpu %v n %d oom %d timeout %d", *s.TotalCPUSeconds, s.CPUCount, s.OOMCount, s.TimeoutCount)
	}
	if p50 := *s.P50ExecutionTime; math.Abs(p50-2) > 0.02 {
		t.Errorf("p50 %v, want 2 within 1%%", p50)
	}
}

// TestCollectorPercentiles checks p50/p95/p99 against the exact
// percentiles of the same data, per language and merged in Summary.
func TestCollectorPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"lognormal": func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5) * float64(50*time.Millisecond))
		},
		"uniform": func() time.Duration { return time.Duration(rng.Int64N(int64(10 * time.Second))) },
		"bimodal": func() time.Duration {
			if rng.IntN(10) == 0 {
				return 30*time.Second + time.Duration(rng.Int64N(int64(time.Second)))
			}
			return time.Duration(rng.Int64N(int64(20*time.Millisecond))) + time.Millisecond
		},
		"tiny": func() time.Duration { return time.Duration(rng.Int64N(5000)) }, // nanoseconds
	}
	c := NewCollector()
	var all []Execution
	for name, gen := range dists {
		var execs []Execution
		for range 20000 {
			e := ex(name, StatusSuccess, gen(), -1, -1)
			execs = append(execs, e)
			c.RecordExecution(e)
		}
		all = append(all, execs...)
		st := c.LanguageStats()[name]
		r := newReference(execs)
		for _, p := range []struct {
			q   float64
			got float64
		}{{0.5, *st.P50ExecutionTime}, {0.95, *st.P95ExecutionTime}, {0.99, *st.P99ExecutionTime}} {
			if want := r.quantile(p.q); !withinAccuracy(p.got, want) {
				t.Errorf("%s: p%v = %v, exact %v: off by %.3g%%", name, p.q*100, p.got, want, 100*math.Abs(p.got-want)/want)
			}
		}
	}
	s := c.Summary()
	r := newReference(all)
	for _, p := range []struct {
		q   float64
		got float64
	}{{0.5, *s.P50ExecutionTime}, {0.95, *s.P95ExecutionTime}, {0.99, *s.P99ExecutionTime}} {
		if want := r.quantile(p.q); !withinAccuracy(p.got, want) {
			t.Errorf("summary: p%v = %v, exact %v", p.q*100, p.got, want)
		}
	}
}

func TestCollectorJSON(t *testing.T) {
	keys := func(v any) (map[string]any, []string) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var k []string
		for key := range m {
			k = append(k, key)
		}
		sort.Strings(k)
		return m, k
	}
	empty := NewCollector()
	full := NewCollector()
	full.RecordExecution(ex("python", StatusSuccess, time.Second, 1<<20, time.Second))

	me, ke := keys(empty.Summary())
	mf, kf := keys(full.Summary())
	if !slices.Equal(ke, kf) {
		t.Errorf("empty and full summaries differ in fields:\n%v\n%v", ke, kf)
	}
	for _, k := range []string{"total_executions", "success_count", "error_count", "success_rate",
		"average_execution_time", "total_execution_time", "status_counts", "p50_execution_time",
		"p95_execution_time", "p99_execution_time", "max_execution_time", "average_memory_peak_bytes",
		"max_memory_peak_bytes", "total_cpu_seconds", "oom_count", "timeout_count",
		"execution_time_count", "min_execution_time", "quantiles_exact"} {
		if _, ok := mf[k]; !ok {
			t.Errorf("summary lacks %q", k)
		}
	}
	for _, k := range []string{"p50_execution_time", "max_execution_time", "min_execution_time", "average_memory_peak_bytes", "total_cpu_seconds"} {
		if me[k] != nil {
			t.Errorf("empty summary: %s = %v, want null", k, me[k])
		}
		if mf[k] == nil {
			t.Errorf("full summary: %s is null", k)
		}
	}
	if me["total_executions"] != 0.0 || mf["total_executions"] != 1.0 || mf["total_execution_time"] != 1.0 {
		t.Errorf("counts: empty %v, full %v %v", me["total_executions"], mf["total_executions"], mf["total_execution_time"])
	}
	if sc := me["status_counts"].(map[string]any); len(sc) != len(Statuses) {
		t.Errorf("empty status_counts has %d statuses, want %d", len(sc), len(Statuses))
	}

	lsFull := full.LanguageStats()
	_, kl := keys(lsFull["python"])
	_, kz := keys(LanguageStats{Breakdown: (&aggregate{sketch: newSketch()}).breakdown()})
	if !slices.Equal(kl, kz) {
		t.Errorf("empty and full language stats differ in fields:\n%v\n%v", kz, kl)
	}
	for _, k := range []string{"count", "success_count", "error_count", "total_execution_time", "average_execution_time"} {
		if !slices.Contains(kl, k) {
			t.Errorf("language stats lack %q", k)
		}
	}
	if b, _ := json.Marshal(empty.LanguageStats()); string(b) != "{}" {
		t.Errorf("empty language stats marshal to %s, want {}", b)
	}
}

func TestCollectorRejects(t *testing.T) {
	c := NewCollector()
	bad := ex("python", "exploded", time.Second, 1, 1)
	if err := c.Record(bad); !errors.Is(err, ErrUnknownStatus) {
		t.Errorf("unknown status: err = %v", err)
	}
	neg := ex("python", StatusSuccess, time.Second, 1, 1)
	neg.Usage.WallTime = Unavailable[time.Duration]("not measured")
	neg.EndedAt = neg.StartedAt.Add(-time.Second)
	if err := c.Record(neg); !errors.Is(err, ErrNegativeDuration) {
		t.Errorf("negative duration: err = %v", err)
	}
	c.RecordExecution(bad)
	s := c.Summary()
	if s.RejectedCount != 3 || s.TotalExecutions != 0 || s.Languages != 0 || len(c.Recent()) != 0 {
		t.Errorf("after rejections: %+v, recent %d", s, len(c.Recent()))
	}
}

func TestCollectorLanguages(t *testing.T) {
	c := NewCollector(WithMaxLanguages(2))
	for _, l := range []string{"", "go", "py\xff", "rust", "zig", "go", ""} {
		c.RecordExecution(ex(l, StatusSuccess, time.Millisecond, -1, -1))
	}
	ls := c.LanguageStats()
	want := map[string]uint64{UnknownLanguage: 2, "go": 2, OverflowLanguage: 3}
	got := map[string]uint64{}
	for k, v := range ls {
		got[k] = v.Count
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("languages %v, want %v", got, want)
	}
	c2 := NewCollector()
	c2.RecordExecution(ex("py\xff", StatusSuccess, time.Millisecond, -1, -1))
	if _, ok := c2.LanguageStats()["py\uFFFD"]; !ok {
		t.Errorf("invalid UTF-8 not replaced: %v", c2.LanguageStats())
	}
}

func TestCollectorRecent(t *testing.T) {
	c := NewCollector(WithRecent(3))
	for i := range 5 {
		e := ex("go", StatusSuccess, time.Duration(i+1)*time.Millisecond, -1, -1)
		e.ID = string(rune('a' + i))
		e.Command = []string{"prog", e.ID}
		e.Samples = []Sample{{Elapsed: time.Millisecond}}
		c.RecordExecution(e)
	}
	r := c.Recent()
	var ids []string
	for _, e := range r {
		ids = append(ids, e.ID)
		if e.Samples != nil {
			t.Errorf("%s: Samples kept", e.ID)
		}
	}
	if !slices.Equal(ids, []string{"c", "d", "e"}) {
		t.Errorf("recent ids %v, want [c d e]", ids)
	}
	r[0].Command[0] = "changed"
	if c.Recent()[0].Command[0] != "prog" {
		t.Error("Recent returned a shared Command")
	}
	if n := len(NewCollector(WithRecent(0)).Recent()); n != 0 {
		t.Errorf("WithRecent(0) kept %d", n)
	}
	c.Clear()
	if len(c.Recent()) != 0 || c.Summary().TotalExecutions != 0 || len(c.LanguageStats()) != 0 {
		t.Error("Clear left data behind")
	}
	c.RecordExecution(ex("go", StatusError, time.Millisecond, -1, -1))
	if s := c.Summary(); s.TotalExecutions != 1 || s.ErrorCount != 1 || len(c.Recent()) != 1 {
		t.Errorf("after Clear and one record: %+v", s)
	}
}

func TestCollectorBadOptions(t *testing.T) {
	for name, f := range map[string]func(){
		"recent":    func() { WithRecent(-1) },
		"languages": func() { WithMaxLanguages(0) },
		"bound":     func() { WithExactBound(-2) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// TestCollectorConcurrent records from many goroutines while others read,
// and checks that the totals add up exactly.
func TestCollectorConcurrent(t *testing.T) {
	const writers, perWriter = 16, 3000
	c := NewCollector(WithRecent(100))
	langs := []string{"go", "python", "c", "java", "rust"}
	gen := func(w, i int) Execution {
		return ex(langs[(w+i)%len(langs)], Statuses[(w*7+i)%len(Statuses)],
			time.Duration(w*perWriter+i+1)*time.Microsecond, int64(i), time.Duration(i))
	}
	stop := make(chan struct{})
	var readers, wg sync.WaitGroup
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := c.Summary()
				if s.SuccessCount+s.ErrorCount != s.TotalExecutions {
					t.Errorf("inconsistent summary %+v", s)
					return
				}
				_ = c.LanguageStats()
				if len(c.Recent()) > 100 {
					t.Error("Recent grew past its bound")
					return
				}
				if cs, _ := c.Counters(); len(cs) > len(langs) {
					t.Errorf("%d languages counted, want at most %d", len(cs), len(langs))
					return
				}
			}
		}()
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				c.RecordExecution(gen(w, i))
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	var all []Execution
	for w := range writers {
		for i := range perWriter {
			all = append(all, gen(w, i))
		}
	}
	s := c.Summary()
	r := newReference(all)
	checkStats(t, "summary", r, s.TotalExecutions, s.SuccessCount, s.ErrorCount, s.SuccessRate, s.AverageExecutionTime, s.TotalExecutionTime, s.Breakdown)
	if got := len(c.Recent()); got != 100 {
		t.Errorf("Recent has %d records, want 100", got)
	}
}

// TestHistogramBucketBoundaries checks that a value equal to a bucket's
// upper bound falls in that bucket (Prometheus's le), and above the last
// one only in the count (+Inf).
func TestHistogramBucketBoundaries(t *testing.T) {
	c := NewCollector()
	c.RecordExecution(ex("go", StatusSuccess, 5*time.Millisecond, 1<<20, -1))
	c.RecordExecution(ex("go", StatusSuccess, 60*time.Second, 16<<30, -1))
	c.RecordExecution(ex("go", StatusSuccess, 61*time.Second, 16<<30+1, -1))
	langs, _ := c.Counters()
	d, m := langs[0].Duration, langs[0].MemoryPeak
	last := len(DurationBuckets) - 1
	if d.Buckets[0] != 1 || d.Buckets[last]-d.Buckets[last-1] != 1 || d.Count-d.Buckets[last] != 1 {
		t.Errorf("duration buckets %v, count %d", d.Buckets, d.Count)
	}
	lastM := len(MemoryBuckets) - 1
	if m.Buckets[0] != 1 || m.Buckets[lastM]-m.Buckets[lastM-1] != 1 || m.Count-m.Buckets[lastM] != 1 {
		t.Errorf("memory buckets %v, count %d", m.Buckets, m.Count)
	}
}

func TestStatusCPUTimeout(t *testing.T) {
	if !StatusCPUTimeout.Valid() || StatusCPUTimeout == StatusTimeout || Statuses[StatusCPUTimeout.Index()] != "cpu_timeout" {
		t.Fatalf("cpu_timeout is not a known status of its own: %v", Statuses)
	}
	c := NewCollector()
	if err := c.Record(ex("c", StatusCPUTimeout, 2*time.Second, 1<<20, 2*time.Second)); err != nil {
		t.Fatal(err)
	}
	s := c.Summary()
	if s.StatusCounts[StatusCPUTimeout] != 1 || s.StatusCounts[StatusTimeout] != 0 || s.ErrorCount != 1 || s.TimeoutCount != 0 || s.ExecutionTimeCount != 1 {
		t.Errorf("cpu_timeout: %+v", s)
	}
}
