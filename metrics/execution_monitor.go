package metrics

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors of ExecutionMonitor.
var (
	// ErrDuplicateExecution is returned by StartExecution with the id of an execution
	// that is still running.
	ErrDuplicateExecution = errors.New("metrics: execution already started")
	// ErrUnknownExecution is returned by EndExecution with an id that was never started
	// (or that ended too long ago to be remembered).
	ErrUnknownExecution = errors.New("metrics: unknown execution")
	// ErrExecutionEnded is returned by EndExecution with the id of an execution that
	// already ended.
	ErrExecutionEnded = errors.New("metrics: execution already ended")
	// ErrInvalidExecution is returned for bad arguments (empty id, negative code length,
	// unknown status).
	ErrInvalidExecution = errors.New("metrics: invalid execution")
)

// rememberedEnds is how many ended ids an ExecutionMonitor remembers to
// tell a second EndExecution (ErrExecutionEnded) from an unknown id
// (ErrUnknownExecution); both are errors.
const rememberedEnds = 1024

// MonitorOption configures an ExecutionMonitor.
type MonitorOption func(*ExecutionMonitor)

// WithClock makes the ExecutionMonitor read time from now instead of
// time.Now; for tests. Execution times are now()'s differences, so now
// should include a monotonic reading or be a fake that never goes back.
func WithClock(now func() time.Time) MonitorOption {
	return func(m *ExecutionMonitor) { m.now = now }
}

// ExecutionMonitor tracks executions from start to end, the Go form of the
// original module's ExecutionMonitor: each execution is timed from its own
// start with the monotonic clock, and every completed execution is recorded
// in a Collector. It is safe for concurrent use. Make one with
// NewExecutionMonitor; the zero ExecutionMonitor is not usable.
type ExecutionMonitor struct {
	collector *Collector
	now       func() time.Time

	mu        sync.Mutex
	running   map[string]runningExecution
	ended     map[string]int // the last rememberedEnds ended ids -> slot in endedRing
	endedRing []string
	endedNext int

	started, completed, success, timed uint64
	totalTime                          time.Duration
}

type runningExecution struct {
	language   string
	codeLength int
	start      time.Time
}

// MonitorStats is what ExecutionMonitor.Stats returns: the original
// get_execution_stats fields plus the running count and total time.
// Execution times are in seconds and cover completed executions, except
// those that failed to start (StatusFailedToStart), which never ran.
type MonitorStats struct {
	// TotalExecutions counts executions started.
	TotalExecutions uint64 `json:"total_executions"`
	// CompletedExecutions counts executions ended.
	CompletedExecutions uint64 `json:"completed_executions"`
	// RunningExecutions counts executions started and not yet ended.
	RunningExecutions uint64 `json:"running_executions"`
	// ExecutionTimeCount counts the completed executions in the time
	// statistics: all but those that failed to start.
	ExecutionTimeCount uint64 `json:"execution_time_count"`
	// AverageExecutionTime is TotalExecutionTime/ExecutionTimeCount, in
	// seconds; 0 when ExecutionTimeCount is 0.
	AverageExecutionTime float64 `json:"average_execution_time"`
	// TotalExecutionTime is the sum of the times of the completed
	// executions that ran, in seconds, as timed by the monitor.
	TotalExecutionTime float64 `json:"total_execution_time"`
	// SuccessCount counts completed executions with StatusSuccess;
	// ErrorCount counts those with any other status.
	SuccessCount uint64 `json:"success_count"`
	ErrorCount   uint64 `json:"error_count"`
}

