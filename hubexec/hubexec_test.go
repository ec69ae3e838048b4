package hubexec_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/evhub/evhub/hubexec"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openHub(t *testing.T, name string) *scheduler.Hub {
	t.Helper()
	l, err := loop.Open(name)
	require.NoError(t, err)
	h, err := scheduler.New(l)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	return h
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd on this platform")
	}
	return len(ents)
}

// requireNoFDLeft fails t unless the process holds no more descriptors
// than before, waiting up to 2 s for closes in flight. Fewer is no leak:
// descriptors of earlier tests (a child's pidfd released by a finalizer)
// may close meanwhile.
func requireNoFDLeft(t *testing.T, before int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); openFDs(t) > before && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	require.LessOrEqual(t, openFDs(t), before, "no fd left open")
}

// inTask runs fn as a task of h and returns its error (bounded).
func inTask(t *testing.T, h *scheduler.Hub, fn func(ctx context.Context) error) error {
	t.Helper()
	task, err := h.Go(fn)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = task.Wait(ctx)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "task did not finish in 30s")
	return err
}

func outcome(out []byte, err error) string {
	s := fmt.Sprintf("out=%q err=%v", out, err)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		s += fmt.Sprintf(" exit=%d stderr=%q", ee.ExitCode(), ee.Stderr)
	}
	return s
}

// Run, Output and CombinedOutput give os/exec's results, error for error,
// from a task.
func TestLikeOSExec(t *testing.T) {
	scripts := []string{
		"echo out; echo err >&2",
		"echo out; echo err >&2; exit 3",
		"kill -9 $$",
		"exec 1>&-; exit 0",
	}
	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			before := openFDs(t)
			for _, sh := range scripts {
				std := exec.Command("sh", "-c", sh)
				wantOut := outcome(std.Output())
				std = exec.Command("sh", "-c", sh)
				wantComb := outcome(std.CombinedOutput())
				wantRun := fmt.Sprint(exec.Command("sh", "-c", sh).Run())
				require.NoError(t, inTask(t, h, func(ctx context.Context) error {
					if got := outcome(hubexec.Command(h, "sh", "-c", sh).Output()); got != wantOut {
						return fmt.Errorf("%q Output: %s, os/exec: %s", sh, got, wantOut)
					}
					if got := outcome(hubexec.Command(h, "sh", "-c", sh).CombinedOutput()); got != wantComb {
						return fmt.Errorf("%q CombinedOutput: %s, os/exec: %s", sh, got, wantComb)
					}
					if got := fmt.Sprint(hubexec.Command(h, "sh", "-c", sh).Run()); got != wantRun {
						return fmt.Errorf("%q Run: %s, os/exec: %s", sh, got, wantRun)
					}
					return nil
				}))
			}
			// Errors before and after.
			c := hubexec.Command(h, "no-such-command-evhub")
			_, stdErr := exec.Command("no-such-command-evhub").Output()
			_, err := c.Output()
			require.ErrorIs(t, err, exec.ErrNotFound)
			require.Equal(t, stdErr.Error(), err.Error())
			c = hubexec.Command(h, "true")
			require.EqualError(t, c.Wait(), "exec: not started")
			c.Stdout = io.Discard
			_, err = c.Output()
			require.EqualError(t, err, "exec: Stdout already set")
			c = hubexec.Command(h, "true")
			require.NoError(t, c.Run())
			require.EqualError(t, c.Wait(), "exec: Wait was already called")
			require.True(t, c.ProcessState.Success())
			requireNoFDLeft(t, before)
		})
	}
}

