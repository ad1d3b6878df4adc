// Command mini runs /bin/true: Go's own start-up, for BENCHMARKS.md.
package main

import "os/exec"

func main() { _ = exec.Command("/bin/true").Run() }
