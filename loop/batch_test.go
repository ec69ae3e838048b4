package loop_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

func TestBatchSkipsWakeOnlyDuringABatch(t *testing.T) {
	var b loop.Batch
	assert.False(t, b.SkipWake(), "no batch: the loop must be woken")
	assert.False(t, b.End(), "nothing skipped")

	b.Begin()
	assert.True(t, b.SkipWake(), "a batch runs: its End will see the post")
	assert.True(t, b.SkipWake())
	assert.True(t, b.End(), "End reports the skipped wake-up")
	assert.False(t, b.End(), "and only once")
	assert.False(t, b.SkipWake(), "the batch is over")

	b.Begin()
	assert.False(t, b.End(), "a batch nobody posted during")
}

// TestBatchNeverStrandsAPost races a poster against a loop that looks at
// its posts only when woken or when End reports a skipped wake-up. The
// poster waits for each post to run before the next, so each post is the
// last one: a post that neither wakes the loop nor is seen by End leaves
// both waiting, and the test fails at its time limit. Posts land during
// batches (the poster posts as soon as it sees the previous one run,
// while that batch is still ending) and between them.
func TestBatchNeverStrandsAPost(t *testing.T) {
	const posts = 20000
	var (
		b    loop.Batch
		sent atomic.Int64 // posts made
		ran  atomic.Int64 // posts run
		wake = make(chan struct{}, 1)
		quit = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() { // the loop
		defer wg.Done()
		for {
			select {
			case <-wake:
			case <-quit:
				return
			}
			for {
				b.Begin()
				ran.Store(sent.Load()) // the batch runs what was posted
				if !b.End() {
					break
				}
			}
		}
	}()
	defer func() { close(quit); wg.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for i := int64(1); i <= posts; i++ {
		sent.Store(i)
		if !b.SkipWake() {
			select {
			case wake <- struct{}{}:
			default: // a wake-up is already pending
			}
		}
		for ran.Load() < i {
			if time.Now().After(deadline) {
				require.FailNow(t, "a post was stranded", "post %d of %d never ran", i, posts)
			}
			runtime.Gosched()
		}
	}
}

func TestBatchYieldsOnceAfterCallbacks(t *testing.T) {
	var yields int
	defer loop.SetGosched(func() { yields++ })()

	var b loop.Batch
	assert.False(t, b.Yield(), "no callback ran")
	assert.Zero(t, yields)

	b.Ran()
	b.Ran()
	assert.True(t, b.Yield())
	assert.Equal(t, 1, yields, "one yield per batch, however many callbacks ran")
	assert.False(t, b.Yield(), "nothing ran since")
	assert.Equal(t, 1, yields)
}

// TestBatchSkippedMidBatch: Skipped hands the loop the skipped wake-ups so
// far and forgets them; those after it still reach End.
func TestBatchSkippedMidBatch(t *testing.T) {
	var b loop.Batch
	b.Begin()
	assert.False(t, b.Skipped(), "nothing skipped yet")
	require.True(t, b.SkipWake())
	assert.True(t, b.Skipped())
	assert.False(t, b.Skipped(), "forgotten once reported")
	assert.False(t, b.End(), "reported already: End has nothing left")
	b.Begin()
	require.True(t, b.SkipWake())
	assert.True(t, b.Skipped())
	require.True(t, b.SkipWake(), "a post after Skipped")
	assert.True(t, b.End(), "End sees the post made after Skipped")
}