func TestPipesFromTask(t *testing.T) {
	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			if !loop.Supports(h.Loop(), loop.CapWatch) {
				_, err := hubexec.Command(h, "cat").StdoutPipe()
				require.ErrorIs(t, err, errors.ErrUnsupported)
				return
			}
			before := openFDs(t)
			require.NoError(t, inTask(t, h, func(ctx context.Context) error {
				c := hubexec.Command(h, "cat")
				in, err := c.StdinPipe()
				if err != nil {
					return err
				}
				out, err := c.StdoutPipe()
				if err != nil {
					return err
				}
				if _, err := c.StdoutPipe(); err == nil || err.Error() != "exec: Stdout already set" {
					return fmt.Errorf("second StdoutPipe: %v", err)
				}
				if err := c.Start(); err != nil {
					return err
				}
				if _, err := c.StdinPipe(); err == nil {
					return errors.New("StdinPipe after Start accepted")
				}
				// A writer task feeds cat while this task reads it back,
				// line by line: both park on the hub.
				const lines = 2000
				if _, err := h.Go(func(ctx context.Context) error {
					defer in.Close()
					for i := 0; i < lines; i++ {
						if _, err := fmt.Fprintf(in, "line %d\n", i); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					return err
				}
				sc := bufio.NewScanner(out)
				n := 0
				for sc.Scan() {
					if want := fmt.Sprintf("line %d", n); sc.Text() != want {
						return fmt.Errorf("got %q, want %q", sc.Text(), want)
					}
					n++
				}
				if err := sc.Err(); err != nil {
					return err
				}
				if n != lines {
					return fmt.Errorf("read %d lines", n)
				}
				if err := in.Close(); err != nil {
					return fmt.Errorf("stdin pipe closed twice: %v", err)
				}
				return c.Wait()
			}))
			requireNoFDLeft(t, before)
		})
	}
}

func TestCancel(t *testing.T) {
	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			// CommandContext: cancelling kills the child, and Wait reports
			// it as os/exec does.
			ctx, cancel := context.WithCancel(context.Background())
			require.NoError(t, inTask(t, h, func(_ context.Context) error {
				c := hubexec.CommandContext(ctx, h, "sleep", "30")
				if err := c.Start(); err != nil {
					return err
				}
				time.AfterFunc(20*time.Millisecond, cancel)
				err := c.Wait()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.String() != "signal: killed" {
					return fmt.Errorf("Wait after cancel: %v, want signal: killed", err)
				}
				return nil
			}))
			// A task cancelled in Wait returns at once; the child is still
			// reaped, and a later Wait has its status.
			c := hubexec.Command(h, "sleep", "30")
			started := make(chan struct{})
			task, err := h.Go(func(ctx context.Context) error {
				if err := c.Start(); err != nil {
					return err
				}
				close(started)
				return c.Wait()
			})
			require.NoError(t, err)
			<-started
			time.Sleep(20 * time.Millisecond)
			task.Cancel()
			wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer wcancel()
			require.ErrorIs(t, task.Wait(wctx), context.Canceled)
			require.NoError(t, c.Process.Kill())
			err = c.Wait()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, "signal: killed", ee.String())
		})
	}
}

func TestManyChildren(t *testing.T) {
	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			const n = 50
			g := h.NewGroup(context.Background(), 0)
			for i := 0; i < n; i++ {
				require.NoError(t, g.Go(func(ctx context.Context) error {
					err := hubexec.Command(h, "sh", "-c", fmt.Sprintf("exit %d", i%7)).Run()
					var ee *exec.ExitError
					switch {
					case i%7 == 0 && err == nil:
						return nil
					case errors.As(err, &ee) && ee.ExitCode() == i%7:
						return nil
					}
					return fmt.Errorf("child %d: %v", i, err)
				}))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			require.NoError(t, g.Wait(ctx))
		})
	}
}

func TestNoHub(t *testing.T) {
	c := &hubexec.Cmd{Cmd: exec.Command("true")}
	require.Error(t, c.Start())
	_, err := c.StdoutPipe()
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "no hub"))
}

