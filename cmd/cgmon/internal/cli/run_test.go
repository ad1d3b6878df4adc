package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cgmon/cgmon/metrics"
)

// failingCloser is a Monitor whose Close fails as one that could not
// remove a cgroup does.
type failingCloser struct{ closed int }

func (f *failingCloser) Close() error {
	f.closed++
	return errors.New("removing cgroup /sys/fs/cgroup/cgmon/job-1-42-2: device or resource busy")
}

// TestEndRunTellsCloseErrors checks that a cgroup the monitor could not
// remove is named on stderr, that the monitor is closed before the report
// is written, and that the command's status is kept.
func TestEndRunTellsCloseErrors(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "r.json")
	f, err := os.Create(report)
	if err != nil {
		t.Fatal(err)
	}
	mon := &failingCloser{}
	var stderr bytes.Buffer
	ex := &metrics.Execution{ID: "job-1", Status: metrics.StatusError, ExitCode: 3, StartedAt: time.Now(), EndedAt: time.Now()}
	o := &runOptions{reportFlags: reportFlags{Format: "json", Output: report}}
	code := endRun(mon, &outputs{report: f}, o, ex, nil, nil, IO{Err: &stderr})
	if code != 3 {
		t.Errorf("exit status %d, want the command's 3", code)
	}
	if mon.closed != 1 {
		t.Errorf("Close called %d times, want 1", mon.closed)
	}
	want := "cgmon: run: removing cgroup /sys/fs/cgroup/cgmon/job-1-42-2: device or resource busy\n"
	if stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	if b, err := os.ReadFile(report); err != nil || !bytes.Contains(b, []byte(`"id":"job-1"`)) {
		t.Errorf("report %q (%v): the report must still be written", b, err)
	}
}

// TestCloseMonitorTellsErrors checks that batch names on stderr, and
// returns for its summary, the cgroups its monitor could not remove.
func TestCloseMonitorTellsErrors(t *testing.T) {
	var stderr bytes.Buffer
	msg := closeMonitor(&failingCloser{}, &stderr)
	want := "removing cgroup /sys/fs/cgroup/cgmon/job-1-42-2: device or resource busy"
	if msg != want || stderr.String() != "cgmon: batch: "+want+"\n" {
		t.Errorf("closeMonitor returned %q and wrote %q", msg, stderr.String())
	}
}
