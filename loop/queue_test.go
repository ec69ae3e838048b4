package loop_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

// TestQueueTyped: values come out in order, a wake-up only when the queue
// was empty, and a panic in do sends the values after it back to the head
// of the queue (with a wake-up), each taken exactly once; after Close,
// Push fails and nothing queued before it is dropped.
func TestQueueTyped(t *testing.T) {
	type ev struct {
		n int
		s string
	}
	wakes := 0
	q := loop.NewQueue[ev](func() { wakes++ })
	for i := range 5 {
		require.NoError(t, q.Push(ev{i, "x"}))
	}
	assert.Equal(t, 1, wakes)
	var got []int
	func() {
		defer func() { assert.Equal(t, "boom", recover()) }()
		q.Run(func(e ev) {
			got = append(got, e.n)
			if e.n == 1 {
				panic("boom")
			}
		})
	}()
	assert.Equal(t, 2, wakes, "the requeue wakes the loop")
	require.NoError(t, q.Push(ev{5, "y"}))
	assert.Equal(t, 4, q.Run(func(e ev) { got = append(got, e.n) }))
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5}, got)
	assert.False(t, q.Pending())

	require.NoError(t, q.Push(ev{6, "z"}))
	q.Close(func(e ev) { got = append(got, e.n) })
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6}, got)
	assert.True(t, errors.Is(q.Push(ev{7, ""}), loop.ErrClosed))
}
