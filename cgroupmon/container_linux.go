package cgroupmon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// moveRounds bounds the rounds of moving a namespace root's processes out
// and enabling its controllers: a round fails only when a process forked
// into the root while the others were being moved.
const moveRounds = 20

// moveOthersIfAsked does what Options.MoveOthers asks: when the probe found
// a namespace root whose processes keep controllers off, it moves them into
// the sibling leaf, enables the controllers, and probes again. Nothing is
// done without the option, with the procfs backend, nor where nothing holds
// controllers back; a read-only cgroup mount, where nothing can be moved,
// is an error.
func moveOthersIfAsked(opts Options, p *Probe) (*Probe, error) {
	if !opts.MoveOthers || opts.Backend == BackendProcfs {
		return p, nil // not asked, or no cgroup wanted
	}
	ip := p.InternalProcesses
	if ip == nil {
		if p.mountReadOnly {
			return nil, fmt.Errorf("moving the container's processes out of the root of its cgroup namespace: the cgroup v2 mount %s is read-only: %w", p.Mount, ErrNotDelegated)
		}
		return p, nil
	}
	n, err := moveOthers(ip.Cgroup, ip.Sibling, ip.Controllers)
	if err != nil {
		return nil, err
	}
	q, err := ProbeHost(opts)
	if err != nil {
		return nil, err
	}
	q.MovedOthers = &MovedOthers{From: ip.Cgroup, To: ip.Sibling, Processes: n, Controllers: ip.Controllers}
	return q, nil
}

// moveOthers moves every process of cgroup root into the leaf sibling
// (made when missing; never removed: it is not cgmon's) and enables
// controllers for root's children, as docker-in-docker's entrypoint does.
// A process that forks into root while the others are moved makes the
// kernel refuse the controllers (EBUSY): the round is repeated, at most
// moveRounds times. It returns how many processes it moved. On error what
// was moved stays moved, and the error says how many.
func moveOthers(root, sibling string, controllers []string) (moved int, err error) {
	defer func() {
		if err != nil && moved > 0 {
			err = fmt.Errorf("%w (%d processes were moved into %s and stay there)", err, moved, sibling)
		}
	}()
	if err := os.Mkdir(sibling, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return 0, fmt.Errorf("making %s for the container's processes: %w", sibling, err)
	}
	enable := "+" + strings.Join(controllers, " +")
	for round := range moveRounds {
		b, err := readCapped(filepath.Join(root, "cgroup.procs"))
		if err != nil {
			return moved, fmt.Errorf("listing the processes of %s: %w", root, err)
		}
		for _, pid := range strings.Fields(string(b)) {
			err := os.WriteFile(filepath.Join(sibling, "cgroup.procs"), []byte(pid), 0)
			switch {
			case err == nil:
				moved++
			case errors.Is(err, unix.ESRCH):
				// It exited meanwhile.
			default:
				return moved, fmt.Errorf("moving process %s from %s into %s: %w", pid, root, sibling, err)
			}
		}
		err = os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte(enable), 0)
		if err == nil {
			return moved, nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return moved, fmt.Errorf("enabling %s in %s/cgroup.subtree_control: %w", enable, root, err)
		}
		time.Sleep(time.Duration(round+1) * time.Millisecond)
	}
	return moved, fmt.Errorf("enabling %s in %s: still refused (busy) after %d rounds of moving its processes out: something keeps starting processes there", enable, root, moveRounds)
}
