//go:build unix

package conformance

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

// opener makes a new loop for one case.
type opener = func() (loop.Loop, error)

// loopCase is one rule of the loop contract.
type loopCase struct {
	name string
	fn   func(t *testing.T, open opener)
}

// TestLoop runs the loop-contract conformance suite against the loops that
// open returns: one new loop per case, closed by the suite. Cases are
// subtests named "Area/Case"; see the package documentation.
func TestLoop(t *testing.T, open func() (loop.Loop, error)) {
	t.Helper()
	areas := []struct {
		name  string
		cases []loopCase
	}{
		{"run", runCases},
		{"post", postCases},
		{"watch", watchCases},
		{"edge", edgeCases},
		{"timer", timerCases},
		{"signal", signalCases},
		{"close", closeCases},
	}
	// loop.EdgeWatcher is an optional extra, not part of the contract: a
	// loop without it has no edge area at all (the matrix shows "-"),
	// rather than cases counted as n/a.
	hasEdge := false
	if l, err := open(); err == nil {
		_, hasEdge = l.(loop.EdgeWatcher)
		_ = l.Close()
	}
	for _, area := range areas {
		if area.name == "edge" && !hasEdge {
			t.Log("edge: the loop does not offer the optional loop.EdgeWatcher; the scheduler uses its level-triggered path")
			continue
		}
		t.Run(area.name, func(t *testing.T) {
			for _, c := range area.cases {
				t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
			}
		})
	}
}

var runCases = []loopCase{
	{"Name", testRunName},
	{"Now", testRunNow},
	{"RunStop", testRunStop},
	{"StopFromCallback", testRunStopFromCallback},
	{"RunAgain", testRunAgain},
	{"RunOnceNonBlocking", testRunOnceNonBlocking},
	{"RunOnceBlockingPost", testRunOnceBlockingPost},
	{"RunOnceBlockingTimer", testRunOnceBlockingTimer},
	{"CallbacksOnLoopGoroutine", testRunCallbacksOnLoopGoroutine},
	{"SerialCallbacks", testRunSerialCallbacks},
}

func testRunName(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	assert.NotEmpty(t, l.Name(), "Name must return the backend's registered name")
}

func testRunNow(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	n1 := l.Now()
	time.Sleep(2 * time.Millisecond)
	n2 := l.Now()
	assert.True(t, n2.After(n1), "Now must advance: %v then %v", n1, n2)
	assert.WithinDuration(t, time.Now(), n2, time.Second, "Now must be the current time")
}

// testRunStop: Run on one goroutine, Stop from another makes it return nil.
func testRunStop(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	do(t, l, func() {}) // Run is running
	go l.Stop()
	err := wait(t, done, "Run to return after Stop from another goroutine")
	assert.NoError(t, err, "Run after Stop")
}

func testRunStopFromCallback(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	require.NoError(t, l.Post(l.Stop))
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	err := wait(t, done, "Run to return after Stop from a posted function")
	assert.NoError(t, err, "Run after Stop")
}

// testRunAgain: after Stop, a later Run starts the loop again.
func testRunAgain(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	for i := range 3 {
		done := make(chan error, 1)
		go func() { done <- l.Run() }()
		do(t, l, func() {})
		l.Stop()
		err := wait(t, done, "Run to return after Stop")
		require.NoError(t, err, "Run #%d", i+1)
	}
}

// testRunOnceNonBlocking: RunOnce(false) returns with nothing to do, and
// runs what was posted before it.
func testRunOnceNonBlocking(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	done := make(chan error, 1)
	go func() { done <- l.RunOnce(false) }()
	require.NoError(t, wait(t, done, "RunOnce(false) to return on an idle loop"))

	ran := false
	require.NoError(t, l.Post(func() { ran = true }))
	go func() { done <- l.RunOnce(false) }()
	require.NoError(t, wait(t, done, "RunOnce(false) to return"))
	assert.True(t, ran, "RunOnce(false) must run a function posted before it")
}

// testRunOnceBlockingPost: RunOnce(true) waits for a Post from another
// goroutine. Spurious returns are allowed, so it is called until the posted
// function has run.
func testRunOnceBlockingPost(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	var ran atomic.Bool
	var ranOn atomic.Uint64
	done := make(chan error, 1)
	go func() {
		me := goid()
		for !ran.Load() {
			if err := l.RunOnce(true); err != nil {
				done <- err
				return
			}
		}
		if ranOn.Load() != me {
			done <- errors.New("the posted function did not run on the goroutine calling RunOnce")
			return
		}
		done <- nil
	}()
	time.Sleep(20 * time.Millisecond) // let RunOnce block
	require.NoError(t, l.Post(func() { ranOn.Store(goid()); ran.Store(true) }))
	require.NoError(t, wait(t, done, "RunOnce(true) to return after a Post from another goroutine"))
}

