//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package gnet

import (
	"fmt"
	"os"

	"github.com/panjf2000/gnet/v2/pkg/queue"

	"github.com/evhub/evhub/loop"
)

// Signal calls cb on the loop goroutine each time sig arrives (through
// os/signal; the loop installs no signal handler of its own).
func (l *Loop) Signal(sig os.Signal, cb func(os.Signal)) (loop.Watcher, error) {
	if l.closed {
		return nil, fmt.Errorf("gnet: signal %v: %w", sig, loop.ErrClosed)
	}
	w, err := l.sigs.Watch(sig, cb)
	if err != nil {
		return nil, fmt.Errorf("gnet: signal: %w", err)
	}
	return w, nil
}

// Post queues fn to run on the loop goroutine. It is safe from any
// goroutine and never blocks on the loop.
func (l *Loop) Post(fn func()) error { return l.posts.Post(fn) }

// wake is the PostQueue's wake-up: Trigger the drain on the current
// poller or, while a drain or a batch of callbacks is running, leave it to
// that drain or to the drain that ends the batch.
func (l *Loop) wake() {
	if l.bw.SkipWake() {
		return // the drain, or the batch's end, sees it
	}
	l.trigger(l.drainFn)
}

func (l *Loop) trigger(fn func(any) error) {
	l.pmu.RLock()
	if p := l.poller; p != nil {
		// Trigger fails only if the eventfd does, which pmu rules out.
		_ = p.Trigger(queue.HighPriority, fn, nil)
	}
	l.pmu.RUnlock()
}

// drainTask runs on the loop goroutine in Polling's chores, after the
// batch's I/O.
func (l *Loop) drainTask(any) error {
	l.gen++
	if l.drainPosts() > 0 {
		l.onceDone = true
		l.afterCallbacks(true)
	}
	return l.endCheck()
}

// drainPosts runs the posted functions and reports how many ran.
func (l *Loop) drainPosts() int {
	l.bw.Begin()
	n := l.posts.Run()
	if l.bw.End() && l.posts.Pending() {
		// Posted while draining: run them in the next batch, after its
		// I/O (the timer source's callback Triggers the drain).
		l.tsrc.kick()
	}
	return n
}

// afterCallbacks runs after a batch of callbacks: they may have reset a
// timer earlier, and (unless every one that ran was quiet, loud false)
// readied goroutines into this P's runnext slot, which should run before
// Polling blocks again (loop.Batch's yield).
func (l *Loop) afterCallbacks(loud bool) {
	if l.closed {
		return
	}
	l.rearm()
	if l.yield && loud {
		l.bw.Ran()
		l.bw.Yield()
		l.yields++
	}
}

func (l *Loop) stopTask(any) error {
	l.gen++
	return l.endCheck()
}

func (l *Loop) onceTask(any) error {
	l.gen++
	return l.endCheck()
}

// endCheck makes Polling return when Stop was requested or RunOnce has
// had its iteration. It runs in Polling's chores only, after every
// callback of the batch: nothing collected is left undispatched. A task
// left over from an earlier RunOnce does not end one that has done
// nothing yet.
func (l *Loop) endCheck() error {
	if (l.once && l.onceDone) || l.stopReq.Load() {
		return errShutdown
	}
	return nil
}
