package cgroupmon

import (
	"errors"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestValidateIDRefusesControlCharacters: an id is printed on a line of
// the human report, so one that holds a newline, an escape sequence, a
// C1 control or a bidirectional override could forge a line (--id
// $'x\nStatus: success') or drive the terminal; one that is not UTF-8
// would come back from JSON as another id. Ordinary ids, Unicode
// letters included, pass.
func TestValidateIDRefusesControlCharacters(t *testing.T) {
	for _, id := range []string{
		"x\nStatus: success",
		"x\rStatus: success",
		"tab\there",
		"esc\x1b[31mred",
		"del\x7f",
		"c1\u009b31m",
		"bidi\u202eevil",
		"isolate\u2066x",
		"not utf-8 \xff",
		"nul\x00",
	} {
		err := validateID(id)
		if !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("validateID(%q) = %v, want ErrInvalidSpec", id, err)
			continue
		}
		if strings.ContainsAny(err.Error(), "\n\r\t\x1b\x7f\u009b\u202e\u2066\x00") {
			t.Errorf("the error of %q carries the character raw: %q", id, err.Error())
		}
	}
	for _, id := range []string{"job-1", "soumission_42.py", "élève-ü", "задача", "a b c", "x.y"} {
		if err := validateID(id); err != nil {
			t.Errorf("validateID(%q) = %v, want nil", id, err)
		}
	}
}

// defaultIDForm is the form of a generated id: kind, the UTC time to the
// microsecond, a tag of 8 hex digits and a counter.
var defaultIDForm = regexp.MustCompile(`^(exec|attach)-\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}-\d+$`)

// TestDefaultIDsAreUniqueAndTimeOrdered: generated ids carry the time
// (fixed width, so that they sort as strings in time order), a tag that
// tells processes apart and a counter that tells this process's ids
// apart, even within one microsecond; they are valid ids.
func TestDefaultIDsAreUniqueAndTimeOrdered(t *testing.T) {
	base := time.Date(2026, 12, 2, 14, 9, 21, 290761000, time.UTC)
	var ids []string
	for i := range 12 {
		// Times out of order, and two within one microsecond.
		at := base.Add(time.Duration((i*7)%12) * 1500 * time.Microsecond)
		if i == 11 {
			at = base
		}
		ids = append(ids, defaultID("exec", at))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if !defaultIDForm.MatchString(id) {
			t.Errorf("id %q is not of the form %s", id, defaultIDForm)
		}
		if seen[id] {
			t.Errorf("id %q made twice", id)
		}
		seen[id] = true
		if err := validateID(id); err != nil {
			t.Errorf("a generated id is refused: %v", err)
		}
	}
	if got := defaultID("exec", base.In(time.FixedZone("UTC+5", 5*3600))); !strings.HasPrefix(got, "exec-20261202T140921.290761Z-") {
		t.Errorf("id %q: the time is not in UTC", got)
	}
	// As strings, the ids sort by time.
	byString := append([]string{}, ids...)
	sort.Strings(byString)
	timeOf := func(id string) string { return strings.Split(id, "-")[1] }
	for i := 1; i < len(byString); i++ {
		if timeOf(byString[i-1]) > timeOf(byString[i]) {
			t.Errorf("sorted as strings, %s comes before %s", byString[i-1], byString[i])
		}
	}
	if timeOf(byString[0]) != "20261202T140921.290761Z" {
		t.Errorf("first id %s, want the earliest time", byString[0])
	}
}
