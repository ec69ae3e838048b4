package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd on this platform")
	}
	return len(ents)
}

func TestWaitFD(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			r, w, err := os.Pipe()
			require.NoError(t, err)
			defer r.Close()
			defer w.Close()
			rfd, wfd := int(r.Fd()), int(w.Fd())

			// Writable at once; readable once written to.
			got, err := h.WaitFD(context.Background(), wfd, loop.Readable|loop.Writable, time.Time{})
			require.NoError(t, err)
			require.Equal(t, loop.Writable, got)
			go func() {
				time.Sleep(10 * time.Millisecond)
				_, _ = unix.Write(wfd, []byte("x"))
			}()
			require.NoError(t, h.WaitRead(context.Background(), rfd, time.Now().Add(10*time.Second)))
			var b [1]byte
			_, err = unix.Read(rfd, b[:])
			require.NoError(t, err)

			// Deadline, context, from a task.
			err = h.WaitRead(context.Background(), rfd, time.Now().Add(20*time.Millisecond))
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			require.ErrorIs(t, h.WaitRead(context.Background(), rfd, time.Now().Add(-time.Second)), os.ErrDeadlineExceeded)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, h.WaitRead(ctx, rfd, time.Time{}), context.DeadlineExceeded)
			task := goTask(t, h, func(ctx context.Context) error {
				go func() {
					time.Sleep(10 * time.Millisecond)
					_, _ = unix.Write(wfd, []byte("y"))
				}()
				return h.WaitRead(ctx, rfd, time.Now().Add(10*time.Second))
			})
			require.NoError(t, joinTask(t, task))
			_, _ = unix.Read(rfd, b[:])

			// Bad input.
			_, err = h.WaitFD(context.Background(), rfd, 0, time.Time{})
			require.ErrorIs(t, err, os.ErrInvalid)
			require.ErrorIs(t, h.WaitRead(context.Background(), 1<<20, time.Time{}), syscall.EBADF)
			require.ErrorIs(t, h.WaitRead(context.Background(), -1, time.Time{}), syscall.EBADF)
			reg, err := os.Create(filepath.Join(t.TempDir(), "f"))
			require.NoError(t, err)
			defer reg.Close()
			require.ErrorIs(t, h.WaitRead(context.Background(), int(reg.Fd()), time.Time{}), scheduler.ErrNotPollable)
		})
	}
}

func TestWaitFDHubClose(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			l, err := loop.Open(name)
			require.NoError(t, err)
			h, err := scheduler.New(l)
			require.NoError(t, err)
			r, w, err := os.Pipe()
			require.NoError(t, err)
			defer r.Close()
			defer w.Close()
			p := [2]int{int(r.Fd()), int(w.Fd())}
			errc := make(chan error, 1)
			go func() { errc <- h.WaitRead(context.Background(), p[0], time.Time{}) }()
			time.Sleep(20 * time.Millisecond)
			require.NoError(t, h.Close())
			select {
			case err := <-errc:
				require.ErrorIs(t, err, net.ErrClosed)
			case <-time.After(10 * time.Second):
				t.Fatal("a wait was not ended by the hub's Close")
			}
			require.ErrorIs(t, h.WaitRead(context.Background(), p[0], time.Time{}), net.ErrClosed)
		})
	}
}

