package cgroupmon

import (
	"fmt"
	"runtime"
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
type starter struct {
	reqs  chan func() error // work to do on the starter's thread
	reply chan error        // its result
	quit  chan struct{}     // closed by stop
	done  chan struct{}     // closed when the goroutine has returned
}

// newStarter starts the starter's goroutine.
func newStarter() *starter {
	st := &starter{reqs: make(chan func() error), reply: make(chan error), quit: make(chan struct{}), done: make(chan struct{})}
	go st.loop()
	return st
}

func (st *starter) loop() {
	runtime.LockOSThread()
	defer close(st.done)
	// Unlocked before returning, the thread goes back to Go's pool instead
	// of ending: nothing it started is alive by then (Monitor.Close).
	defer runtime.UnlockOSThread()
	for {
		select {
		case f := <-st.reqs:
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