// testRunOnceBlockingTimer: RunOnce(true) waits for a timer.
func testRunOnceBlockingTimer(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	var fired atomic.Bool
	l.Timer(10*time.Millisecond, 0, func() { fired.Store(true) })
	done := make(chan error, 1)
	go func() {
		for !fired.Load() {
			if err := l.RunOnce(true); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	require.NoError(t, wait(t, done, "RunOnce(true) to return after a timer fired"))
}

// testRunCallbacksOnLoopGoroutine: every kind of callback runs on the
// goroutine that called Run (or RunOnce).
func testRunCallbacksOnLoopGoroutine(t *testing.T, open opener) {
	me := goid()
	other := make(chan uint64)
	go func() { other <- goid() }()
	require.NotZero(t, me, "goroutine ids must be readable from runtime.Stack")
	require.NotEqual(t, me, <-other, "goroutine ids must differ")

	l, _ := openLoop(t, open)
	var (
		mu   sync.Mutex
		seen = map[string]uint64{}
	)
	record := func(kind string) {
		mu.Lock()
		seen[kind] = goid()
		mu.Unlock()
	}
	got := func(kind string) bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := seen[kind]
		return ok
	}
	kinds := []string{"post", "timer"}
	watch := loop.Supports(l, loop.CapWatch)
	var p *fdPair
	if watch {
		p = socketpair(t)
		writeBytes(t, p.b, 1)
		w, err := l.Watch(p.a, loop.Readable, func(loop.Events) {
			drainQuiet(p.a)
			record("watch")
		})
		require.NoError(t, err, "Watch")
		t.Cleanup(func() { _ = w.Stop() })
		kinds = append(kinds, "watch")
	} else {
		t.Logf("watch callbacks not checked: %s", loop.UnsupportedOf(l)[loop.CapWatch])
	}

	// Driven by RunOnce on this goroutine.
	require.NoError(t, l.Post(func() { record("post") }))
	l.Timer(time.Millisecond, 0, func() { record("timer") })
	runUntil(t, l, "post, timer and watch callbacks", func() bool {
		for _, k := range kinds {
			if !got(k) {
				return false
			}
		}
		return true
	})
	mu.Lock()
	for _, k := range kinds {
		assert.Equal(t, me, seen[k], "%s callback must run on the goroutine calling RunOnce", k)
	}
	clear(seen)
	mu.Unlock()

	// Driven by Run on another goroutine.
	r := startRun(t, l)
	do(t, l, func() {
		l.Timer(time.Millisecond, 0, func() { record("timer") })
	})
	require.NoError(t, l.Post(func() { record("post") }))
	if watch {
		writeBytes(t, p.b, 1)
	}
	deadline := time.Now().Add(bound)
	for _, k := range kinds {
		for !got(k) {
			require.True(t, time.Now().Before(deadline), "timed out waiting for the %s callback", k)
			time.Sleep(time.Millisecond)
		}
	}
	mu.Lock()
	for _, k := range kinds {
		assert.Equal(t, r.gid, seen[k], "%s callback must run on the goroutine calling Run", k)
	}
	mu.Unlock()

	{
		guard := notifyGuard(t)
		var sw loop.Watcher
		do(t, l, func() {
			var err error
			sw, err = l.Signal(syscall.SIGUSR1, func(os.Signal) { record("signal") })
			require.NoError(t, err, "Signal")
		})
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGUSR1))
		wait(t, guard, "SIGUSR1")
		for !got("signal") {
			require.True(t, time.Now().Before(deadline.Add(bound)), "timed out waiting for the signal callback")
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		assert.Equal(t, r.gid, seen["signal"], "signal callback must run on the goroutine calling Run")
		mu.Unlock()
		do(t, l, func() { assert.NoError(t, sw.Stop()) })
	}
}

// testRunSerialCallbacks: callbacks never overlap. Every callback updates
// unsynchronised state (which -race checks) and an atomic in-callback flag
// (which catches overlap without -race).
func testRunSerialCallbacks(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	var (
		inside   atomic.Int32
		overlaps atomic.Int32
		calls    atomic.Int64
		shared   int64 // deliberately unsynchronised
	)
	enter := func() {
		if inside.Add(1) != 1 {
			overlaps.Add(1)
		}
		shared++
		calls.Add(1)
		inside.Add(-1)
	}

	// Timers and watchers are set up before Run starts.
	var timers []loop.Timer
	for i := range 10 {
		timers = append(timers, l.Timer(time.Duration(i)*100*time.Microsecond, time.Millisecond, enter))
	}
	const pairs = 4
	var fds []*fdPair
	if loop.Supports(l, loop.CapWatch) {
		for range pairs {
			p := socketpair(t)
			fds = append(fds, p)
			w, err := l.Watch(p.a, loop.Readable, func(loop.Events) {
				enter()
				var buf [64]byte
				_, _ = syscall.Read(p.a, buf[:])
			})
			require.NoError(t, err, "Watch")
			t.Cleanup(func() { _ = w.Stop() })
		}
	}
	startRun(t, l)

	const posters, posts = 8, 300
	var wg sync.WaitGroup
	for range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range posts {
				if err := l.Post(enter); err != nil {
					t.Errorf("Post: %v", err)
					return
				}
			}
		}()
	}
	for _, p := range fds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				_, _ = syscall.Write(p.b, []byte{1})
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	do(t, l, func() {
		for _, tm := range timers {
			tm.Stop()
		}
	})
	// The final read of shared happens on the loop goroutine.
	var final, finalCalls int64
	do(t, l, func() { final, finalCalls = shared, calls.Load() })
	assert.Zero(t, overlaps.Load(), "callbacks ran concurrently")
	assert.GreaterOrEqual(t, final, int64(posters*posts), "every posted function must have run")
	assert.Equal(t, finalCalls, final, "unsynchronised counter lost updates: callbacks overlapped")
}