// Hub files behave as *os.File does on a pipe, error for error.
func TestFileLikeOSPipe(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			before := openFDs(t)
			hr, hw, err := h.Pipe()
			require.NoError(t, err)
			or, ow, err := os.Pipe()
			require.NoError(t, err)
			type file interface {
				io.ReadWriteCloser
				SetReadDeadline(time.Time) error
				SetDeadline(time.Time) error
				Name() string
			}
			pairs := [][2]file{{hr, hw}, {or, ow}}
			var outcomes [2][]string
			for i, p := range pairs {
				r, w := p[0], p[1]
				rec := func(what string, v ...any) { outcomes[i] = append(outcomes[i], what+": "+fmt.Sprint(v...)) }
				n, err := w.Write([]byte("hello"))
				rec("write", n, err)
				buf := make([]byte, 16)
				n, err = r.Read(buf)
				rec("read", n, string(buf[:n]), err)
				n, err = r.Read(nil)
				rec("read0", n, err)
				require.NoError(t, r.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
				_, err = r.Read(buf)
				rec("deadline", err, errors.Is(err, os.ErrDeadlineExceeded))
				var pe *os.PathError
				rec("deadline is PathError", errors.As(err, &pe))
				require.NoError(t, r.SetReadDeadline(time.Time{}))
				rec("close w", w.Close())
				_, err = r.Read(buf)
				rec("eof", err)
				rec("close w again", w.Close(), errors.Is(w.Close(), os.ErrClosed))
				_, err = w.Write([]byte("x"))
				rec("write closed", err, errors.Is(err, os.ErrClosed))
				rec("setdeadline closed", w.SetDeadline(time.Now()))
				rec("close r", r.Close())
				_, err = r.Read(buf)
				rec("read closed", err, errors.Is(err, os.ErrClosed))
			}
			require.Equal(t, outcomes[1], outcomes[0])

			// EPIPE, and Close waking a blocked reader.
			hr, hw, err = h.Pipe()
			require.NoError(t, err)
			require.NoError(t, hr.Close())
			_, err = hw.Write([]byte("x"))
			require.ErrorIs(t, err, syscall.EPIPE)
			require.EqualError(t, err, "write |1: broken pipe")
			require.NoError(t, hw.Close())

			hr, hw, err = h.Pipe()
			require.NoError(t, err)
			errc := make(chan error, 1)
			go func() {
				_, err := hr.Read(make([]byte, 1))
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond)
			require.NoError(t, hr.Close())
			select {
			case err := <-errc:
				require.ErrorIs(t, err, os.ErrClosed)
				require.EqualError(t, err, "read |0: file already closed")
			case <-time.After(10 * time.Second):
				t.Fatal("Close did not wake a blocked Read")
			}
			require.NoError(t, hw.Close())
			require.Equal(t, before, openFDs(t), "no fd left open")
		})
	}
}

func TestFileFromTasks(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			r, w, err := h.Pipe()
			require.NoError(t, err)
			defer r.Close()
			defer w.Close()
			const n = 1 << 20 // more than a pipe holds: both sides park
			reader := goTask(t, h, func(ctx context.Context) error {
				got, err := io.Copy(io.Discard, io.LimitReader(r, n))
				if err != nil {
					return err
				}
				if got != n {
					return fmt.Errorf("read %d bytes", got)
				}
				return nil
			})
			writer := goTask(t, h, func(ctx context.Context) error {
				_, err := w.Write(make([]byte, n))
				return err
			})
			require.NoError(t, joinTask(t, writer))
			require.NoError(t, joinTask(t, reader))

			// A task blocked in a pipe read is cancelled.
			entered := make(chan struct{})
			task := goTask(t, h, func(ctx context.Context) error {
				close(entered)
				_, err := r.Read(make([]byte, 1))
				return err
			})
			<-entered
			time.Sleep(10 * time.Millisecond)
			task.Cancel()
			require.ErrorIs(t, joinTask(t, task), context.Canceled)
		})
	}
}

func TestFileBadInput(t *testing.T) {
	h := openHub(t, "netpoll")
	reg, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	defer reg.Close()
	_, err = h.WrapFile(reg)
	require.ErrorIs(t, err, scheduler.ErrNotPollable)
	_, err = h.NewFile(1<<20, "nope")
	require.ErrorIs(t, err, syscall.EBADF)
	_, err = h.WrapFile(nil)
	require.ErrorIs(t, err, os.ErrInvalid)
	var nilFile *scheduler.File
	_, err = nilFile.Read(nil)
	assert.ErrorIs(t, err, os.ErrInvalid)

	// WrapFile leaves the *os.File open and independent.
	or, ow, err := os.Pipe()
	require.NoError(t, err)
	defer or.Close()
	defer ow.Close()
	hr, err := h.WrapFile(or)
	require.NoError(t, err)
	_, err = ow.Write([]byte("z"))
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = hr.Read(b)
	require.NoError(t, err)
	require.Equal(t, "z", string(b))
	require.NoError(t, hr.Close())
}
