package evhub

import (
	"context"

	"github.com/evhub/evhub/hubexec"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// What a task needs so that it never freezes its hub: blocking calls run
// off the hub (Blocking), lookups that park only the task
// (Hub.Resolver, Hub.SetResolver), waits on any fd (Hub.WaitFD), hub
// files and pipes (Hub.NewFile, Hub.WrapFile, Hub.Pipe) and subprocesses
// (Command, package hubexec). See package scheduler.

type (
	// File is a pipe end, tty or other pollable file on a hub, the
	// counterpart of *os.File.
	File = scheduler.File
	// Resolver is a hub's name lookups (net.Resolver's methods).
	Resolver = scheduler.Resolver
	// Cmd is a subprocess on a hub, the counterpart of *exec.Cmd.
	Cmd = hubexec.Cmd
)

// Readable and Writable are the directions Hub.WaitFD waits for.
const (
	Readable = loop.Readable
	Writable = loop.Writable
)

// ErrNotPollable is wrapped by Hub.WaitFD and Hub.NewFile for a regular
// file or directory.
var ErrNotPollable = scheduler.ErrNotPollable

// DefaultBlockingLimit is how many functions Blocking runs at once unless
// SetBlockingLimit says otherwise.
const DefaultBlockingLimit = scheduler.DefaultBlockingLimit

// Blocking calls fn without blocking the hub: from a task it runs fn on
// another goroutine and parks the task until fn returns or ctx ends (fn
// then runs to its end); from a goroutine it simply calls fn. See
// scheduler.Blocking.
func Blocking(ctx context.Context, fn func() error) error { return scheduler.Blocking(ctx, fn) }

// BlockingValue is Blocking for a function that returns a value.
func BlockingValue[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	return scheduler.BlockingValue(ctx, fn)
}

// SetBlockingLimit bounds how many functions Blocking runs at once in the
// process and returns the previous bound.
func SetBlockingLimit(n int) (int, error) { return scheduler.SetBlockingLimit(n) }

// Command returns a subprocess that runs name with args on hub h, as
// exec.Command does; its Wait and pipes park a task instead of blocking
// the hub. See package hubexec.
func Command(h *Hub, name string, arg ...string) *Cmd { return hubexec.Command(h, name, arg...) }

// CommandContext is Command with a context that kills the child when it
// ends, as exec.CommandContext.
func CommandContext(ctx context.Context, h *Hub, name string, arg ...string) *Cmd {
	return hubexec.CommandContext(ctx, h, name, arg...)
}
