package loop_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/evhub/evhub/loop"
)

// plainStream is a Stream with no context slot; ctxStream has one.
type plainStream struct{ loop.Stream }

type ctxStream struct {
	loop.Stream
	v any
}

func (s *ctxStream) SetContext(v any) { s.v = v }
func (s *ctxStream) Context() any     { return s.v }

// TestStreamValues: a value is kept in a ContextStream's slot, else in
// the map, and Get, Set and Delete behave the same either way.
func TestStreamValues(t *testing.T) {
	var v loop.StreamValues[*int]
	one, two := 1, 2
	p, c := &plainStream{}, &ctxStream{}
	for _, s := range []loop.Stream{p, c} {
		_, ok := v.Get(s)
		assert.False(t, ok)
	}
	v.Set(p, &one)
	v.Set(c, &two)
	assert.Same(t, &two, c.v, "kept in the stream's own slot")
	got, ok := v.Get(p)
	assert.True(t, ok)
	assert.Same(t, &one, got)
	got, ok = v.Get(c)
	assert.True(t, ok)
	assert.Same(t, &two, got)
	v.Delete(p)
	v.Delete(c)
	assert.Nil(t, c.v)
	for _, s := range []loop.Stream{p, c} {
		_, ok := v.Get(s)
		assert.False(t, ok)
	}
}