// NewExecutionMonitor returns a monitor that records completed executions
// in c; c may be nil to record nowhere.
func NewExecutionMonitor(c *Collector, opts ...MonitorOption) *ExecutionMonitor {
	m := &ExecutionMonitor{
		collector: c,
		now:       time.Now,
		running:   make(map[string]runningExecution),
		ended:     make(map[string]int),
		endedRing: make([]string, rememberedEnds),
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// StartExecution starts timing execution id of a program in language
// whose source is codeLength bytes long. An empty id or a negative
// codeLength is ErrInvalidExecution; an id still running is
// ErrDuplicateExecution. An id may be reused once its execution ended.
func (m *ExecutionMonitor) StartExecution(id, language string, codeLength int) error {
	if id == "" {
		return fmt.Errorf("%w: empty execution id", ErrInvalidExecution)
	}
	if codeLength < 0 {
		return fmt.Errorf("%w: execution %q: negative code length %d", ErrInvalidExecution, id, codeLength)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.running[id]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateExecution, id)
	}
	m.running[id] = runningExecution{language: language, codeLength: codeLength, start: m.now()}
	delete(m.ended, id)
	m.started++
	return nil
}

// EndExecution ends execution id with status and returns its record, which
// it also records in the monitor's Collector. result, when not nil, is
// what the caller measured (typically cgroupmon's record): its Usage,
// Command, exit details and so on are kept. The monitor sets ID, Language,
// CodeLength and Status from its own knowledge and the arguments;
// StartedAt and EndedAt when result leaves them zero; and
// Usage.WallTime, when result did not measure it, to the monitor's
// monotonic time since StartExecution. The monitor's Stats always use its
// own timing.
//
// An unknown status or id is an error (ErrInvalidExecution,
// ErrUnknownExecution), and so is a second end (ErrExecutionEnded); on
// error nothing changes.
func (m *ExecutionMonitor) EndExecution(id string, status Status, result *Execution) (Execution, error) {
	if !status.Valid() {
		return Execution{}, fmt.Errorf("%w: execution %q: unknown status %q", ErrInvalidExecution, id, status)
	}
	m.mu.Lock()
	r, ok := m.running[id]
	if !ok {
		_, ended := m.ended[id]
		m.mu.Unlock()
		if ended {
			return Execution{}, fmt.Errorf("%w: %q", ErrExecutionEnded, id)
		}
		return Execution{}, fmt.Errorf("%w: %q", ErrUnknownExecution, id)
	}
	end := m.now()
	elapsed := max(end.Sub(r.start), 0) // only a fake clock can go back
	delete(m.running, id)
	if old := m.endedRing[m.endedNext]; old != "" && m.ended[old] == m.endedNext {
		delete(m.ended, old) // unless old ended again later, in another slot
	}
	m.endedRing[m.endedNext] = id
	m.ended[id] = m.endedNext
	m.endedNext = (m.endedNext + 1) % len(m.endedRing)
	m.completed++
	if status == StatusSuccess {
		m.success++
	}
	if status != StatusFailedToStart {
		m.timed++
		m.totalTime += elapsed
	}
	m.mu.Unlock()

	var e Execution
	if result != nil {
		e = *result
	}
	e.ID, e.Language, e.CodeLength, e.Status = id, r.language, r.codeLength, status
	if e.StartedAt.IsZero() {
		e.StartedAt = r.start
	}
	if e.EndedAt.IsZero() {
		e.EndedAt = end
	}
	if !e.Usage.WallTime.Valid() {
		e.Usage.WallTime = Measured(elapsed, SourceMonotonic)
	}
	if m.collector != nil {
		m.collector.RecordExecution(e)
	}
	return e, nil
}

// Running returns the number of executions started and not yet ended.
func (m *ExecutionMonitor) Running() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.running)
}

// Stats returns the monitor's counts and times, the original
// get_execution_stats.
func (m *ExecutionMonitor) Stats() MonitorStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := MonitorStats{
		TotalExecutions:     m.started,
		CompletedExecutions: m.completed,
		RunningExecutions:   uint64(len(m.running)),
		ExecutionTimeCount:  m.timed,
		TotalExecutionTime:  m.totalTime.Seconds(),
		SuccessCount:        m.success,
		ErrorCount:          m.completed - m.success,
	}
	if m.timed > 0 {
		s.AverageExecutionTime = s.TotalExecutionTime / float64(m.timed)
	}
	return s
}
