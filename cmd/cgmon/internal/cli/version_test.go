package cli

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	const rev = "38a775bd59828c382756187dd0007ad739d74049"
	platform := " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "-buildmode", Value: "exe"}, {Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-11-28T08:33:37Z"}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		desc string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"go build in a clean checkout", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Path: "github.com/cgmon/cgmon", Version: "v0.0.0-20261128083337-38a775bd5982"}, Settings: vcs("false")}, true,
			"cgmon v0.0.0-20261128083337-38a775bd5982\ncommit " + rev + "\ngo1.26.8" + platform},
		{"go build with uncommitted changes", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Path: "github.com/cgmon/cgmon", Version: "v0.0.0-20261128083337-38a775bd5982+dirty"}, Settings: vcs("true")}, true,
			"cgmon v0.0.0-20261128083337-38a775bd5982+dirty\ncommit " + rev + " (modified)\ngo1.26.8" + platform},
		{"go install of a tagged version", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Path: "github.com/cgmon/cgmon", Version: "v1.2.0"}}, true,
			"cgmon v1.2.0\n" + noVCS + "\ngo1.26.8" + platform},
		{"go run", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Path: "github.com/cgmon/cgmon", Version: "(devel)"}}, true,
			"cgmon (devel)\n" + noVCS + "\ngo1.26.8" + platform},
		{"no main module version", &debug.BuildInfo{GoVersion: "go1.26.8"}, true,
			"cgmon (devel)\n" + noVCS + "\ngo1.26.8" + platform},
	} {
		if got := versionText(tc.bi, tc.ok); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.desc, got, tc.want)
		}
	}
	if got := versionText(nil, false); !strings.HasPrefix(got, "cgmon version unknown (the binary carries no build information)\ncommit unknown") {
		t.Errorf("no build info: %q", got)
	}
}

func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"version"}, IO{Out: &out, Err: &errb}); code != 0 || errb.Len() != 0 {
		t.Fatalf("cgmon version: exit %d, stderr %q", code, errb.String())
	}
	bi, ok := debug.ReadBuildInfo()
	if out.String() != versionText(bi, ok) || !strings.HasPrefix(out.String(), "cgmon ") {
		t.Errorf("cgmon version printed %q, want the build information of this binary", out.String())
	}
	out.Reset()
	if code := Main([]string{"version", "extra"}, IO{Out: &out, Err: &errb}); code != ExitFailure || !strings.Contains(errb.String(), "version: takes no arguments") || out.Len() != 0 {
		t.Errorf("cgmon version extra: exit %d, stdout %q, stderr %q; want 125 and the reason", code, out.String(), errb.String())
	}
}
