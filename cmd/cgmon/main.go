// Command cgmon runs programs in their own cgroup and reports what they
// used: `cgmon run`, `cgmon batch`, `cgmon watch` and `cgmon doctor`. The
// work is done by package cli; main only hands it the arguments and
// standard streams.
package main

import (
	"os"

	"github.com/cgmon/cgmon/cmd/cgmon/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
