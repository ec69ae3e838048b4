// Package chaos wraps any loop.Loop in one that misbehaves, from a seed,
// in every way the loop contract allows, so that code above a loop (the
// scheduler, a reactor) can be shown correct on any conforming loop and
// not only on the well-behaved ones it was written against. A wait
// primitive that is right only when the loop is punctual is not right.
//
// What the wrapper does, each from the seed:
//
//   - Spurious readiness: every millisecond or so it reports an armed
//     watcher ready in one or both of its armed directions, whether or not
//     the fd is. The contract makes no promise that readiness is real (a
//     level-triggered loop reports an fd another reader drained; libev's
//     EVRUN_ONCE may return having seen nothing): the caller retries its
//     syscall and waits again.
//   - Duplicate events: a callback the inner loop makes is sometimes made
//     twice in a row.
//   - Late events: an event is sometimes held back and delivered up to
//     MaxDelay later (with every event of that watcher collected
//     meanwhile, so an edge-triggered registration loses nothing).
//   - Late timers: every timer fires a fixed lateness (up to MaxDelay,
//     chosen from the seed) after its deadline: never early, and the order
//     of deadlines (and of equal deadlines, creation order) is kept, as
//     the contract requires.
//   - Posts out of turn: posted functions run in FIFO order (per poster,
//     as the contract requires, and across posters), but a batch of them
//     is sometimes cut short and the rest run after the next poll, so I/O
//     callbacks and timers interleave with posts at different points.
//
// The contract's hard rules hold: callbacks run one at a time on the loop
// goroutine; after Watcher.Stop (or a Modify that removes a direction)
// returns, no held-back, duplicated or spurious event for it (or that
// direction) is delivered; Stop before a timer fires means no callback.
// The optional capabilities of the inner loop (loop.EdgeWatcher,
// loop.StreamServer, loop.Completer, loop.Limited) are kept; stream
// handlers get late and duplicate Writable reports the same way, and
// completions are late and cut up (completion.go).
package chaos

import (
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/evhub/evhub/loop"
)

// Options tune the wrapper; the zero value of a field takes its default.
type Options struct {
	// MaxDelay bounds how late an event or a timer is (default 3 ms).
	MaxDelay time.Duration
	// Spurious is how often (per mille of chaos ticks, one a
	// millisecond) an armed watcher is reported ready for nothing
	// (default 300).
	Spurious int
	// NoSpurious turns spurious readiness off.
	NoSpurious bool
	// Duplicate, Delay and CutPosts are per mille of inner callbacks
	// delivered twice, inner callbacks held back, and post batches cut
	// short (defaults 100, 100, 200).
	Duplicate, Delay, CutPosts int
}

func (o Options) withDefaults() Options {
	if o.MaxDelay <= 0 {
		o.MaxDelay = 3 * time.Millisecond
	}
	if o.Spurious <= 0 {
		o.Spurious = 300
	}
	if o.Duplicate <= 0 {
		o.Duplicate = 100
	}
	if o.Delay <= 0 {
		o.Delay = 100
	}
	if o.CutPosts <= 0 {
		o.CutPosts = 200
	}
	return o
}

// Wrap returns inner wrapped in chaos from seed with the default options.
func Wrap(inner loop.Loop, seed uint64) loop.Loop { return WrapOptions(inner, seed, Options{}) }