var postCases = []loopCase{
	{"ExactlyOnceFIFO", testPostExactlyOnceFIFO},
	{"WakesBlockedLoop", testPostWakesBlockedLoop},
	{"Nil", testPostNil},
	{"FromCallback", testPostFromCallback},
	{"AfterClose", testPostAfterClose},
	{"RacesClose", testPostRacesClose},
}

// testPostExactlyOnceFIFO: many posters; each function runs exactly once,
// in order per poster.
func testPostExactlyOnceFIFO(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	startRun(t, l)
	const posters, posts = 8, 2000
	seqs := make([][]int, posters) // appended on the loop goroutine only
	var wg sync.WaitGroup
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range posts {
				if err := l.Post(func() { seqs[p] = append(seqs[p], i) }); err != nil {
					t.Errorf("poster %d: Post #%d: %v", p, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Every poster's functions were queued before this one.
	do(t, l, func() {})
	for p, seq := range seqs {
		require.Len(t, seq, posts, "poster %d: each posted function must run exactly once", p)
		for i, v := range seq {
			if v != i {
				t.Fatalf("poster %d: function #%d ran in position %d: Post must be FIFO per poster", p, v, i)
			}
		}
	}
}

// testPostWakesBlockedLoop: a loop blocked in its poll wakes for a Post
// from another goroutine, every time (a lost wake-up fails after bound).
func testPostWakesBlockedLoop(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	startRun(t, l)
	var worst time.Duration
	for i := range 50 {
		if i%10 == 0 {
			time.Sleep(20 * time.Millisecond) // certainly idle in its poll
		} else {
			time.Sleep(time.Millisecond)
		}
		ran := make(chan struct{})
		start := time.Now()
		require.NoError(t, l.Post(func() { close(ran) }))
		wait(t, ran, "a Post to wake the blocked loop")
		worst = max(worst, time.Since(start))
	}
	t.Logf("slowest of 50 post wake-ups: %v", worst)
}

func testPostNil(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	assert.Error(t, l.Post(nil), "Post(nil) must be an error")
	runNoWait(t, l) // and must not have queued anything that panics
}

func testPostFromCallback(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	var order []int
	require.NoError(t, l.Post(func() {
		order = append(order, 1)
		assert.NoError(t, l.Post(func() { order = append(order, 3) }))
	}))
	require.NoError(t, l.Post(func() { order = append(order, 2) }))
	runUntil(t, l, "the function posted from a callback", func() bool { return len(order) == 3 })
	assert.Equal(t, []int{1, 2, 3}, order)
}

func testPostAfterClose(t *testing.T, open opener) {
	l, closeLoop := openLoop(t, open)
	require.NoError(t, closeLoop.Close(), "Close")
	ran := false
	err := l.Post(func() { ran = true })
	assert.ErrorIs(t, err, loop.ErrClosed, "Post after Close")
	assert.False(t, ran, "a Post refused by a closed loop must not run")
}

// testPostRacesClose: posters race with Close; every Post either fails
// with ErrClosed or its function runs exactly once (by Close at the
// latest).
func testPostRacesClose(t *testing.T, open opener) {
	l, closeLoop := openLoop(t, open)
	const posters = 4
	var (
		accepted, ran atomic.Int64
		wg            sync.WaitGroup
		start         = make(chan struct{})
	)
	for range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				err := l.Post(func() { ran.Add(1) })
				if err != nil {
					if !errors.Is(err, loop.ErrClosed) {
						t.Errorf("Post racing Close: %v, want loop.ErrClosed", err)
					}
					return
				}
				accepted.Add(1)
			}
		}()
	}
	close(start)
	time.Sleep(2 * time.Millisecond)
	require.NoError(t, closeLoop.Close(), "Close")
	wg.Wait()
	assert.Equal(t, accepted.Load(), ran.Load(), "every accepted Post must run exactly once, by Close at the latest")
}
