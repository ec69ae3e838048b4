package loop_test

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

// stubLoop is the least loop.Loop for registry and capability tests.
type stubLoop struct {
	name    string
	missing map[loop.Capability]string
}

func (s *stubLoop) Name() string { return s.name }
func (s *stubLoop) Watch(int, loop.Events, func(loop.Events)) (loop.IOWatcher, error) {
	return nil, loop.Unsupported(s, loop.CapWatch)
}
func (s *stubLoop) Timer(time.Duration, time.Duration, func()) loop.Timer { return nil }
func (s *stubLoop) Signal(os.Signal, func(os.Signal)) (loop.Watcher, error) {
	return nil, loop.Unsupported(s, loop.CapPacket)
}
func (s *stubLoop) Post(func()) error                       { return loop.ErrClosed }
func (s *stubLoop) Run() error                              { return nil }
func (s *stubLoop) RunOnce(bool) error                      { return nil }
func (s *stubLoop) Stop()                                   {}
func (s *stubLoop) Now() time.Time                          { return time.Now() }
func (s *stubLoop) Close() error                            { return nil }
func (s *stubLoop) Unsupported() map[loop.Capability]string { return s.missing }

var nameSeq atomic.Int64

// uniqueName makes registry names unique across -count repetitions (the
// registry is process-wide and has no Unregister).
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, nameSeq.Add(1))
}

func stubFactory(name string) loop.Factory {
	return func() (loop.Loop, error) { return &stubLoop{name: name}, nil }
}

func TestRegisterPanics(t *testing.T) {
	once := uniqueName("test-registered-once")
	loop.Register(once, stubFactory(once))
	assert.PanicsWithValue(t, "loop: Register called twice for backend "+once, func() {
		loop.Register(once, stubFactory("x"))
	})
	assert.Panics(t, func() { loop.Register("", stubFactory("x")) }, "empty name")
	nilName := uniqueName("test-nil-factory")
	assert.Panics(t, func() { loop.Register(nilName, nil) }, "nil factory")
	assert.NotContains(t, loop.Names(), nilName, "a rejected Register must not register")
}

func TestNamesSorted(t *testing.T) {
	added := []string{uniqueName("test-zz"), uniqueName("test-aa"), uniqueName("test-mm")}
	for _, n := range added {
		loop.Register(n, stubFactory(n))
	}
	names := loop.Names()
	assert.True(t, sort.StringsAreSorted(names), "Names must be sorted: %v", names)
	for _, n := range added {
		assert.Contains(t, names, n)
	}
	names[0] = "mutated"
	assert.NotContains(t, loop.Names(), "mutated", "Names must return a copy")
}

func TestOpen(t *testing.T) {
	name := uniqueName("test-open")
	loop.Register(name, stubFactory(name))
	l, err := loop.Open(name)
	require.NoError(t, err)
	assert.Equal(t, name, l.Name())

	boom := errors.New("boom")
	failing := uniqueName("test-open-fails")
	loop.Register(failing, func() (loop.Loop, error) { return nil, boom })
	_, err = loop.Open(failing)
	assert.ErrorIs(t, err, boom, "Open must wrap the factory's error")
	assert.Contains(t, err.Error(), failing, "and name the backend")
}

func TestOpenUnknown(t *testing.T) {
	known := uniqueName("test-known")
	loop.Register(known, stubFactory(known))
	_, err := loop.Open("no-such-backend")
	var ub *loop.UnknownBackendError
	require.ErrorAs(t, err, &ub)
	assert.Equal(t, "no-such-backend", ub.Name)
	assert.Equal(t, loop.Names(), ub.Known, "the error lists the compiled-in backends")
	assert.Contains(t, err.Error(), `"no-such-backend"`)
	assert.Contains(t, err.Error(), known)
}

func TestCapabilities(t *testing.T) {
	full := &stubLoop{name: "full"}
	assert.True(t, loop.Supports(full, loop.CapWatch))
	assert.Nil(t, loop.UnsupportedOf(struct{}{}), "a value that is not Limited lacks nothing")
	assert.True(t, loop.Supports(struct{}{}, loop.CapPacket))

	lim := &stubLoop{name: "lim", missing: map[loop.Capability]string{
		loop.CapWatch:  "owns its sockets",
		loop.CapPacket: "no datagrams",
	}}
	assert.False(t, loop.Supports(lim, loop.CapWatch))
	assert.True(t, loop.Supports(lim, loop.CapDial))
	assert.Equal(t, []loop.Capability{loop.CapPacket, loop.CapWatch}, loop.SortedCapabilities(lim.missing))

	_, err := lim.Watch(0, loop.Readable, func(loop.Events) {})
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	var ue *loop.UnsupportedError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, loop.CapWatch, ue.Capability)
	assert.Equal(t, "owns its sockets", ue.Reason)
	assert.Equal(t, "lim: watch unsupported: owns its sockets", err.Error())

	err = loop.Unsupported(full, loop.CapDial)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	assert.True(t, strings.HasPrefix(err.Error(), "full: dial unsupported: "), err.Error())
}

func TestEventsString(t *testing.T) {
	assert.Equal(t, "r", loop.Readable.String())
	assert.Equal(t, "w", loop.Writable.String())
	assert.Equal(t, "rw", (loop.Readable | loop.Writable).String())
	assert.Equal(t, "-", loop.Events(0).String())
}
