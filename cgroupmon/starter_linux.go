package cgroupmon

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// starter is the goroutine that forks every execution of a Monitor, locked
// to one OS thread for the Monitor's life. The kernel sends an execution's
// main process its parent-death signal (Pdeathsig, SIGKILL) when the
// *thread* that forked it exits, not the process, and Go ends a thread
// when a goroutine locked to it exits: forking from any goroutine could
// kill an execution when some unrelated locked goroutine ends on that
// thread. From the starter's thread, an execution dies when the monitor's
// process dies (or Close ends the starter, once every execution has
// ended). The gated start's ptrace requests must come from the thread
// that forked, which is this one too.
//
// A starter with noNewPrivs set marks its thread no_new_privs
// (prctl PR_SET_NO_NEW_PRIVS) before its first fork: the kernel keeps the
// flag per thread, every child inherits it through fork and clone and
// keeps it across execve, and it cannot be cleared. Go's fork has no hook
// to run prctl in the child (SysProcAttr has no field for it), and
// re-executing cgmon as a tiny init, as runc does, would cost an exec per
// execution; forking from a thread that already carries the flag costs
// nothing per execution. That thread is never handed back to Go's pool:
// its goroutine returns locked, which ends it; and Go creates no new
// thread by cloning a locked one (it asks its template thread), so the
// flag reaches no other thread of cgmon. Executions with Spec.User are
// started by such a starter; the others keep the plain one.
type starter struct {
	reqs       chan func() error // work to do on the starter's thread
	reply      chan error        // its result
	quit       chan struct{}     // closed by stop
	done       chan struct{}     // closed when the goroutine has returned
	noNewPrivs bool              // mark the thread no_new_privs first
}

// newStarter starts the starter's goroutine; with noNewPrivs, its thread
// is marked no_new_privs.
func newStarter(noNewPrivs bool) *starter {
	st := &starter{reqs: make(chan func() error), reply: make(chan error), quit: make(chan struct{}), done: make(chan struct{}), noNewPrivs: noNewPrivs}
	go st.loop()
	return st
}

func (st *starter) loop() {
	runtime.LockOSThread()
	if st.noNewPrivs && unix.Gettid() == unix.Getpid() {
		// Go never ends the main thread: a goroutine that returns locked
		// to it leaves it parked, still marked, for the process's life.
		// Serve from another thread: no new goroutine can be scheduled on
		// this one while it is locked here.
		moved := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(moved)
			st.serve()
		}()
		<-moved
		runtime.UnlockOSThread()
		return
	}
	st.serve()
}

// serve answers requests on the goroutine's thread, to which it is
// locked, until stop.
func (st *starter) serve() {
	defer close(st.done)
	var err error // why this starter cannot fork, answered to every request
	if st.noNewPrivs {
		// Returning locked ends the thread: the flag goes with it.
		if perr := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); perr != nil {
			err = fmt.Errorf("%w: setting no_new_privs: %w", errCgmon, perr)
		}
	} else {
		// Unlocked before returning, the thread goes back to Go's pool
		// instead of ending: nothing it started is alive by then
		// (Monitor.Close).
		defer runtime.UnlockOSThread()
	}
	for {
		select {
		case f := <-st.reqs:
			if err != nil {
				st.reply <- err
				continue
			}
			st.reply <- f()
		case <-st.quit:
			return
		}
	}
}

// do runs f on the starter's thread, handing it to the goroutine that is
// already waiting for work, and returns f's error. One request is in
// flight at a time (the goroutine takes the next only after it has
// replied), so one reply channel serves every caller.
func (st *starter) do(f func() error) error {
	if st == nil { // Close stopped it before it was ever started
		return fmt.Errorf("%w: the monitor is %w", errCgmon, ErrClosed)
	}
	select {
	case st.reqs <- f:
		return <-st.reply
	case <-st.quit:
		return fmt.Errorf("%w: the monitor is %w", errCgmon, ErrClosed)
	}
}

// stop ends the goroutine and waits for it.
func (st *starter) stop() {
	close(st.quit)
	<-st.done
}