// WrapOptions is Wrap with options. The wrapper owns inner: Close closes
// it. The returned loop implements loop.EdgeWatcher, loop.StreamServer,
// loop.Completer and loop.Limited exactly when inner does.
func WrapOptions(inner loop.Loop, seed uint64, opt Options) loop.Loop {
	opt = opt.withDefaults()
	c := &Loop{inner: inner, opt: opt, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	c.timerLate = time.Duration(c.rnd.Int64N(int64(opt.MaxDelay) + 1))
	c.watchers = map[*watcher]struct{}{}
	c.drainFn = c.drain
	edge, isEdge := inner.(loop.EdgeWatcher)
	ss, isSS := inner.(loop.StreamServer)
	comp, isComp := inner.(loop.Completer)
	e, st, cp := edgePart{c, edge}, streamPart{c, ss}, compPart{c, comp}
	if isComp {
		c.comp, c.recvs, c.received = comp, map[int]*recv{}, &receiver{c}
	}
	switch {
	case isEdge && isSS && isComp:
		return &struct {
			*Loop
			edgePart
			streamPart
			compPart
		}{c, e, st, cp}
	case isEdge && isSS:
		return &struct {
			*Loop
			edgePart
			streamPart
		}{c, e, st}
	case isEdge && isComp:
		return &struct {
			*Loop
			edgePart
			compPart
		}{c, e, cp}
	case isSS && isComp:
		return &struct {
			*Loop
			streamPart
			compPart
		}{c, st, cp}
	case isEdge:
		return &struct {
			*Loop
			edgePart
		}{c, e}
	case isSS:
		return &struct {
			*Loop
			streamPart
		}{c, st}
	case isComp:
		return &struct {
			*Loop
			compPart
		}{c, cp}
	}
	return c
}

// Loop is the chaos wrapper of a loop.Loop.
type Loop struct {
	inner     loop.Loop
	opt       Options
	timerLate time.Duration

	// Loop goroutine only.
	rnd      *rand.Rand
	watchers map[*watcher]struct{}
	ticker   loop.Timer
	comp     loop.Completer // inner's, if it has it
	recvs    map[int]*recv  // its receives by fd
	received *receiver      // their inner loop.Receiver
	spare    [][]byte       // buffers for held-back chunks (copyOf)

	// Posts: one FIFO for every poster.
	pmu      sync.Mutex
	posts    []func()
	draining bool // a drain is posted or scheduled on the inner loop
	closed   bool // the inner loop refused a post: so does the wrapper
	closing  bool // Close has begun: drains run to the end
	drainFn  func()
}

var _ loop.Loop = (*Loop)(nil)

// Name is the inner loop's name.
func (c *Loop) Name() string { return c.inner.Name() }

// Unsupported passes on the inner loop's missing capabilities.
func (c *Loop) Unsupported() map[loop.Capability]string { return loop.UnsupportedOf(c.inner) }

func (c *Loop) chance(perMille int) bool { return c.rnd.IntN(1000) < perMille }

func (c *Loop) delay() time.Duration {
	return time.Duration(1 + c.rnd.Int64N(int64(c.opt.MaxDelay)))
}

// Watch arms a level-triggered watcher through the chaos.
func (c *Loop) Watch(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	w := &watcher{c: c, cb: cb, armed: ev}
	iw, err := c.inner.Watch(fd, ev, w.fire)
	if err != nil {
		return nil, err
	}
	w.inner = iw
	c.add(w)
	return w, nil
}

func (c *Loop) add(w *watcher) {
	c.watchers[w] = struct{}{}
	if c.ticker == nil {
		c.ticker = c.inner.Timer(time.Millisecond, time.Millisecond, c.tick)
	}
}

// tick reports random armed watchers ready for nothing.
func (c *Loop) tick() {
	if c.opt.NoSpurious {
		return
	}
	for w := range c.watchers {
		if !c.chance(c.opt.Spurious) {
			continue
		}
		ev := w.armed
		if ev == loop.Readable|loop.Writable {
			ev = []loop.Events{loop.Readable, loop.Writable, ev}[c.rnd.IntN(3)]
		}
		w.deliver(ev)
	}
}

// Timer fires a fixed lateness after the inner loop would.
func (c *Loop) Timer(after, repeat time.Duration, cb func()) loop.Timer {
	return &timer{c: c, inner: c.inner.Timer(after+c.timerLate, repeat, cb)}
}

type timer struct {
	c     *Loop
	inner loop.Timer
}

func (t *timer) Stop() bool { return t.inner.Stop() }

func (t *timer) Reset(after, repeat time.Duration) bool {
	return t.inner.Reset(after+t.c.timerLate, repeat)
}

// Signal is the inner loop's.
func (c *Loop) Signal(sig os.Signal, cb func(os.Signal)) (loop.Watcher, error) {
	return c.inner.Signal(sig, cb)
}

// Post queues fn in the wrapper's FIFO; the inner loop drains it, in
// batches that are sometimes cut short.
func (c *Loop) Post(fn func()) error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.closed {
		return loop.ErrClosed
	}
	if !c.draining {
		if err := c.inner.Post(c.drainFn); err != nil {
			c.closed = true
			return err
		}
		c.draining = true
	}
	c.posts = append(c.posts, fn)
	return nil
}

// drain runs queued posts on the loop goroutine; it may stop early and
// leave the rest for a timer (after the next poll), never reordering.
func (c *Loop) drain() {
	for {
		c.pmu.Lock()
		if len(c.posts) == 0 {
			c.draining = false
			c.pmu.Unlock()
			return
		}
		fn := c.posts[0]
		c.posts[0] = nil
		c.posts = c.posts[1:]
		c.pmu.Unlock()
		fn()
		c.pmu.Lock()
		cut := !c.closing && len(c.posts) > 0 && c.chance(c.opt.CutPosts)
		c.pmu.Unlock()
		if cut {
			c.inner.Timer(0, 0, c.drainFn)
			return
		}
	}
}

