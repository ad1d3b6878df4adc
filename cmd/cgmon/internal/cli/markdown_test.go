package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/cgmon/cgmon/metrics"
)

// longExecution is a run of 10 s sampled every 100 ms: its timeline is
// folded into maxSparkWidth characters, with one spike that must survive.
func longExecution() metrics.Execution {
	ex := cgroupExecution()
	ex.ID = "long|run"
	ex.Command = []string{"sh", "-c", "make -j2 CFLAGS=`-O2` && ./run-the-tests --with-a-very-long-list-of-flags --that-goes-on --and-on"}
	ex.Samples = nil
	for i := 1; i <= 100; i++ {
		s := metrics.Sample{Elapsed: time.Duration(i) * 100 * time.Millisecond, MemoryValid: i > 2}
		s.CPUPercent = 50
		if i == 37 {
			s.CPUPercent = 198
		}
		s.Memory = uint64(i) << 20
		ex.Samples = append(ex.Samples, s)
	}
	return ex
}

func TestReportMarkdownGolden(t *testing.T) {
	for name, ex := range map[string]metrics.Execution{
		"cgroup2-success": cgroupExecution(),
		"hybrid-timeout":  hybridTimeout(),
		"long":            longExecution(),
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := NewReport(&ex).WriteMarkdown(&b, ex.Samples); err != nil {
				t.Fatal(err)
			}
			golden(t, "report-"+name+".md.golden", b.Bytes())
		})
	}
}

// TestBatchMarkdownSaysWhatFailed checks that the Markdown summary of a
// batch carries every trouble the human one does.
func TestBatchMarkdownSaysWhatFailed(t *testing.T) {
	r := &BatchResult{
		BadLines:    []BadLine{{Line: 3, Error: "x"}, {Line: 9, Error: "y"}},
		Interrupted: true, InterruptedBy: "SIGTERM",
		InputError: "read |0: input/output error", OutputError: "write out: no space left on device", ResultsLost: 2,
		CleanupError: "cgroup x: busy", TextfileError: "--prom-textfile: t.prom: not Prometheus text",
	}
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"**Rejected input lines** (not run): 2 (line 3, 9)",
		"**Interrupted by SIGTERM:**",
		`**Input failed:** read \|0: input/output error`,
		"**Output failed:** write out: no space left on device; 2 results were not written",
		"**Cleanup failed:** cgroup x: busy",
		"**Textfile failed:** --prom-textfile: t.prom: not Prometheus text",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the Markdown summary lacks %q:\n%s", want, b.String())
		}
	}
}
