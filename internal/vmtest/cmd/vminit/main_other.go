//go:build !linux

// Command vminit is the /init of the VM test initramfs; it only runs on Linux.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "vminit: runs only as /init of a Linux guest")
	os.Exit(2)
}
