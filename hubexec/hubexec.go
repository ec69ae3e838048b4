// Package hubexec runs subprocesses without blocking a hub: the
// counterpart of os/exec (gevent's subprocess module) for cooperative
// tasks. A Cmd is an *exec.Cmd — same fields, same Start, same errors
// (*exec.ExitError, "exec: Stdout already set", ...) — whose Wait parks
// the calling task instead of blocking its hub's thread in wait4, and
// whose StdinPipe, StdoutPipe and StderrPipe are hub files
// (*scheduler.File), so a task reading a child's output parks too.
//
// Wait watches the child's pidfd (Linux 5.3 and later) on the hub's loop
// where the loop can watch fds, and on the Go runtime's poller where it
// cannot (the evio backend): no thread waits while the child runs. Where
// there is no pidfd (other systems), the child is waited for in wait4 on
// a goroutine of its own, off the hub, at most 64 such threads at once
// (the others wait for one, as scheduler.Blocking's calls do). Pipes need
// a loop that watches fds: on evio they are errors wrapping
// errors.ErrUnsupported, while Run, Output and CombinedOutput work (their
// output is copied by os/exec's own goroutines, as with os/exec).
//
// Like os/exec, an Stdin, Stdout or Stderr that is not an *os.File is
// copied by a goroutine of os/exec, not by a task: such a writer must be
// safe to use from another goroutine while tasks run.
package hubexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// Cmd is an external command being prepared or run on a hub. Set its
// fields as those of exec.Cmd (it embeds one); call its methods, not the
// embedded Cmd's Wait, Run, Output or pipe methods, which would block the
// hub.
type Cmd struct {
	*exec.Cmd

	hub         *scheduler.Hub
	childFiles  []*os.File  // closed after Start
	parentPipes []io.Closer // closed after Wait
	pidfd       int         // -1 if none
	reapOnce    sync.Once
	done        scheduler.Event // set when the child has been reaped
	waitErr     error           // written before done is set
	waited      atomic.Bool     // a Wait has returned the child's status
}

// Command returns a Cmd that runs name with args on hub h, as
// exec.Command does (including its LookPath, whose error is in Cmd.Err).
func Command(h *scheduler.Hub, name string, arg ...string) *Cmd {
	return &Cmd{Cmd: exec.Command(name, arg...), hub: h, pidfd: -1}
}

// CommandContext is Command with a context: when ctx is done before the
// command completes, the child is killed (Cmd.Cancel, as with
// exec.CommandContext) and Wait then reports how it ended.
func CommandContext(ctx context.Context, h *scheduler.Hub, name string, arg ...string) *Cmd {
	return &Cmd{Cmd: exec.CommandContext(ctx, name, arg...), hub: h, pidfd: -1}
}

// StdinPipe returns a hub file connected to the command's standard input,
// as exec.Cmd.StdinPipe: Wait closes it after the command exits, and
// closing it sooner (which may be needed for the command to exit) is
// allowed; a second Close returns the first one's result.
func (c *Cmd) StdinPipe() (io.WriteCloser, error) {
	if c.Stdin != nil {
		return nil, errors.New("exec: Stdin already set")
	}
	if c.Process != nil {
		return nil, errors.New("exec: StdinPipe after process started")
	}
	child, parent, err := c.pipe(true)
	if err != nil {
		return nil, fmt.Errorf("hubexec: StdinPipe: %w", err)
	}
	c.Stdin = child
	wc := &closeOnce{File: parent}
	c.parentPipes = append(c.parentPipes, wc)
	return wc, nil
}

// StdoutPipe returns a hub file connected to the command's standard
// output, as exec.Cmd.StdoutPipe: Wait closes it after the command exits,
// so every read must be done before Wait is called (and Run cannot be
// used with it).
func (c *Cmd) StdoutPipe() (io.ReadCloser, error) {
	if c.Stdout != nil {
		return nil, errors.New("exec: Stdout already set")
	}
	if c.Process != nil {
		return nil, errors.New("exec: StdoutPipe after process started")
	}
	child, parent, err := c.pipe(false)
	if err != nil {
		return nil, fmt.Errorf("hubexec: StdoutPipe: %w", err)
	}
	c.Stdout = child
	c.parentPipes = append(c.parentPipes, parent)
	return parent, nil
}

