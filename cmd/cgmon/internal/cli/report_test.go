package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cgmon/cgmon/cgroupmon"
	"github.com/cgmon/cgmon/metrics"
)

var (
	update  = flag.Bool("update", false, "rewrite the golden files in testdata/cli")
	plotOut = flag.String("plot-out", "", "also write the fixture plot to this .svg file, to look at")
)

const goldenDir = "../../../../testdata/cli"

// goldenAbs is goldenDir made absolute when the tests start, so that tests
// that change directory (t.Chdir) still find the golden files.
var goldenAbs = func() string {
	p, err := filepath.Abs(goldenDir)
	if err != nil {
		panic(err)
	}
	return p
}()

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenAbs, name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (run with -update after checking the change):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

func ptr[T any](v T) *T { return &v }

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// cgroupExecution is a finished execution on a delegated cgroup v2 host,
// with limits, the samples of a CPU burst and then an allocation.
func cgroupExecution() metrics.Execution {
	ms := time.Millisecond
	ex := metrics.Execution{
		ID: "sub-42", Language: "python", CodeLength: 1234,
		Command: []string{"python3", "-c", "print('hi')"},
		Status:  metrics.StatusSuccess, ExitCode: 0,
		StartedAt: t0, EndedAt: t0.Add(1500 * ms),
		Backend: metrics.BackendCgroup2,
		Usage: metrics.Usage{
			WallTime:          metrics.Measured(1500*ms, metrics.SourceMonotonic),
			CPUUser:           metrics.Measured(900*ms, metrics.SourceCgroupCPUStat),
			CPUSystem:         metrics.Measured(100*ms, metrics.SourceCgroupCPUStat),
			CPUTotal:          metrics.Measured(1000*ms, metrics.SourceCgroupCPUStat),
			CPUSamples:        metrics.Measured(15, metrics.SourceSampler),
			CPUAveragePercent: metrics.Measured(66.666666, metrics.SourceCgroupCPUStat),
			CPUPeakPercent:    metrics.Measured(99.5, metrics.SourceSampler),
			MemoryStart:       metrics.Measured[uint64](3<<20, metrics.SourceSampledMemoryCurrent),
			MemoryPeak:        metrics.Measured[uint64](200<<20+12345, metrics.SourceCgroupMemoryPeak),
			PidsPeak:          metrics.Measured[uint64](3, metrics.SourceCgroupPidsPeak),
			IORead:            metrics.Measured[uint64](4096, metrics.SourceCgroupIOStat),
			IOWrite:           metrics.Measured[uint64](0, metrics.SourceCgroupIOStat),
			CPUThrottled:      metrics.Measured(250*ms, metrics.SourceCgroupCPUStat),
			CPUSamplesDropped: metrics.Measured(1, metrics.SourceSampler),
			CPUWait:           metrics.Measured(345*ms, metrics.SourceCgroupCPUPressure),
			MemoryWait:        metrics.Measured(0*ms, metrics.SourceCgroupMemoryPressure),
			IOWait:            metrics.Measured(2*ms, metrics.SourceCgroupIOPressure),
			MemoryProcessPeak: metrics.Measured[uint64](12<<20, metrics.SourceRusageMaxRSS),
			MemoryAnonPeak:    metrics.Measured[uint64](10<<20, metrics.SourceSampledMemoryAnon),
			MemoryFileAtEnd:   metrics.Measured[uint64](180<<20, metrics.SourceCgroupMemoryStat),
			MemoryShmemAtEnd:  metrics.Measured[uint64](100<<20, metrics.SourceCgroupMemoryStat),
			MemoryKernelAtEnd: metrics.Measured[uint64](3<<20, metrics.SourceCgroupMemoryStat),
		},
		Limits: &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr(int64(256 << 20))},
			CPU:    &specs.LinuxCPU{Quota: ptr(int64(100000)), Period: ptr(uint64(100000))},
			Pids:   &specs.LinuxPids{Limit: ptr(int64(64))},
		},
	}
	for i := 1; i <= 15; i++ {
		s := metrics.Sample{Elapsed: time.Duration(i) * 100 * ms, MemoryValid: true}
		if i <= 8 {
			s.CPUPercent = 99
			s.Memory = 3 << 20
		} else {
			s.CPUPercent = 10
			s.Memory = uint64(i-8) * 30 << 20
		}
		s.CPU = time.Duration(i) * 66 * ms
		ex.Samples = append(ex.Samples, s)
	}
	return ex
}

