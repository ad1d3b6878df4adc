package metrics

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// DefaultRecent is how many of the most recent records a Collector keeps
// for inspection unless WithRecent says otherwise.
const DefaultRecent = 1000

// DefaultMaxLanguages is how many distinct languages a Collector keeps
// statistics for unless WithMaxLanguages says otherwise.
const DefaultMaxLanguages = 100

// UnknownLanguage is the language under which executions with an empty
// Language are counted.
const UnknownLanguage = "unknown"

// OverflowLanguage is the language under which executions are counted once
// the Collector already holds its maximum number of languages. It bounds
// memory and Prometheus label cardinality when callers pass arbitrary
// strings as languages.
const OverflowLanguage = "other"

// Errors of Collector.Record.
var (
	// ErrUnknownStatus is returned when the execution's Status is not one of Statuses.
	ErrUnknownStatus = errors.New("metrics: unknown execution status")
	// ErrNegativeDuration is returned when the execution's Duration is negative (EndedAt
	// before StartedAt, with no measured WallTime).
	ErrNegativeDuration = errors.New("metrics: negative execution time")
)

// maxShards caps the per-language shards (each holds a sketch of at most
// 16 KiB, and some of the language's exact values).
const maxShards = 16

// CollectorOption configures a Collector.
type CollectorOption func(*collectorConfig)

type collectorConfig struct {
	recent       int
	maxLanguages int
	exactBound   int // or Unbounded
}

// WithRecent sets how many of the most recent records the Collector keeps
// for Recent; 0 keeps none. It panics when n is negative.
func WithRecent(n int) CollectorOption {
	if n < 0 {
		panic(fmt.Sprintf("metrics: WithRecent(%d): the number of recent records must not be negative", n))
	}
	return func(c *collectorConfig) { c.recent = n }
}

// WithMaxLanguages sets how many distinct languages the Collector keeps
// statistics for; executions of further languages are counted under
// OverflowLanguage (which does not count towards n). It panics when n < 1.
func WithMaxLanguages(n int) CollectorOption {
	if n < 1 {
		panic(fmt.Sprintf("metrics: WithMaxLanguages(%d): at least one language is needed", n))
	}
	return func(c *collectorConfig) { c.maxLanguages = n }
}

// WithExactBound sets how many execution times per language the Collector
// keeps to compute exact quantiles (see the package documentation,
// "Quantiles"); beyond n, a language's quantiles come from its sketch and
// the times it kept are freed. Unbounded keeps every time, so that the
// quantiles are always exact (and no sketch is kept), at 8 to 16 bytes per
// execution. It panics when n is negative and not Unbounded.
func WithExactBound(n int) CollectorOption {
	if n < 0 && n != Unbounded {
		panic(fmt.Sprintf("metrics: WithExactBound(%d): the bound must not be negative (or must be Unbounded)", n))
	}
	return func(c *collectorConfig) { c.exactBound = n }
}

// Collector aggregates execution records in memory, per language and in
// total. It is the Go form of the original module's MetricsCollector, with
// bounded memory: every statistic is streaming (counters, fixed histogram
// buckets and a DDSketch of at most 16 KiB per language shard) except the
// exact execution times, kept up to WithExactBound per language (8 KiB to
// 16 KiB per language at the default bound, freed once the language passes
// it), and only the most recent records are kept (a ring of WithRecent
// records, without their Samples). It is safe for concurrent use;
// recording takes no global lock: each language's statistics are split
// into shards, each with its own mutex, and are merged when read. Make one
// with NewCollector; the zero Collector is not usable.
type Collector struct {
	cfg     collectorConfig
	nShards int
	st      atomic.Pointer[collectorState]
}

// collectorState is everything Clear discards.
type collectorState struct {
	// langs maps a caller's language string (as given, or normalised) to
	// its statistics. It is copied on write: readers load it without a
	// lock.
	langs atomic.Pointer[map[string]*language]

	mu      sync.Mutex           // serialises adding languages
	byName  map[string]*language // normalised name -> statistics; under mu
	list    []*language          // in order of first record; under mu
	counted int                  // languages other than OverflowLanguage; under mu

	ring     *ring // nil when no recent record is kept
	rejected atomic.Uint64
}

type language struct {
	name   string
	shards []shard
	mask   uint32
	bound  int // exact values to keep, or Unbounded

	// held counts the execution times claimed for keeping, up to bound+1;
	// full is set once it passed bound. Only the first bound+1 recordings
	// of a language touch held.
	held atomic.Int64
	full atomic.Bool
}

// hold reports whether the next execution time of l is kept exactly.
func (l *language) hold() bool {
	if l.bound == Unbounded {
		return true
	}
	if l.full.Load() {
		return false
	}
	if l.held.Add(1) <= int64(l.bound) {
		return true
	}
	l.full.Store(true)
	return false
}