// Run, RunOnce, Stop and Now are the inner loop's.
func (c *Loop) Run() error               { return c.inner.Run() }
func (c *Loop) RunOnce(block bool) error { return c.inner.RunOnce(block) }
func (c *Loop) Stop()                    { c.inner.Stop() }
func (c *Loop) Now() time.Time           { return c.inner.Now() }

// Close closes the inner loop, which runs the posts still queued.
func (c *Loop) Close() error {
	c.pmu.Lock()
	c.closing = true
	c.pmu.Unlock()
	err := c.inner.Close()
	c.pmu.Lock()
	c.closed = true
	c.pmu.Unlock()
	// The inner loop ran its own queue; a drain that could not be posted
	// any more leaves ours: run it here, so no post is dropped.
	for {
		c.pmu.Lock()
		if len(c.posts) == 0 {
			c.pmu.Unlock()
			return err
		}
		fn := c.posts[0]
		c.posts = c.posts[1:]
		c.pmu.Unlock()
		fn()
	}
}

// watcher is a chaos watcher over an inner one; loop goroutine only.
type watcher struct {
	c       *Loop
	inner   loop.IOWatcher
	cb      func(loop.Events)
	armed   loop.Events
	stopped bool
	held    loop.Events // events held back for a late delivery
	timer   loop.Timer
}

// fire is the inner callback.
func (w *watcher) fire(ev loop.Events) {
	if w.stopped {
		return
	}
	c := w.c
	if w.held != 0 || c.chance(c.opt.Delay) {
		w.held |= ev
		if w.timer == nil {
			w.timer = c.inner.Timer(c.delay(), 0, w.late)
		}
		return
	}
	w.deliver(ev)
	if c.chance(c.opt.Duplicate) {
		w.deliver(ev)
	}
}

func (w *watcher) late() {
	ev := w.held
	w.held, w.timer = 0, nil
	w.deliver(ev)
}

// deliver calls the user's callback with ev limited to what is armed now.
func (w *watcher) deliver(ev loop.Events) {
	ev &= w.armed
	if w.stopped || ev == 0 {
		return
	}
	w.cb(ev)
}

func (w *watcher) Stop() error {
	if w.stopped {
		return nil
	}
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	delete(w.c.watchers, w)
	return w.inner.Stop()
}

func (w *watcher) Modify(ev loop.Events) error {
	if err := w.inner.Modify(ev); err != nil {
		return err
	}
	w.armed = ev
	w.held &= ev
	return nil
}

func (w *watcher) Events() loop.Events { return w.armed }

// edgePart adds loop.EdgeWatcher.
type edgePart struct {
	c    *Loop
	edge loop.EdgeWatcher
}

// WatchEdge registers edge-triggered through the chaos: spurious,
// duplicate and late events as for Watch; held-back edges are delivered
// together, never lost.
func (e edgePart) WatchEdge(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	w := &watcher{c: e.c, cb: cb, armed: ev}
	iw, err := e.edge.WatchEdge(fd, ev, w.fire)
	if err != nil {
		return nil, err
	}
	w.inner = iw
	e.c.add(w)
	return w, nil
}

// streamPart adds loop.StreamServer.
type streamPart struct {
	c  *Loop
	ss loop.StreamServer
}

// ServeStream serves through the inner loop, with Writable reports
// sometimes duplicated.
func (s streamPart) ServeStream(network, address string, h loop.StreamHandler) (loop.StreamListener, error) {
	return s.ss.ServeStream(network, address, &streamHandler{c: s.c, h: h})
}

type streamHandler struct {
	c *Loop
	h loop.StreamHandler
}

func (h *streamHandler) Opened(s loop.Stream)          { h.h.Opened(s) }
func (h *streamHandler) Data(s loop.Stream, p []byte)  { h.h.Data(s, p) }
func (h *streamHandler) Closed(s loop.Stream, e error) { h.h.Closed(s, e) }
func (h *streamHandler) ListenerFailed(err error)      { h.h.ListenerFailed(err) }

// Writable may be reported twice: a spurious report makes the writer try
// again and find the stream still full.
func (h *streamHandler) Writable(s loop.Stream) {
	h.h.Writable(s)
	if h.c.chance(h.c.opt.Duplicate) {
		h.h.Writable(s)
	}
}

var (
	_ loop.EdgeWatcher  = edgePart{}
	_ loop.StreamServer = streamPart{}
	_ loop.Completer    = compPart{}
	_ loop.Limited      = (*Loop)(nil)
)