// StderrPipe is StdoutPipe for standard error.
func (c *Cmd) StderrPipe() (io.ReadCloser, error) {
	if c.Stderr != nil {
		return nil, errors.New("exec: Stderr already set")
	}
	if c.Process != nil {
		return nil, errors.New("exec: StderrPipe after process started")
	}
	child, parent, err := c.pipe(false)
	if err != nil {
		return nil, fmt.Errorf("hubexec: StderrPipe: %w", err)
	}
	c.Stderr = child
	c.parentPipes = append(c.parentPipes, parent)
	return parent, nil
}

// pipe makes a pipe whose child end is an ordinary (blocking) *os.File
// and whose parent end is a hub file. The two ends are separate open
// files, so only the parent's is non-blocking.
func (c *Cmd) pipe(childReads bool) (*os.File, *scheduler.File, error) {
	if c.hub == nil {
		return nil, nil, errNoHub
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	child, parent := pw, pr
	if childReads {
		child, parent = pr, pw
	}
	hf, err := c.hub.WrapFile(parent)
	parent.Close()
	if err != nil {
		child.Close()
		return nil, nil, err
	}
	c.childFiles = append(c.childFiles, child)
	return child, hf, nil
}

var errNoHub = errors.New("hubexec: Cmd has no hub (use Command or CommandContext)")

// Start starts the command, as exec.Cmd.Start; it does not wait for it.
// After a successful Start, Wait must be called to release the child.
//
// Starting a process forks and waits for the child to exec, which takes
// milliseconds (more for a large parent): from a task, that runs through
// scheduler.Blocking, off the hub. If the task is cancelled meanwhile,
// Start returns the context's error, a child started anyway is killed and
// reaped, and the Cmd must not be used again.
func (c *Cmd) Start() error {
	if c.hub == nil {
		return errNoHub
	}
	var (
		mu                  sync.Mutex
		finished, abandoned bool
		startErr            error
	)
	err := scheduler.Blocking(context.Background(), func() error {
		err := c.Cmd.Start()
		for _, f := range c.childFiles {
			f.Close()
		}
		c.childFiles = nil
		mu.Lock()
		finished, startErr = true, err
		gone := abandoned
		mu.Unlock()
		if gone {
			if err == nil {
				_ = c.Process.Kill()
				_ = c.Cmd.Wait()
			}
			c.closePipes()
		}
		return err
	})
	mu.Lock()
	if !finished {
		abandoned = true
		mu.Unlock()
		return err
	}
	mu.Unlock()
	if startErr != nil {
		c.closePipes()
		return startErr
	}
	c.pidfd = openPidfd(c.Process.Pid)
	return nil
}

func (c *Cmd) closePipes() {
	for _, p := range c.parentPipes {
		p.Close()
	}
	c.parentPipes = nil
}

// Wait waits for the command to exit and for os/exec's copying of its
// Stdin, Stdout and Stderr to finish, then closes its pipes, and returns
// what exec.Cmd.Wait returns: nil, an *exec.ExitError, or an I/O error.
// It parks the calling task (or goroutine) while the child runs.
//
// A task whose context is cancelled returns from Wait at once with the
// context's error; the child is not killed by that (CommandContext ties a
// context to the child) but is still reaped when it exits, and a later
// Wait returns its status. Wait may not be called again once it has.
func (c *Cmd) Wait() error {
	if c.Process == nil {
		return errors.New("exec: not started")
	}
	if c.waited.Load() {
		return errors.New("exec: Wait was already called")
	}
	c.reapOnce.Do(func() { go c.reap() })
	if err := c.done.Wait(context.Background()); err != nil {
		return err
	}
	if c.waited.Swap(true) {
		return errors.New("exec: Wait was already called")
	}
	return c.waitErr
}

// reap waits for the child to exit — on the hub's loop through its pidfd,
// on the Go runtime's poller through the pidfd where the loop cannot
// watch fds (evio), or in wait4 — and collects its status.
func (c *Cmd) reap() {
	if c.pidfd >= 0 {
		// An error (the hub closed; a pidfd the runtime cannot poll)
		// leaves the waiting to exec below.
		if loop.Supports(c.hub.Loop(), loop.CapWatch) {
			_ = c.hub.WaitRead(context.Background(), c.pidfd, time.Time{})
			unix.Close(c.pidfd)
		} else {
			_ = waitPidfd(c.pidfd) // closes it
		}
		c.pidfd = -1
	}
	// exec's Wait returns at once after the pidfd said the child exited.
	// Without a pidfd (other systems, old kernels) it blocks this
	// goroutine's thread in wait4, never a hub's: waitSlots bounds how
	// many threads that pins.
	err := waitBounded(c.Cmd.Wait)
	c.closePipes()
	c.waitErr = err
	c.done.Set()
}

// Run starts the command and waits for it, as exec.Cmd.Run.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// Output runs the command and returns its standard output, as
// exec.Cmd.Output: when Stderr is nil, an *exec.ExitError carries the
// start and end of what the command wrote to it (ExitError.Stderr).
func (c *Cmd) Output() ([]byte, error) {
	if c.Stdout != nil {
		return nil, errors.New("exec: Stdout already set")
	}
	var stdout bytes.Buffer
	c.Stdout = &stdout
	captureErr := c.Stderr == nil
	if captureErr {
		c.Stderr = &prefixSuffixSaver{N: 32 << 10}
	}
	err := c.Run()
	if err != nil && captureErr {
		if ee, ok := err.(*exec.ExitError); ok {
			ee.Stderr = c.Stderr.(*prefixSuffixSaver).Bytes()
		}
	}
	return stdout.Bytes(), err
}

// CombinedOutput runs the command and returns its standard output and
// standard error together, as exec.Cmd.CombinedOutput.
func (c *Cmd) CombinedOutput() ([]byte, error) {
	if c.Stdout != nil {
		return nil, errors.New("exec: Stdout already set")
	}
	if c.Stderr != nil {
		return nil, errors.New("exec: Stderr already set")
	}
	var b bytes.Buffer
	c.Stdout = &b
	c.Stderr = &b
	err := c.Run()
	return b.Bytes(), err
}

// closeOnce is the stdin pipe: closed by the user, by Wait, or both.
type closeOnce struct {
	*scheduler.File
	once sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.File.Close() })
	return c.err
}

