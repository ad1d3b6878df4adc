package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// noVCS says why a build carries no commit: the go command stamps one only
// in `go build` or `go install` inside a git checkout whose .git is a
// directory (not `go run`, not -buildvcs=false, not a linked worktree, not
// a module downloaded by version, whose version names its commit).
const noVCS = "commit unknown (this build carries no VCS information: go run, -buildvcs=false, a linked git worktree and a module fetched by version do not stamp one)"

// versionText returns what `cgmon version` prints for the build
// information bi (ok false: the binary carries none): the module's
// version, the commit it was built from and "(modified)" when the tree had
// uncommitted changes, and the Go release and platform. Nothing is
// invented: a missing fact is said to be unknown.
func versionText(bi *debug.BuildInfo, ok bool) string {
	var b strings.Builder
	if !ok || bi == nil {
		fmt.Fprintf(&b, "cgmon version unknown (the binary carries no build information)\n%s\n%s %s/%s\n",
			noVCS, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return b.String()
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	fmt.Fprintf(&b, "cgmon %s\n", version)
	var rev string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	switch {
	case rev == "":
		b.WriteString(noVCS + "\n")
	case modified:
		fmt.Fprintf(&b, "commit %s (modified)\n", rev)
	default:
		fmt.Fprintf(&b, "commit %s\n", rev)
	}
	fmt.Fprintf(&b, "%s %s/%s\n", bi.GoVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// versionMain prints cgmon's version; it takes no arguments.
func versionMain(args []string, stdio IO) error {
	c := newCommand("version", "cgmon version")
	if err := c.parse(args, stdio.Out); err != nil {
		return err
	}
	if c.NArg() != 0 {
		return fail("version: takes no arguments")
	}
	bi, ok := debug.ReadBuildInfo()
	fmt.Fprint(stdio.Out, versionText(bi, ok))
	return nil
}
