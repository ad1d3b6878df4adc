package workload

import (
	"os/exec"
	"testing"
)

func TestBuildAndRun(t *testing.T) {
	for _, name := range Names() {
		p, err := Path(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "burn" {
			if out, err := exec.Command(p, "1", "10").CombinedOutput(); err != nil {
				t.Fatalf("%s: %v %s", p, err, out)
			}
		}
	}
}