// hybridTimeout is an execution cgmon's timeout ended on a hybrid host,
// too short for any sample.
func hybridTimeout() metrics.Execution {
	const early = "the execution ended before the first sample"
	return metrics.Execution{
		ID: "job 7", Language: "c", CodeLength: 88,
		Command: []string{"./a.out", "it's", "multi\nline"},
		Status:  metrics.StatusTimeout, Reason: "timeout 50ms", ExitCode: -1,
		Signal: 9, TimedOut: true, LeftoverProcessesKilled: 2,
		StartedAt: t0, EndedAt: t0.Add(52 * time.Millisecond),
		Backend: metrics.BackendHybrid,
		Usage: metrics.Usage{
			WallTime:          metrics.Measured(52*time.Millisecond, metrics.SourceMonotonic),
			CPUUser:           metrics.Measured(40*time.Millisecond, metrics.SourceCgroupCPUStat),
			CPUSystem:         metrics.Measured(10*time.Millisecond, metrics.SourceCgroupCPUStat),
			CPUTotal:          metrics.Measured(50*time.Millisecond, metrics.SourceCgroupCPUStat),
			CPUSamples:        metrics.Measured(0, metrics.SourceSampler),
			CPUAveragePercent: metrics.Measured(96.153846, metrics.SourceCgroupCPUStat),
			CPUPeakPercent:    metrics.Unavailable[float64](early),
			MemoryStart:       metrics.Unavailable[uint64](early),
			MemoryPeak:        metrics.Measured[uint64](1<<20+512, metrics.SourceRusageMaxRSS),
			PidsPeak:          metrics.Unavailable[uint64]("the tree was never sampled"),
			IORead:            metrics.Measured[uint64](0, metrics.SourceProcIO),
			IOWrite:           metrics.Measured[uint64](0, metrics.SourceProcIO),
			CPUThrottled:      metrics.Unavailable[time.Duration]("the cpu controller is not enabled for this cgroup"),
			CPUSamplesDropped: metrics.Measured(0, metrics.SourceSampler),
			CPUWait:           metrics.Measured(1*time.Millisecond, metrics.SourceCgroupCPUPressure),
			MemoryWait:        metrics.Measured(time.Duration(0), metrics.SourceCgroupMemoryPressure),
			IOWait:            metrics.Measured(time.Duration(0), metrics.SourceCgroupIOPressure),
			MemoryProcessPeak: metrics.Measured[uint64](1<<20+512, metrics.SourceRusageMaxRSS),
			MemoryAnonPeak:    metrics.Unavailable[uint64]("no memory controller: no memory.stat"),
			MemoryFileAtEnd:   metrics.Unavailable[uint64]("no memory controller: no memory.stat"),
			MemoryShmemAtEnd:  metrics.Unavailable[uint64]("no memory controller: no memory.stat"),
			MemoryKernelAtEnd: metrics.Unavailable[uint64]("no memory controller: no memory.stat"),
		},
	}
}

// hybridEscaped is an execution whose main process moved itself out of
// its cgroup and left a child there, which cgmon found and killed.
func hybridEscaped() metrics.Execution {
	ex := hybridTimeout()
	ex.ID, ex.Status, ex.Reason, ex.ExitCode, ex.Signal, ex.TimedOut = "escape", metrics.StatusSuccess, "", 0, 0, false
	ex.LeftoverProcessesKilled, ex.EscapedProcessesKilled = 0, 1
	why := "1 process(es) had moved out of the execution's cgroup (into /elsewhere); CPU time spent outside the cgroup is not counted"
	ex.LowerBounds = map[metrics.Metric]string{
		metrics.MetricCPUUser: why, metrics.MetricCPUSystem: why,
		metrics.MetricCPUTotal: why, metrics.MetricCPUAveragePercent: why,
	}
	return ex
}

func TestReportGolden(t *testing.T) {
	for name, ex := range map[string]metrics.Execution{
		"cgroup2-success": cgroupExecution(),
		"hybrid-timeout":  hybridTimeout(),
		"hybrid-escaped":  hybridEscaped(),
	} {
		t.Run(name, func(t *testing.T) {
			rep := NewReport(&ex)
			var h, j bytes.Buffer
			if err := rep.WriteHuman(&h); err != nil {
				t.Fatal(err)
			}
			if err := rep.WriteJSON(&j); err != nil {
				t.Fatal(err)
			}
			golden(t, "report-"+name+".txt.golden", h.Bytes())
			golden(t, "report-"+name+".json.golden", j.Bytes())

			// Every Usage field appears under its report keys, in
			// sources when measured and in unavailable when not.
			var raw map[string]any
			if err := json.Unmarshal(j.Bytes(), &raw); err != nil {
				t.Fatal(err)
			}
			for _, f := range ex.Usage.Fields() {
				for _, k := range ReportKeys(f.Name) {
					v, ok := raw[k]
					if !ok {
						t.Errorf("report lacks %s", k)
					}
					if f.Valid != (v != nil) {
						t.Errorf("%s = %v but measured = %v", k, v, f.Valid)
					}
					if f.Valid && rep.Sources[k] != string(f.Source) {
						t.Errorf("sources[%s] = %q, want %q", k, rep.Sources[k], f.Source)
					}
					if !f.Valid && rep.Unavailable[k] != f.Reason {
						t.Errorf("unavailable[%s] = %q, want %q", k, rep.Unavailable[k], f.Reason)
					}
				}
			}
			if strings.Contains(h.String(), "\nline") {
				t.Error("a newline in an argument broke a line of the human report")
			}
		})
	}
}

