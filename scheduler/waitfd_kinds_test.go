//go:build linux

package scheduler_test

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestWaitFDKinds: WaitFD on fds of other kinds than a pipe, which the
// hub does not own: an eventfd, an inotify fd and a socket of package net
// (registered with the runtime's own poller too). Each is not ready, then
// is made ready from another goroutine while a task waits.
func TestWaitFDKinds(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			before := openFDs(t)

			efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
			require.NoError(t, err)
			ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
			require.NoError(t, err)
			dir := t.TempDir()
			_, err = unix.InotifyAddWatch(ifd, dir, unix.IN_CREATE)
			require.NoError(t, err)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			defer client.Close()
			server, err := ln.Accept()
			require.NoError(t, err)
			defer server.Close()
			rc, err := server.(*net.TCPConn).SyscallConn()
			require.NoError(t, err)
			var sfd int
			require.NoError(t, rc.Control(func(fd uintptr) { sfd = int(fd) }))

			kinds := []struct {
				what  string
				fd    int
				ready func() error
			}{
				{"eventfd", efd, func() error {
					var b [8]byte
					binary.NativeEndian.PutUint64(b[:], 1)
					_, err := unix.Write(efd, b[:])
					return err
				}},
				{"inotify", ifd, func() error {
					fd, err := unix.Open(dir+"/new", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
					if err == nil {
						err = unix.Close(fd)
					}
					return err
				}},
				{"net socket", sfd, func() error { _, err := client.Write([]byte("x")); return err }},
			}
			for _, k := range kinds {
				require.ErrorIs(t, h.WaitRead(context.Background(), k.fd, time.Now().Add(10*time.Millisecond)), os.ErrDeadlineExceeded,
					"%s: not readable yet", k.what)
				readied := make(chan error, 1)
				task := goTask(t, h, func(ctx context.Context) error {
					go func() {
						time.Sleep(10 * time.Millisecond)
						readied <- k.ready()
					}()
					return h.WaitRead(ctx, k.fd, time.Now().Add(10*time.Second))
				})
				require.NoError(t, joinTask(t, task), "%s: WaitRead from a task", k.what)
				require.NoError(t, <-readied, k.what)
			}
			require.NoError(t, server.Close())
			require.NoError(t, client.Close())
			require.NoError(t, ln.Close())
			require.NoError(t, unix.Close(efd))
			require.NoError(t, unix.Close(ifd))
			require.Equal(t, before, openFDs(t), "no fd left open")
		})
	}
}