// prefixSuffixSaver keeps the first and last N bytes written to it, as
// os/exec's does for ExitError.Stderr.
type prefixSuffixSaver struct {
	N         int
	prefix    []byte
	suffix    []byte // a ring once len(suffix) == N
	suffixOff int
	skipped   int64
}

func (w *prefixSuffixSaver) Write(p []byte) (int, error) {
	lenp := len(p)
	p = w.fill(&w.prefix, p)
	if over := len(p) - w.N; over > 0 {
		p = p[over:]
		w.skipped += int64(over)
	}
	p = w.fill(&w.suffix, p)
	for len(p) > 0 {
		n := copy(w.suffix[w.suffixOff:], p)
		p = p[n:]
		w.skipped += int64(n)
		w.suffixOff += n
		if w.suffixOff == w.N {
			w.suffixOff = 0
		}
	}
	return lenp, nil
}

func (w *prefixSuffixSaver) fill(dst *[]byte, p []byte) []byte {
	if remain := w.N - len(*dst); remain > 0 {
		add := min(len(p), remain)
		*dst = append(*dst, p[:add]...)
		p = p[add:]
	}
	return p
}

func (w *prefixSuffixSaver) Bytes() []byte {
	if w.suffix == nil {
		return w.prefix
	}
	if w.skipped == 0 {
		return append(w.prefix, w.suffix...)
	}
	var buf bytes.Buffer
	buf.Grow(len(w.prefix) + len(w.suffix) + 50)
	buf.Write(w.prefix)
	buf.WriteString("\n... omitting ")
	buf.WriteString(strconv.FormatInt(w.skipped, 10))
	buf.WriteString(" bytes ...\n")
	buf.Write(w.suffix[w.suffixOff:])
	buf.Write(w.suffix[:w.suffixOff])
	return buf.Bytes()
}

// waitSlots bounds the threads pinned in wait4 by children waited for
// without a pidfd, as scheduler.Blocking bounds its threads: the children
// beyond it wait for a slot, not for a thread of their own.
var waitSlots = make(chan struct{}, 64)

func waitBounded(wait func() error) error {
	waitSlots <- struct{}{}
	defer func() { <-waitSlots }()
	return wait()
}
