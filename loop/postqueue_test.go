package loop_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

func TestPostQueueFIFO(t *testing.T) {
	q := loop.NewPostQueue(nil)
	var order []int
	for i := range 10 {
		require.NoError(t, q.Post(func() { order = append(order, i) }))
	}
	assert.True(t, q.Pending())
	assert.Equal(t, 10, q.Run())
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, order)
	assert.False(t, q.Pending())
	assert.Zero(t, q.Run())
}

// TestPostQueueRunDefersNewPosts: functions posted while Run runs wait for
// the next Run, so a function that re-posts itself cannot starve the loop.
func TestPostQueueRunDefersNewPosts(t *testing.T) {
	q := loop.NewPostQueue(nil)
	var order []string
	require.NoError(t, q.Post(func() {
		order = append(order, "a")
		require.NoError(t, q.Post(func() { order = append(order, "c") }))
	}))
	require.NoError(t, q.Post(func() { order = append(order, "b") }))
	assert.Equal(t, 2, q.Run())
	assert.Equal(t, []string{"a", "b"}, order)
	assert.True(t, q.Pending())
	assert.Equal(t, 1, q.Run())
	assert.Equal(t, []string{"a", "b", "c"}, order)
}

func TestPostQueueNil(t *testing.T) {
	wakes := 0
	q := loop.NewPostQueue(func() { wakes++ })
	err := q.Post(nil)
	assert.ErrorIs(t, err, loop.ErrNilFunc)
	assert.False(t, q.Pending(), "a nil func must not be queued")
	assert.Zero(t, wakes)
	assert.Zero(t, q.Run())
}

// TestPostQueueWake: wake is called when the queue goes from empty to
// non-empty, not for every Post.
func TestPostQueueWake(t *testing.T) {
	wakes := 0
	q := loop.NewPostQueue(func() { wakes++ })
	for range 3 {
		require.NoError(t, q.Post(func() {}))
	}
	assert.Equal(t, 1, wakes)
	q.Run()
	require.NoError(t, q.Post(func() {}))
	assert.Equal(t, 2, wakes)
}

func TestPostQueueClose(t *testing.T) {
	q := loop.NewPostQueue(nil)
	ran := 0
	for range 5 {
		require.NoError(t, q.Post(func() {
			ran++
			// Posting from a leftover during Close: the queue is closed.
			assert.ErrorIs(t, q.Post(func() { ran += 100 }), loop.ErrClosed)
		}))
	}
	q.Close()
	assert.Equal(t, 5, ran, "Close must run every function posted before it, once")
	assert.ErrorIs(t, q.Post(func() {}), loop.ErrClosed)
	assert.True(t, errors.Is(q.Post(func() {}), loop.ErrClosed))
	assert.Zero(t, q.Run())
	q.Close() // idempotent
	assert.Equal(t, 5, ran)
}

// TestPostQueueConcurrent: many posters and a consumer woken through wake
// (as a backend would); under -race. Every function runs exactly once, in
// FIFO order per poster.
func TestPostQueueConcurrent(t *testing.T) {
	wake := make(chan struct{}, 1)
	q := loop.NewPostQueue(func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	const posters, posts = 8, 2000
	seqs := make([][]int, posters) // consumer goroutine only
	var total atomic.Int64
	done := make(chan struct{})
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for {
			q.Run()
			select {
			case <-wake:
			case <-done:
				q.Run()
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range posts {
				if err := q.Post(func() { seqs[p] = append(seqs[p], i); total.Add(1) }); err != nil {
					t.Errorf("Post: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for total.Load() < posters*posts && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(done)
	<-consumerDone
	require.EqualValues(t, posters*posts, total.Load(), "lost wake-up or lost function")
	for p, seq := range seqs {
		require.Len(t, seq, posts)
		for i, v := range seq {
			if v != i {
				t.Fatalf("poster %d: function %d ran at position %d", p, v, i)
			}
		}
	}
}

// TestPostQueueCloseRacesPosts: every Post racing Close either fails with
// ErrClosed or runs exactly once by the time Close returns.
func TestPostQueueCloseRacesPosts(t *testing.T) {
	q := loop.NewPostQueue(nil)
	var accepted, ran atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := q.Post(func() { ran.Add(1) }); err != nil {
					assert.ErrorIs(t, err, loop.ErrClosed)
					return
				}
				accepted.Add(1)
			}
		}()
	}
	time.Sleep(2 * time.Millisecond)
	q.Close()
	wg.Wait()
	assert.Equal(t, accepted.Load(), ran.Load())
}