func TestReportMiB(t *testing.T) {
	ex := cgroupExecution()
	rep := NewReport(&ex)
	if *rep.MemoryPeakBytes != 200<<20+12345 {
		t.Errorf("memory_peak_bytes %d", *rep.MemoryPeakBytes)
	}
	if want := round(float64(200<<20+12345)/(1<<20), 3); *rep.MemoryPeakMB != want {
		t.Errorf("memory_peak_mb %v, want %v (MiB)", *rep.MemoryPeakMB, want)
	}
}

func TestExitStatus(t *testing.T) {
	startErr := func(cause error) error { return fmt.Errorf("%w: %w", cgroupmon.ErrStart, cause) }
	failed := metrics.Execution{Status: metrics.StatusFailedToStart, ExitCode: -1}
	cases := []struct {
		name string
		ex   metrics.Execution
		err  error
		sig  os.Signal
		want int
	}{
		{"success", metrics.Execution{Status: metrics.StatusSuccess}, nil, nil, 0},
		{"error", metrics.Execution{Status: metrics.StatusError, ExitCode: 3}, nil, nil, 3},
		{"signaled", metrics.Execution{Status: metrics.StatusSignaled, ExitCode: -1, Signal: 11}, nil, nil, 139},
		{"timeout", metrics.Execution{Status: metrics.StatusTimeout, ExitCode: -1, Signal: 9, TimedOut: true}, nil, nil, 124},
		{"cpu timeout", metrics.Execution{Status: metrics.StatusCPUTimeout, ExitCode: -1, Signal: 9}, nil, nil, 152},
		{"oom killed", metrics.Execution{Status: metrics.StatusOOM, ExitCode: -1, Signal: 9, OOMKilled: true}, nil, nil, 137},
		{"oom exited", metrics.Execution{Status: metrics.StatusOOM, ExitCode: 1, OOMKilled: true}, nil, nil, 1},
		{"canceled by SIGINT", metrics.Execution{Status: metrics.StatusCanceled, ExitCode: -1, Signal: 9}, nil, syscall.SIGINT, 130},
		{"canceled by SIGTERM", metrics.Execution{Status: metrics.StatusCanceled, ExitCode: -1, Signal: 9}, nil, syscall.SIGTERM, 143},
		{"not found in PATH", failed, startErr(exec.ErrNotFound), nil, 127},
		{"no such file", failed, startErr(&fs.PathError{Op: "fork/exec", Path: "/x", Err: syscall.ENOENT}), nil, 127},
		{"permission", failed, startErr(&fs.PathError{Op: "fork/exec", Path: "/x", Err: syscall.EACCES}), nil, 126},
		{"exec format", failed, startErr(&fs.PathError{Op: "fork/exec", Path: "/x", Err: syscall.ENOEXEC}), nil, 126},
	}
	for _, c := range cases {
		if got := exitStatus(&c.ex, c.err, c.sig); got != c.want {
			t.Errorf("%s: exit status %d, want %d", c.name, got, c.want)
		}
	}
}

func TestLimitFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "limits.json")
	os.WriteFile(file, []byte(`{"memory": {"limit": 1073741824, "swap": -1}, "pids": {"limit": 10}, "cpu": {"quota": 200000, "period": 100000}}`), 0o644)
	f := limitFlags{File: file, MemoryMax: "256M", CPUs: 0.5, cpusSet: true}
	l, err := f.build()
	if err != nil {
		t.Fatal(err)
	}
	if *l.Memory.Limit != 256<<20 || *l.Memory.Swap != -1 {
		t.Errorf("memory %+v: the flag should override the limit and keep the file's swap", l.Memory)
	}
	if *l.CPU.Quota != 50000 || *l.CPU.Period != 100000 {
		t.Errorf("cpu quota %d period %d, want 50000 100000", *l.CPU.Quota, *l.CPU.Period)
	}
	if *l.Pids.Limit != 10 {
		t.Errorf("pids %d: the file's value should stay", *l.Pids.Limit)
	}
	if l, err := (&limitFlags{}).build(); l != nil || err != nil {
		t.Errorf("no limits: %v, %v; want nil, nil", l, err)
	}

	os.WriteFile(filepath.Join(dir, "typo.json"), []byte(`{"memroy": {"limit": 1}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "two.json"), []byte(`{} {}`), 0o644)
	for _, bad := range []struct {
		f   limitFlags
		msg string
	}{
		{limitFlags{File: filepath.Join(dir, "typo.json")}, "memroy"},
		{limitFlags{File: filepath.Join(dir, "two.json")}, "trailing"},
		{limitFlags{File: filepath.Join(dir, "absent.json")}, "no such file"},
		{limitFlags{MemoryMax: "0"}, "no memory"},
		{limitFlags{MemoryMax: "lots"}, "--memory-max"},
		{limitFlags{CPUs: -1, cpusSet: true}, "positive"},
		{limitFlags{CPUs: 0.001, cpusSet: true}, "minimum"},
		{limitFlags{PidsMax: 0, pidsSet: true}, "at least 1"},
	} {
		_, err := bad.f.build()
		if err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%+v: error %v, want one mentioning %q", bad.f, err, bad.msg)
		}
	}
}

func TestParseRunFlags(t *testing.T) {
	o, err := parseRunFlags([]string{"--id", "x", "--timeout", "2s", "--cpu-time-limit", "1.5s", "--cpus", "1.5", "-o", "r.json", "--", "echo", "--timeout"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != "x" || o.Timeout != 2*time.Second || o.CPUTime != 1500*time.Millisecond || o.Limits.CPUs != 1.5 || !o.Limits.cpusSet || o.Output != "r.json" || o.Language != "unknown" {
		t.Errorf("options %+v", o)
	}
	if strings.Join(o.Command, " ") != "echo --timeout" {
		t.Errorf("command %q: flags after -- belong to the command", o.Command)
	}
	for _, args := range [][]string{{}, {"--"}, {"--interval", "0", "--", "true"}, {"--timeout", "-1s", "--", "true"}, {"--cpu-time-limit", "-1ms", "--", "true"}, {"--cpu-time-limit", "1 s", "--", "true"}, {"--code-length", "-2", "--", "true"}} {
		_, err := parseRunFlags(args, &bytes.Buffer{})
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != ExitFailure {
			t.Errorf("%q: error %v, want a 125 failure", args, err)
		}
	}
}

func TestWriteSamples(t *testing.T) {
	samples := []metrics.Sample{
		{Elapsed: 100 * time.Millisecond, CPU: 50 * time.Millisecond, CPUPercent: 50, Memory: 1 << 20, MemoryValid: true},
		{Elapsed: 200 * time.Millisecond, CPU: 60 * time.Millisecond, CPUPercent: 10},
	}
	var c, n bytes.Buffer
	if err := writeSamples(&c, "csv", samples); err != nil {
		t.Fatal(err)
	}
	if want := "elapsed_seconds,cpu_seconds,cpu_percent,memory_bytes\n0.1,0.05,50,1048576\n0.2,0.06,10,\n"; c.String() != want {
		t.Errorf("CSV %q, want %q", c.String(), want)
	}
	if err := writeSamples(&n, "ndjson", samples); err != nil {
		t.Fatal(err)
	}
	if want := `{"elapsed_seconds":0.1,"cpu_seconds":0.05,"cpu_percent":50,"memory_bytes":1048576}` + "\n" +
		`{"elapsed_seconds":0.2,"cpu_seconds":0.06,"cpu_percent":10,"memory_bytes":null}` + "\n"; n.String() != want {
		t.Errorf("NDJSON %q, want %q", n.String(), want)
	}
	for name, want := range map[string]string{"a.csv": "csv", "b.NDJSON": "ndjson", "c.jsonl": "ndjson", "d.txt": "", "e": ""} {
		got, err := samplesFormat(name)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("samplesFormat(%q) = %q, %v", name, got, err)
		}
	}
}

func TestPlot(t *testing.T) {
	ex := cgroupExecution()
	var b bytes.Buffer
	if err := writePlot(&b, &ex); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	for _, want := range []string{"<svg", "CPU (% of one CPU)", "Memory (MiB)", "Time since start (s)", "cpu.max (100 %)", "memory.max (256 MiB)"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if *plotOut != "" {
		os.WriteFile(*plotOut, b.Bytes(), 0o644)
	}
	// No samples and no limits still draws both panels.
	short := hybridTimeout()
	b.Reset()
	if err := writePlot(&b, &short); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "no samples") || strings.Contains(b.String(), "cpu.max") {
		t.Error("the plot of an execution without samples should say so and draw no limit")
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"sh", "-c", "echo it's", "", "a=b", "x\ny'"})
	if want := `sh -c 'echo it'\''s' '' a=b $'x\ny\''`; got != want {
		t.Errorf("shellQuote = %s, want %s", got, want)
	}
}
