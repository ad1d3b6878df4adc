package cli

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cgmon/cgmon/metrics"
)

// readTextfile parses a textfile as node_exporter would.
func readTextfile(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s is not valid Prometheus text: %v", path, err)
	}
	return fams
}

// series returns the value of a counter, or the sample count of a
// histogram, of the series with the given labels ("k=v,k=v").
func series(t *testing.T, fams map[string]*dto.MetricFamily, name, labels string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range f.Metric {
		var got []string
		for _, l := range m.Label {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(got, ",") != labels {
			continue
		}
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no series %s{%s}", name, labels)
	return 0
}

// onlyTextfile checks that the directory holds the textfile and its lock,
// and no temporary file.
func onlyTextfile(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "cgmon.prom" && e.Name() != ".cgmon.prom.lock" {
			t.Errorf("%s left in the textfile directory", e.Name())
		}
	}
}

func TestTextfileAddsEachRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cgmon.prom")
	runs := []metrics.Execution{
		result("a", "c", metrics.StatusSuccess, 20, 10, 3),
		result("b", "c", metrics.StatusSuccess, 2000, 10, 300),
		result("c", "python", metrics.StatusOOM, 50, 40, 512),
	}
	for i := range runs {
		if err := addExecutionToTextfile(path, &runs[i]); err != nil {
			t.Fatal(err)
		}
	}
	fams := readTextfile(t, path)
	for _, c := range []struct {
		name, labels string
		want         float64
	}{
		{"cgmon_executions_total", "language=c,status=success", 2},
		{"cgmon_executions_total", "language=python,status=oom", 1},
		{"cgmon_executions_total", "language=python,status=success", 0},
		{"cgmon_execution_duration_seconds", "language=c", 2},
		{"cgmon_execution_memory_peak_bytes", "language=python", 1},
		{"cgmon_execution_oom_kills_total", "language=python", 1},
		{"cgmon_execution_oom_kills_total", "language=c", 0},
	} {
		if got := series(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The buckets add up too: one run of c took 20 ms, one 2 s.
	for _, m := range fams["cgmon_execution_duration_seconds"].Metric {
		if m.Label[0].GetValue() != "c" {
			continue
		}
		for _, b := range m.GetHistogram().Bucket {
			want := uint64(0)
			switch {
			case b.GetUpperBound() >= 2.5:
				want = 2
			case b.GetUpperBound() >= 0.025:
				want = 1
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("c: bucket le=%g holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
	onlyTextfile(t, dir)
}

func TestTextfileConcurrentWritersLoseNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cgmon.prom")
	const writers, each = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				ex := result("x", []string{"c", "go"}[w%2], metrics.StatusSuccess, 10, 5, 1)
				errs <- addExecutionToTextfile(path, &ex)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	fams := readTextfile(t, path)
	total := series(t, fams, "cgmon_executions_total", "language=c,status=success") +
		series(t, fams, "cgmon_executions_total", "language=go,status=success")
	if total != writers*each {
		t.Errorf("%v executions in the file, want %d", total, writers*each)
	}
	onlyTextfile(t, dir)
}

func TestTextfileKeepsOtherMetricsAndRefusesOtherText(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cgmon.prom")
	other := "# TYPE backup_last_success_timestamp_seconds gauge\nbackup_last_success_timestamp_seconds 1.7e+09\n"
	if err := os.WriteFile(path, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	ex := result("a", "c", metrics.StatusSuccess, 20, 10, 3)
	if err := addExecutionToTextfile(path, &ex); err != nil {
		t.Fatal(err)
	}
	fams := readTextfile(t, path)
	if g := fams["backup_last_success_timestamp_seconds"]; g == nil || g.Metric[0].GetGauge().GetValue() != 1.7e9 {
		t.Errorf("the file's own gauge was lost or changed: %v", g)
	}

	garbage := "this is { not prometheus text\n"
	if err := os.WriteFile(path, []byte(garbage), 0o644); err != nil {
		t.Fatal(err)
	}
	err := addExecutionToTextfile(path, &ex)
	if err == nil || !strings.Contains(err.Error(), "not a Prometheus text file") {
		t.Errorf("error %v, want one saying the file is not Prometheus text", err)
	}
	if b, _ := os.ReadFile(path); string(b) != garbage {
		t.Errorf("a file cgmon could not read was changed to:\n%s", b)
	}
	onlyTextfile(t, dir)
}

// TestPromTextfileFlushAddsWhatIsNew checks the batch writer: each flush
// adds only what was recorded since the previous one, so that another
// writer's additions in between are kept.
func TestPromTextfileFlushAddsWhatIsNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cgmon.prom")
	coll := metrics.NewCollector()
	tf := newPromTextfile(path, coll)
	coll.RecordExecution(result("a", "c", metrics.StatusSuccess, 20, 10, 3))
	coll.RecordExecution(result("b", "c", metrics.StatusTimeout, 20, 10, 3))
	if err := tf.Flush(); err != nil {
		t.Fatal(err)
	}
	other := result("o", "c", metrics.StatusSuccess, 20, 10, 3) // a `cgmon run` meanwhile
	if err := addExecutionToTextfile(path, &other); err != nil {
		t.Fatal(err)
	}
	coll.RecordExecution(result("c", "c", metrics.StatusSuccess, 20, 10, 3))
	if err := tf.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := tf.Flush(); err != nil { // nothing new
		t.Fatal(err)
	}
	fams := readTextfile(t, path)
	if got := series(t, fams, "cgmon_executions_total", "language=c,status=success"); got != 3 {
		t.Errorf("%v successes, want 3 (a, c and the other writer's)", got)
	}
	if got := series(t, fams, "cgmon_execution_duration_seconds", "language=c"); got != 4 {
		t.Errorf("%v durations, want 4", got)
	}
}

func TestStartPromTextfileFlushesPeriodicallyAndAtStop(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cgmon.prom")
	coll := metrics.NewCollector()
	coll.RecordExecution(result("a", "go", metrics.StatusSuccess, 20, 10, 3))
	stop := startPromTextfile(path, coll, 10*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no periodic flush within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	coll.RecordExecution(result("b", "go", metrics.StatusSuccess, 20, 10, 3))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := series(t, readTextfile(t, path), "cgmon_executions_total", "language=go,status=success"); got != 2 {
		t.Errorf("%v successes after stop, want 2", got)
	}
}

func TestCheckTextfilePath(t *testing.T) {
	dir := t.TempDir()
	for path, want := range map[string]string{
		"":                                   "",
		filepath.Join(dir, "cgmon.prom"):     "",
		filepath.Join(dir, "cgmon.txt"):      "*.prom",
		filepath.Join(dir, "no/cgmon.prom"):  "no such file",
		filepath.Join(dir, "cgmon.prom/x.p"): "*.prom",
	} {
		err := checkTextfilePath(path)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", path, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: error %v, want one mentioning %q", path, err, want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("checking paths created %d files", len(ents))
	}
}
