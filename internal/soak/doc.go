// Package soak runs cgmon long and wide and checks that nothing is left
// behind (issue 11, RELIABILITY.md): thousands of mixed executions through
// one Monitor and through `cgmon batch`, thousands of sequential `cgmon
// run`, a thousand executions alive at once in one Monitor with the
// monitor's own CPU over a steady window, and fifty `cgmon run` started at
// once on the shared root. After every checkpoint it counts what a leak
// would leave: processes carrying the soak's environment marker, cgroup
// directories named after its execution ids, the monitor's descriptors
// and goroutines, its heap and RSS; and it checks that every execution
// has exactly one result, with the status its kind must end in.
//
// `make soak` runs every scenario at full size (cmd/soak); the package's
// tests run each at a small size in `make test`, and TestVMSoak runs the
// Monitor's part in a cgroup v2 guest, where OOM kills and fork bombs
// held by pids.max join the mix.
package soak