// StderrPipe, beside StdoutPipe, from a task: each carries its stream,
// Wait returns os/exec's *exec.ExitError, and the misuse errors are
// os/exec's words.
func TestStderrPipeFromTask(t *testing.T) {
	const script = "echo out; echo err >&2; exit 3"
	std := exec.Command("sh", "-c", script)
	_, err := std.StderrPipe()
	require.NoError(t, err)
	_, stdTwice := std.StderrPipe()
	require.Error(t, stdTwice)
	std = exec.Command("true")
	require.NoError(t, std.Start())
	_, stdAfter := std.StderrPipe()
	require.Error(t, stdAfter)
	require.NoError(t, std.Wait())

	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			if !loop.Supports(h.Loop(), loop.CapWatch) {
				_, err := hubexec.Command(h, "sh").StderrPipe()
				require.ErrorIs(t, err, errors.ErrUnsupported)
				return
			}
			before := openFDs(t)
			require.NoError(t, inTask(t, h, func(ctx context.Context) error {
				c := hubexec.Command(h, "sh", "-c", script)
				errPipe, err := c.StderrPipe()
				if err != nil {
					return err
				}
				if _, err := c.StderrPipe(); err == nil || err.Error() != stdTwice.Error() {
					return fmt.Errorf("second StderrPipe: %v, os/exec: %v", err, stdTwice)
				}
				outPipe, err := c.StdoutPipe()
				if err != nil {
					return err
				}
				if err := c.Start(); err != nil {
					return err
				}
				stderr, err := io.ReadAll(errPipe)
				if err != nil {
					return err
				}
				stdout, err := io.ReadAll(outPipe)
				if err != nil {
					return err
				}
				if string(stdout) != "out\n" || string(stderr) != "err\n" {
					return fmt.Errorf("stdout %q, stderr %q", stdout, stderr)
				}
				err = c.Wait()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 3 || err.Error() != "exit status 3" {
					return fmt.Errorf("Wait: %#v, want os/exec's exit status 3", err)
				}
				c = hubexec.Command(h, "true")
				if err := c.Start(); err != nil {
					return err
				}
				if _, err := c.StderrPipe(); err == nil || err.Error() != stdAfter.Error() {
					return fmt.Errorf("StderrPipe after Start: %v, os/exec: %v", err, stdAfter)
				}
				return c.Wait()
			}))
			requireNoFDLeft(t, before)
		})
	}
}

// TestChildrenPinNoThreads: 60 children that run for a while, waited for
// from tasks, hold no thread each on any backend (a pidfd on the hub's
// loop, or on the runtime's poller where the loop cannot watch fds):
// the process's thread count stays within 20 of what it was.
func TestChildrenPinNoThreads(t *testing.T) {
	before, ok := threads()
	if !ok {
		t.Skip("no /proc/self/status Threads on this platform")
	}
	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			const n = 60
			release, err := os.CreateTemp(t.TempDir(), "release")
			require.NoError(t, err)
			require.NoError(t, release.Close())
			require.NoError(t, os.Remove(release.Name()))
			g := h.NewGroup(context.Background(), 0)
			for range n {
				require.NoError(t, g.Go(func(ctx context.Context) error {
					// Each child waits until the file exists (at most 20 s).
					script := fmt.Sprintf("i=0; while [ ! -e %s ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done", release.Name())
					return hubexec.Command(h, "sh", "-c", script).Run()
				}))
			}
			// Wait until every child runs and its Wait is parked.
			peak := 0
			for range 40 {
				time.Sleep(50 * time.Millisecond)
				if th, ok := threads(); ok {
					peak = max(peak, th)
				}
			}
			require.NoError(t, os.WriteFile(release.Name(), nil, 0o600))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			require.NoError(t, g.Wait(ctx))
			t.Logf("threads: %d before, at most %d while %d children ran", before, peak, n)
			assert.LessOrEqual(t, peak, before+20, "threads pinned by children waited for")
		})
	}
}

// threads is the process's thread count.
func threads() (int, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			return n, err == nil
		}
	}
	return 0, false
}
