package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/cgmon/cgmon/cgroupmon"
)

// TestVMDoctorGolden renders doctor in each VM scenario (make vmtest) and
// compares it with testdata/cli/doctor-vm-<scenario>.txt.golden. The guest
// cannot rewrite the golden: on a mismatch the output is printed between
// markers, to be checked and copied by hand.
func TestVMDoctorGolden(t *testing.T) {
	sc := os.Getenv("CGMON_VM_SCENARIO")
	if sc == "" {
		t.Skip("doctor of a VM scenario: runs in make vmtest only")
	}
	p, err := cgroupmon.ProbeHost(cgroupmon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := NewDoctor(p, cgroupmon.BackendAuto).WriteHuman(&b); err != nil {
		t.Fatal(err)
	}
	got := normaliseVM(b.String())
	path := filepath.Join("..", "..", "..", "..", "testdata", "cli", "doctor-vm-"+sc+".txt.golden")
	want, err := os.ReadFile(path)
	if err != nil || string(want) != got {
		t.Errorf("%s differs or is missing (%v):\n-----BEGIN GOLDEN doctor-vm-%s-----\n%s-----END GOLDEN-----", path, err, sc, got)
	}
}

// normaliseVM hides what changes from boot to boot: pids and scope names.
func normaliseVM(s string) string {
	s = regexp.MustCompile(`cgmon-\d+-\d+\.scope`).ReplaceAllString(s, "cgmon-$$PID-$$N.scope")
	s = regexp.MustCompile(`session-\d+\.scope`).ReplaceAllString(s, "session-$$N.scope")
	s = regexp.MustCompile(`run-[0-9a-z]+\.scope`).ReplaceAllString(s, "run-$$ID.scope")
	return s
}
