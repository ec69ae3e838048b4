//go:build linux

package evio

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestDropCopied: while a thread holds a private copy of the descriptor
// table, a socket the process closes must still reach its peer at once
// (dropAllBut dropped the copy's reference), what the caller keeps stays
// open in the copy, and the thread, a Go thread that goes on running Go
// code (a timer here, which may wake the runtime's poller), ends cleanly.
func TestDropCopied(t *testing.T) {
	prepareCopies()
	require.NotNil(t, copyKeep.fds, "the descriptors to keep were not listed")
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	kept, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer func() { _, _, _ = unix.Close(sp[1]), unix.Close(kept[0]), unix.Close(kept[1]) }()

	var want unix.Stat_t
	require.NoError(t, unix.Fstat(kept[0], &want))
	ready, release := make(chan bool, 1), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- inPrivateTable([]int{kept[0]}, func(own []int) error {
			var st unix.Stat_t
			ready <- len(own) == 1 && unix.Fstat(own[0], &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino
			<-release // the private table lives on meanwhile
			time.Sleep(time.Millisecond)
			return nil
		})
	}()
	defer func() {
		close(release)
		assert.NoError(t, <-done)
	}()
	select {
	case ok := <-ready:
		assert.True(t, ok, "the descriptor asked for was closed in the private table")
	case err := <-done:
		t.Fatalf("no private descriptor table: %v", err)
	}

	require.NoError(t, unix.Close(sp[0]))
	pfd := []unix.PollFd{{Fd: int32(sp[1]), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 2000)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the peer of a closed socket saw nothing while a private table lived")
	m, err := unix.Read(sp[1], make([]byte, 1))
	require.NoError(t, err)
	assert.Equal(t, 0, m, "the peer should read EOF")
}

// TestCopiesSkipReusedNumbers: a descriptor listed as kept (a pipe here)
// that was closed, its number then taken by a socket, must not keep that
// socket open in a private copy: the socket's peer sees its close at once.
func TestCopiesSkipReusedNumbers(t *testing.T) {
	prepareCopies()
	require.NotNil(t, copyKeep.fds, "the descriptors to keep were not listed")
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[1])
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(p[0], &st))
	saved := copyKeep.fds
	copyKeep.fds = append(slices.Clone(saved), keptFD{p[0], st.Dev, st.Ino})
	defer func() { copyKeep.fds = saved }()
	require.Contains(t, stillKept(nil), p[0])

	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(sp[1])
	require.NoError(t, unix.Close(p[0]))
	taken, err := unix.FcntlInt(uintptr(sp[0]), unix.F_DUPFD_CLOEXEC, p[0])
	require.NoError(t, err)
	require.Equal(t, p[0], taken, "the closed number was not free")
	require.NoError(t, unix.Close(sp[0]))

	ready, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- inPrivateTable(nil, func([]int) error {
			close(ready)
			<-release
			return nil
		})
	}()
	defer func() {
		close(release)
		assert.NoError(t, <-done)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("no private descriptor table: %v", err)
	}
	require.NoError(t, unix.Close(taken))
	pfd := []unix.PollFd{{Fd: int32(sp[1]), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 2000)
	require.NoError(t, err)
	require.Equal(t, 1, n, "a private copy kept a socket that took a kept number")
}

// TestPrivateTableCopiesNoSocket: a private table holds the files asked
// for (a pipe numbered above a socket of the process here), at numbers of
// its own, and no socket of the process.
func TestPrivateTableCopiesNoSocket(t *testing.T) {
	prepareCopies()
	if !copyKeep.fetch {
		t.Skip("pidfd_getfd is not available: private tables are copies")
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer func() { _, _ = unix.Close(sp[0]), unix.Close(sp[1]) }()
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer func() { _, _ = unix.Close(p[0]), unix.Close(p[1]) }()
	high, err := unix.FcntlInt(uintptr(p[0]), unix.F_DUPFD_CLOEXEC, sp[1]+100)
	require.NoError(t, err)
	defer unix.Close(high)
	pipe, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(high))
	require.NoError(t, err)

	var targets, own []string
	err = inPrivateTable([]int{high}, func(fds []int) error {
		for _, fd := range fds {
			l, err := os.Readlink("/proc/thread-self/fd/" + strconv.Itoa(fd))
			if err != nil {
				return err
			}
			own = append(own, l)
		}
		ents, err := os.ReadDir("/proc/thread-self/fd")
		if err != nil {
			return err
		}
		for _, e := range ents {
			l, _ := os.Readlink("/proc/thread-self/fd/" + e.Name())
			targets = append(targets, l)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{pipe}, own, "the file asked for is not in the private table")
	for _, l := range targets {
		assert.False(t, strings.HasPrefix(l, "socket:"), "the private table holds %s", l)
	}
}

// TestDeleteStale builds evio's situation: a socket registered in an
// epoll instance under a number that was then closed and taken by another
// file while a duplicate kept the socket open. deleteStale must delete the
// stale registration and leave the new owner of the number alone.
func TestDeleteStale(t *testing.T) {
	prepareCopies()
	for range 3 {
		func() {
			ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
			require.NoError(t, err)
			defer unix.Close(ep)
			sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			require.NoError(t, err)
			defer func() { _, _ = unix.Close(sp[0]), unix.Close(sp[1]) }()
			n, err := unix.Dup(sp[0])
			require.NoError(t, err)
			require.NoError(t, unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, n, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(n)}))
			var p [2]int
			require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
			defer func() { _, _ = unix.Close(p[0]), unix.Close(p[1]) }()
			require.NoError(t, unix.Close(n))
			taken, err := unix.FcntlInt(uintptr(p[0]), unix.F_DUPFD_CLOEXEC, n)
			require.NoError(t, err)
			require.Equal(t, n, taken, "the closed number was not free")
			defer unix.Close(taken)
			var before unix.Stat_t
			require.NoError(t, unix.Fstat(taken, &before))
			require.Contains(t, EpollTargets(t, ep), n)

			require.NoError(t, deleteStale(ep, n, sp[0]))
			assert.NotContains(t, EpollTargets(t, ep), n, "the stale registration is still there")
			var after unix.Stat_t
			require.NoError(t, unix.Fstat(taken, &after))
			assert.Equal(t, before.Ino, after.Ino, "the number's new owner was replaced")
		}()
	}
}