type shard struct {
	mu  sync.Mutex
	agg aggregate
	_   [64]byte // keeps the next shard's mutex off this cache line
}

// NewCollector returns an empty Collector keeping DefaultRecent recent
// records, at most DefaultMaxLanguages languages and DefaultExactBound
// execution times per language, unless opts say otherwise.
func NewCollector(opts ...CollectorOption) *Collector {
	c := &Collector{cfg: collectorConfig{recent: DefaultRecent, maxLanguages: DefaultMaxLanguages, exactBound: DefaultExactBound}}
	for _, o := range opts {
		o(&c.cfg)
	}
	// Twice as many shards as Ps, as a power of two, so that a recording
	// goroutine nearly always finds a free one.
	c.nShards = 1
	for c.nShards < 2*runtime.GOMAXPROCS(0) && c.nShards < maxShards {
		c.nShards *= 2
	}
	c.st.Store(c.newState())
	return c
}

func (c *Collector) newState() *collectorState {
	st := &collectorState{byName: make(map[string]*language)}
	m := make(map[string]*language)
	st.langs.Store(&m)
	if c.cfg.recent > 0 {
		st.ring = &ring{slots: make([]slot, c.cfg.recent)}
	}
	return st
}

// RecordExecution records one finished execution. Its execution time is
// e.Duration(), its memory peak e.Usage.MemoryPeak (when measured), its CPU
// time e.Usage.CPUTotal (when measured); an execution with
// StatusFailedToStart never ran, and counts in the totals and by status
// but in no time, CPU or memory statistic. An empty Language is counted as
// UnknownLanguage; a Language that is not valid UTF-8 has its invalid bytes
// replaced by U+FFFD. A record Record would reject is dropped and counted in
// Summary's RejectedCount. The Collector keeps Command and Limits of the
// most recent records by reference: do not modify them after recording.
// RecordExecution implements cgroupmon.Sink.
func (c *Collector) RecordExecution(e Execution) {
	_ = c.record(&e)
}

// Record is RecordExecution that also returns why a record was rejected:
// ErrUnknownStatus or ErrNegativeDuration (wrapped). A rejected record
// changes no statistic but RejectedCount.
func (c *Collector) Record(e Execution) error {
	return c.record(&e)
}

func (c *Collector) record(e *Execution) error {
	st := c.st.Load()
	idx := e.Status.Index()
	if idx < 0 {
		st.rejected.Add(1)
		return fmt.Errorf("%w %q (execution %q)", ErrUnknownStatus, e.Status, e.ID)
	}
	d := e.Duration()
	if d < 0 {
		st.rejected.Add(1)
		return fmt.Errorf("%w: %v (execution %q)", ErrNegativeDuration, d, e.ID)
	}
	l := st.lookup(e.Language, c)
	hold := idx != failedIndex && l.hold()
	sh := l.lock()
	sh.agg.add(idx, d, e, hold)
	if !hold && sh.agg.times != nil && l.full.Load() {
		sh.agg.times = nil // the language passed its bound: they are of no more use
	}
	sh.mu.Unlock()
	if st.ring != nil {
		st.ring.put(e)
	}
	return nil
}

// lookup returns the statistics of the language called raw, adding them on
// first sight.
func (st *collectorState) lookup(raw string, c *Collector) *language {
	if l, ok := (*st.langs.Load())[raw]; ok {
		return l
	}
	return st.add(raw, c)
}

func normalizeLanguage(raw string) string {
	if raw == "" {
		return UnknownLanguage
	}
	if !utf8.ValidString(raw) {
		return strings.ToValidUTF8(raw, "\uFFFD")
	}
	return raw
}

func (st *collectorState) add(raw string, c *Collector) *language {
	st.mu.Lock()
	defer st.mu.Unlock()
	old := *st.langs.Load()
	if l, ok := old[raw]; ok {
		return l
	}
	name := normalizeLanguage(raw)
	l, ok := st.byName[name]
	if !ok && name != OverflowLanguage && st.counted >= c.cfg.maxLanguages {
		name = OverflowLanguage
		l, ok = st.byName[name]
	}
	if !ok {
		l = &language{name: name, shards: make([]shard, c.nShards), mask: uint32(c.nShards - 1), bound: c.cfg.exactBound}
		if l.bound != Unbounded {
			for i := range l.shards {
				l.shards[i].agg.sketch = newSketch()
			}
		}
		st.byName[name] = l
		st.list = append(st.list, l)
		if name != OverflowLanguage {
			st.counted++
		}
	}
	// Remember raw for the lock-free path unless it is an overflowing or
	// aliasing name that could grow the map without bound.
	if l.name == OverflowLanguage && raw != OverflowLanguage {
		return l
	}
	if raw != l.name && len(old) >= 2*c.cfg.maxLanguages+2 {
		return l
	}
	m := make(map[string]*language, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[raw] = l
	st.langs.Store(&m)
	return l
}

// lock locks and returns a shard of l, preferring one no other goroutine
// holds.
func (l *language) lock() *shard {
	i := rand.Uint32()
	for j := range uint32(len(l.shards)) {
		s := &l.shards[(i+j)&l.mask]
		if s.mu.TryLock() {
			return s
		}
	}
	s := &l.shards[i&l.mask]
	s.mu.Lock()
	return s
}

// snapshot returns l's shards merged, with what the quantiles need (the
// execution times or the sketch) when quantiles.
func (l *language) snapshot(quantiles bool) aggregate {
	var a aggregate
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		a.merge(&s.agg, quantiles)
		s.mu.Unlock()
	}
	return a
}

