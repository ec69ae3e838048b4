package loop

import (
	"errors"
	"os"
	"os/signal"
	"sync"
)

// SignalRelay delivers os/signal notifications to a loop through its Post.
// The Go runtime owns the process's signal handlers; a C loop that
// installed its own (libev's ev_signal) would replace them without
// SA_ONSTACK and crash the process, so every backend uses this relay.
type SignalRelay struct {
	post func(func()) error

	mu       sync.Mutex
	watchers map[*signalWatcher]struct{}
	wg       sync.WaitGroup
}

// NewSignalRelay returns a relay that posts with post.
func NewSignalRelay(post func(func()) error) *SignalRelay {
	return &SignalRelay{post: post, watchers: map[*signalWatcher]struct{}{}}
}

type signalWatcher struct {
	r       *SignalRelay
	ch      chan os.Signal
	done    chan struct{}
	stopped bool // loop goroutine only
	once    sync.Once
}

// ErrNilSignal is returned by Watch for a nil signal or callback.
var ErrNilSignal = errors.New("loop: Signal with a nil signal or callback")

// Watch calls cb on the loop goroutine each time sig arrives. Signals that
// arrive faster than the loop runs are coalesced, as in libev.
func (r *SignalRelay) Watch(sig os.Signal, cb func(os.Signal)) (Watcher, error) {
	if sig == nil || cb == nil {
		return nil, ErrNilSignal
	}
	w := &signalWatcher{r: r, ch: make(chan os.Signal, 1), done: make(chan struct{})}
	r.mu.Lock()
	r.watchers[w] = struct{}{}
	r.wg.Add(1)
	r.mu.Unlock()
	signal.Notify(w.ch, sig)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case s := <-w.ch:
				// A closed loop cannot run cb; the watcher is then dead too.
				_ = r.post(func() {
					if !w.stopped {
						cb(s)
					}
				})
			case <-w.done:
				return
			}
		}
	}()
	return w, nil
}

func (w *signalWatcher) Stop() error {
	w.stopped = true
	w.once.Do(func() {
		signal.Stop(w.ch)
		close(w.done)
		w.r.mu.Lock()
		delete(w.r.watchers, w)
		w.r.mu.Unlock()
	})
	return nil
}

// Close stops every watcher and waits for the relay's goroutines to exit.
func (r *SignalRelay) Close() {
	r.mu.Lock()
	ws := make([]*signalWatcher, 0, len(r.watchers))
	for w := range r.watchers {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	for _, w := range ws {
		_ = w.Stop()
	}
	r.wg.Wait()
}
