package cgroupmon

import (
	"sync"
	"time"
)

// sampler is the one goroutine and one ticker that sample every live
// execution of a Monitor. It runs only while there is something to sample.
type sampler struct {
	interval time.Duration

	mu     sync.Mutex
	runs   []*run
	active bool
	wg     sync.WaitGroup

	batch []*run        // reused by the loop: no allocation per tick
	empty chan struct{} // signalled when the last run is removed
}

func (s *sampler) add(r *run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = append(s.runs, r)
	if !s.active {
		s.active = true
		s.wg.Add(1)
		go s.loop()
	}
}

func (s *sampler) remove(r *run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.runs {
		if x == r {
			last := len(s.runs) - 1
			s.runs[i] = s.runs[last]
			s.runs[last] = nil
			s.runs = s.runs[:last]
			if last == 0 && s.active {
				select { // let the loop end now, not at its next tick
				case s.empty <- struct{}{}:
				default:
				}
			}
			return
		}
	}
}

func (s *sampler) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		var now time.Time
		select {
		case now = <-t.C:
		case <-s.empty:
		}
		s.mu.Lock()
		if len(s.runs) == 0 {
			s.active = false
			s.mu.Unlock()
			return
		}
		if now.IsZero() {
			s.mu.Unlock()
			continue
		}
		s.batch = append(s.batch[:0], s.runs...)
		s.mu.Unlock()
		for _, r := range s.batch {
			r.tick(now)
		}
		clear(s.batch)
	}
}

// wait blocks until the loop has exited (after every run was removed).
func (s *sampler) wait() { s.wg.Wait() }