type langSnapshot struct {
	name string
	agg  aggregate
}

// snapshot returns every language's merged statistics, sorted by name.
func (c *Collector) snapshot(quantiles bool) (langs []langSnapshot, rejected uint64) {
	st := c.st.Load()
	st.mu.Lock()
	list := slices.Clone(st.list)
	st.mu.Unlock()
	langs = make([]langSnapshot, 0, len(list))
	for _, l := range list {
		langs = append(langs, langSnapshot{name: l.name, agg: l.snapshot(quantiles)})
	}
	sort.Slice(langs, func(i, j int) bool { return langs[i].name < langs[j].name })
	return langs, st.rejected.Load()
}

// LanguageStats returns the statistics of every language recorded since
// the last Clear, keyed by language. It is empty, not nil, when nothing was
// recorded.
func (c *Collector) LanguageStats() map[string]LanguageStats {
	langs, _ := c.snapshot(true)
	out := make(map[string]LanguageStats, len(langs))
	for _, l := range langs {
		out[l.name] = l.agg.languageStats()
	}
	return out
}

// Summary returns the statistics over every execution recorded since the
// last Clear. An empty Collector gives the same fields with zero counts and
// nil percentiles.
func (c *Collector) Summary() Summary {
	langs, rejected := c.snapshot(true)
	var total aggregate
	for i := range langs {
		total.merge(&langs[i].agg, true)
	}
	ls := total.languageStats()
	return Summary{
		TotalExecutions:      ls.Count,
		SuccessCount:         ls.SuccessCount,
		ErrorCount:           ls.ErrorCount,
		SuccessRate:          ls.SuccessRate,
		AverageExecutionTime: ls.AverageExecutionTime,
		TotalExecutionTime:   ls.TotalExecutionTime,
		Languages:            len(langs),
		RejectedCount:        rejected,
		Breakdown:            ls.Breakdown,
	}
}

// Counters returns the counters of every language recorded since the last
// Clear, sorted by language, and the number of records refused (Summary's
// RejectedCount). It computes no percentile: it is what an exporter
// scraped every few seconds calls.
func (c *Collector) Counters() (languages []Counters, rejected uint64) {
	langs, rejected := c.snapshot(false)
	languages = make([]Counters, len(langs))
	for i := range langs {
		languages[i] = langs[i].agg.counters(langs[i].name)
	}
	return languages, rejected
}

// Recent returns copies of the most recent records, oldest first, at most
// the WithRecent number. Their Samples are nil; Command is copied, Limits
// is shared and must not be modified. A record still being written by a
// concurrent RecordExecution may be missing.
func (c *Collector) Recent() []Execution {
	st := c.st.Load()
	if st.ring == nil {
		return []Execution{}
	}
	return st.ring.recent()
}

// Clear discards every statistic and recent record, as the original
// module's clear did. A RecordExecution running concurrently with Clear is
// counted either before it (and discarded) or after it.
func (c *Collector) Clear() {
	c.st.Store(c.newState())
}

// ring keeps the most recent records. Writers claim a sequence number with
// one atomic add and then lock only their slot.
type ring struct {
	next  atomic.Uint64
	slots []slot
}

type slot struct {
	mu  sync.Mutex
	seq uint64
	set bool
	e   Execution
}

func (r *ring) put(e *Execution) {
	seq := r.next.Add(1) - 1
	s := &r.slots[seq%uint64(len(r.slots))]
	s.mu.Lock()
	// A slower writer of an older record must not overwrite a newer one.
	if !s.set || s.seq < seq {
		s.e = *e
		s.e.Samples = nil
		s.seq, s.set = seq, true
	}
	s.mu.Unlock()
}

func (r *ring) recent() []Execution {
	hi := r.next.Load()
	n := uint64(len(r.slots))
	lo := hi - min(hi, n)
	out := make([]Execution, 0, hi-lo)
	for seq := lo; seq < hi; seq++ {
		s := &r.slots[seq%n]
		s.mu.Lock()
		if s.set && s.seq == seq {
			e := s.e
			e.Command = slices.Clone(e.Command)
			out = append(out, e)
		}
		s.mu.Unlock()
	}
	return out
}
