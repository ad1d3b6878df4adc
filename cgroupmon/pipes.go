package cgroupmon

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// pipes copies the standard streams of a command whose Stdin, Stdout or
// Stderr is not an *os.File. exec.Cmd would copy them itself, but then its
// Wait also waits for every process holding the pipe, so a daemon that
// inherited stdout would delay the main process's exit by its whole life.
// Here the main exit is seen at once, and the copies end when the last
// process of the execution is gone.
type pipes struct {
	parentEnds []*os.File // closed after Start
	readEnds   []*os.File // closed after the copies end (or give up)
	wg         sync.WaitGroup
}

// plumb replaces non-file streams of cmd by pipes it copies.
func plumb(cmd *exec.Cmd) (*pipes, error) {
	p := &pipes{}
	if cmd.Stdin != nil {
		if _, ok := cmd.Stdin.(*os.File); !ok {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			src := cmd.Stdin
			cmd.Stdin = r
			p.parentEnds = append(p.parentEnds, r)
			// Not waited for: a reader that never ends (a terminal, a
			// socket) must not hold up the record. The copy ends at the
			// reader's end or at the first write after the last process
			// holding the pipe is gone (EPIPE).
			go func() {
				_, _ = io.Copy(w, src)
				w.Close()
			}()
		}
	}
	for _, out := range []*io.Writer{&cmd.Stdout, &cmd.Stderr} {
		if *out == nil {
			continue
		}
		if _, ok := (*out).(*os.File); ok {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			p.abort()
			return nil, err
		}
		dst := *out
		*out = w
		p.parentEnds = append(p.parentEnds, w)
		p.readEnds = append(p.readEnds, r)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(dst, r)
		}()
	}
	return p, nil
}

// started closes the ends that belong to the child only.
func (p *pipes) started() {
	for _, f := range p.parentEnds {
		f.Close()
	}
	p.parentEnds = nil
}

// abort releases everything when the command did not start.
func (p *pipes) abort() {
	p.started()
	for _, f := range p.readEnds {
		f.Close()
	}
	p.readEnds = nil
	p.wg.Wait()
}

// finish waits for the copies to reach the end of their pipes, which
// happens once no process of the execution holds them; after grace it
// closes the read ends (a process outside the execution kept a copy).
func (p *pipes) finish(grace time.Duration) error {
	if len(p.readEnds) == 0 {
		return nil
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-time.After(grace):
		err = errors.New("a process outside the execution still holds its stdout or stderr; output after this point is lost")
	}
	for _, f := range p.readEnds {
		f.Close()
	}
	p.readEnds = nil
	<-done
	return err
}
