//go:build !linux

package cli

import "github.com/cgmon/cgmon/cgroupmon"

// watchMain checks the flags, then fails: attaching to a cgroup or a
// process needs Linux.
func watchMain(args []string, stdio IO) (int, error) {
	if _, err := parseWatchFlags(args, stdio.Out); err != nil {
		return 0, err
	}
	return 0, fail("watch: %v", cgroupmon.ErrNotSupported)
}