// TestCopiesKeepOnlyTheRuntimePoller: of the process's epoll instances
// and eventfds, copies keep only the runtime's poller and the eventfd
// that wakes it, not another loop's (every descriptor numbered below the
// highest kept is copied into a private table, sockets too).
func TestCopiesKeepOnlyTheRuntimePoller(t *testing.T) {
	other, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	require.NoError(t, err)
	defer unix.Close(other)
	otherWake, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	require.NoError(t, err)
	defer unix.Close(otherWake)
	require.NoError(t, unix.EpollCtl(other, unix.EPOLL_CTL_ADD, otherWake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(otherWake)}))
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer func() { _, _ = r.Close(), w.Close() }()
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(int(r.Fd()), &st))

	kept := listKept(int(r.Fd()), st.Ino)
	var fds []int
	for _, k := range kept {
		fds = append(fds, k.fd)
	}
	require.Len(t, fds, 5, "standard I/O and the runtime's two: %v", fds)
	assert.Equal(t, []int{0, 1, 2}, fds[:3])
	assert.NotContains(t, fds, other)
	assert.NotContains(t, fds, otherWake)
	var ep, wake int
	for _, fd := range fds[3:] {
		switch l, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); l {
		case "anon_inode:[eventpoll]":
			ep = fd
		case "anon_inode:[eventfd]":
			wake = fd
		}
	}
	require.NotZero(t, ep, "no epoll instance kept")
	require.NotZero(t, wake, "no eventfd kept")
	targets, err := epollTargets(ep)
	require.NoError(t, err)
	assert.Contains(t, targets, epollTarget{int(r.Fd()), st.Ino}, "the kept instance does not watch the runtime's files")
	var watched []int
	for _, tg := range targets {
		watched = append(watched, tg.fd)
	}
	assert.Contains(t, watched, wake, "the kept eventfd does not wake the kept instance")

	// No instance watches the file named: every epoll instance and
	// eventfd is kept, the runtime's among them.
	var all []int
	for _, k := range listKept(-1, 0) {
		all = append(all, k.fd)
	}
	assert.Subset(t, all, []int{0, 1, 2, ep, wake, other, otherWake})
}

// TestFillHoles: a free number below the highest kept descriptor gets a
// placeholder that copies keep, so that no socket can take it later and
// be copied with the kept ones; numbers in use are left alone.
func TestFillHoles(t *testing.T) {
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[1])
	inUse, err := unix.Open("/dev/zero", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(inUse)
	top, err := unix.FcntlInt(uintptr(p[1]), unix.F_DUPFD_CLOEXEC, max(p[1], inUse)+1)
	require.NoError(t, err)
	defer unix.Close(top)
	hole := p[0]
	require.NoError(t, unix.Close(hole))

	var kept []keptFD
	for _, fd := range []int{0, 1, 2, top} {
		var st unix.Stat_t
		require.NoError(t, unix.Fstat(fd, &st))
		kept = append(kept, keptFD{fd, st.Dev, st.Ino})
	}
	kept = fillHoles(kept)
	var fds []int
	for _, k := range kept {
		fds = append(fds, k.fd)
		if k.fd != 0 && k.fd != 1 && k.fd != 2 && k.fd != top {
			defer unix.Close(k.fd)
		}
	}
	assert.True(t, slices.IsSorted(fds), "%v", fds)
	require.Contains(t, fds, hole, "the free number below the highest kept has no placeholder")
	l, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(hole))
	require.NoError(t, err)
	assert.Equal(t, "/dev/null", l)
	assert.NotContains(t, fds, inUse, "a number in use was taken")
	l, err = os.Readlink("/proc/self/fd/" + strconv.Itoa(inUse))
	require.NoError(t, err)
	assert.Equal(t, "/dev/zero", l, "a number in use was replaced")
}
