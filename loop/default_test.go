package loop_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/evhub/evhub/loop"
)

func TestChooseDefault(t *testing.T) {
	pref := []string{"cev", "gnet", "netpoll", "evio"}
	none := func(string) bool { return false }
	only := func(bad ...string) func(string) bool {
		return func(name string) bool {
			for _, b := range bad {
				if b == name {
					return true
				}
			}
			return false
		}
	}
	for _, tc := range []struct {
		name        string
		tagged      []string
		registered  []string
		unsupported func(string) bool
		want        string
	}{
		{"first registered in order", nil, []string{"evio", "gnet", "netpoll"}, none, "gnet"},
		{"a backend linked by its tag comes first", nil, []string{"cev", "evio", "gnet", "netpoll"}, none, "cev"},
		{"unsupported here is passed over", nil, []string{"evio", "gnet", "netpoll"}, only("gnet"), "netpoll"},
		{"tag forces a later backend", []string{"evio"}, []string{"evio", "gnet", "netpoll"}, none, "evio"},
		{"tag forces even where it cannot open", []string{"evio"}, []string{"evio", "gnet", "netpoll"}, only("evio"), "evio"},
		{"first tag in preference order", []string{"cev", "evio"}, []string{"cev", "evio", "gnet", "netpoll"}, none, "cev"},
		{"nothing opens: the best, whose Open says why", nil, []string{"evio", "gnet", "netpoll"}, only("evio", "gnet", "netpoll"), "gnet"},
		{"unknown registrations only", nil, []string{"mine"}, none, "mine"},
		{"unlisted registrations come after the list", nil, []string{"a-mine", "evio", "gnet"}, only("gnet"), "evio"},
		{"nothing registered", nil, nil, none, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, loop.ChooseDefault(pref, tc.tagged, tc.registered, tc.unsupported))
		})
	}
}

func TestDefaultFromTheRegistry(t *testing.T) {
	order, tags := loop.Preference()
	t.Cleanup(func() { loop.SetPreference(order, tags) })

	none := uniqueName("test-default-unsupported")
	loop.Register(none, func() (loop.Loop, error) {
		return nil, &loop.UnsupportedError{Backend: none, Capability: "platform", Reason: "not here"}
	})
	ok := uniqueName("test-default-ok")
	loop.Register(ok, stubFactory(ok))
	later := uniqueName("test-default-later")

	loop.SetPreference([]string{later, none, ok}, nil)
	assert.Equal(t, ok, loop.Default(), "the unregistered and the unsupported are passed over")

	loop.SetPreference([]string{later, none, ok}, []string{none})
	assert.Equal(t, none, loop.Default(), "a tag forces its backend")

	loop.SetPreference([]string{later, none, ok}, nil)
	loop.Register(later, stubFactory(later))
	assert.Equal(t, later, loop.Default(), "Register makes Default choose again")

	gotOrder, gotTags := loop.Preference()
	assert.Equal(t, []string{later, none, ok}, gotOrder)
	assert.Empty(t, gotTags)
}
