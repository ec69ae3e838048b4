package scheduler

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Files on a hub: a pipe end, a tty, a socketpair or character device,
// read and written through the same wait primitive as hub sockets, so that
// a task blocked on one parks instead of blocking its hub. Errors are
// *os.File's on a pipe: *os.PathError with Op "read", "write" or "close"
// and the file's name, wrapping os.ErrClosed, os.ErrDeadlineExceeded or
// the errno; io.EOF bare.

// File is a pollable file on a hub, the counterpart of *os.File for pipes,
// ttys and the like. Read and Write may be called concurrently (each is
// serialised with itself); Close wakes every blocked call. The hub closes
// its files when it closes.
type File struct {
	fd   *netFD
	name string
}

// NewFile returns a hub file for fd, named name (as os.NewFile), and puts
// fd in non-blocking mode (a flag of the open file, so every descriptor
// that shares it sees it). The file owns fd from then on, as with
// os.NewFile: on error fd has been closed. A regular file or directory is
// refused with an error wrapping ErrNotPollable, a backend that cannot
// watch fds (evio) with one wrapping errors.ErrUnsupported.
func (h *Hub) NewFile(fd uintptr, name string) (*File, error) {
	f, err := h.newFile(int(fd), name)
	if err != nil {
		return nil, fmt.Errorf("evhub: NewFile %s: %w", name, err)
	}
	return f, nil
}

func (h *Hub) newFile(fd int, name string) (*File, error) {
	err := h.fileCheck()
	if err == nil {
		err = checkPollable(fd)
	}
	if err == nil {
		if e := unix.SetNonblock(fd, true); e != nil {
			err = os.NewSyscallError("fcntl", e)
		}
	}
	if err != nil {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
		return nil, err
	}
	nfd, err := h.opened(fd, unix.AF_UNSPEC, unix.SOCK_STREAM, "file")
	if err != nil {
		return nil, err
	}
	return &File{fd: nfd, name: name}, nil
}

func (h *Hub) fileCheck() error {
	if h.closed.Load() {
		return ErrHubClosed
	}
	return h.checkWatch()
}

// WrapFile returns a hub file on a duplicate of f's descriptor. f stays
// open and independent (close both), but it shares the open file and so
// its non-blocking flag: a blocking *os.File such as os.Stdin may then see
// EAGAIN from its own reads.
func (h *Hub) WrapFile(f *os.File) (*File, error) {
	if f == nil {
		return nil, fmt.Errorf("evhub: WrapFile(nil): %w", os.ErrInvalid)
	}
	if err := h.fileCheck(); err != nil {
		return nil, fmt.Errorf("evhub: WrapFile %s: %w", f.Name(), err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("evhub: WrapFile %s: %w", f.Name(), err)
	}
	dup := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, fmt.Errorf("evhub: WrapFile %s: %w", f.Name(), err)
	}
	if derr != nil {
		return nil, fmt.Errorf("evhub: WrapFile %s: %w", f.Name(), os.NewSyscallError("fcntl", derr))
	}
	return h.NewFile(uintptr(dup), f.Name())
}

// Pipe returns a connected pair of hub files, as os.Pipe does: reads from
// r return bytes written to w. Their names are "|0" and "|1", as
// os.Pipe's.
func (h *Hub) Pipe() (r, w *File, err error) {
	if err := h.fileCheck(); err != nil {
		return nil, nil, fmt.Errorf("evhub: Pipe: %w", err)
	}
	var p [2]int
	if err := pipe(&p); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	r, err = h.NewFile(uintptr(p[0]), "|0")
	if err != nil {
		unix.Close(p[1])
		return nil, nil, err
	}
	w, err = h.NewFile(uintptr(p[1]), "|1")
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, w, nil
}

// Name returns the name given to NewFile.
func (f *File) Name() string { return f.name }

// Fd returns the file's descriptor, valid until Close. Unlike
// os.File.Fd it leaves the descriptor in non-blocking mode.
func (f *File) Fd() uintptr { return uintptr(f.fd.sysfd()) }

// Read reads up to len(p) bytes, parking the caller until some are
// available; at end of file it returns 0, io.EOF.
func (f *File) Read(p []byte) (int, error) {
	if f == nil {
		return 0, os.ErrInvalid
	}
	n, err := f.fd.Read(p)
	return n, f.wrapErr("read", err)
}

// Write writes all of p, parking the caller while the file is full.
func (f *File) Write(p []byte) (int, error) {
	if f == nil {
		return 0, os.ErrInvalid
	}
	n, err := f.fd.Write(p)
	if err == io.ErrUnexpectedEOF && n < len(p) {
		err = io.ErrShortWrite
		return n, err
	}
	return n, f.wrapErr("write", err)
}

// WriteString is Write of the bytes of s.
func (f *File) WriteString(s string) (int, error) {
	return f.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// Close closes the file, waking every call blocked on it with
// os.ErrClosed. A second Close returns an *os.PathError wrapping
// os.ErrClosed.
func (f *File) Close() error {
	if f == nil {
		return os.ErrInvalid
	}
	if err := f.fd.Close(); err != nil {
		return f.wrapErr("close", err)
	}
	return nil
}

// SetDeadline sets the read and write deadlines, as os.File.SetDeadline:
// a call blocked past it returns an error wrapping os.ErrDeadlineExceeded.
func (f *File) SetDeadline(t time.Time) error { return f.setDeadline(t, true, true) }

// SetReadDeadline sets the read deadline.
func (f *File) SetReadDeadline(t time.Time) error { return f.setDeadline(t, true, false) }

// SetWriteDeadline sets the write deadline.
func (f *File) SetWriteDeadline(t time.Time) error { return f.setDeadline(t, false, true) }

func (f *File) setDeadline(t time.Time, read, write bool) error {
	if f == nil {
		return os.ErrInvalid
	}
	if err := f.fd.setDeadline(t, read, write); err != nil {
		if err == errClosing {
			return errFileClosing()
		}
		return err
	}
	return nil
}

// wrapErr words an error as *os.File does.
func (f *File) wrapErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if err == errClosing {
		err = os.ErrClosed
	} else if se, ok := err.(*os.SyscallError); ok {
		err = se.Err
	}
	return &os.PathError{Op: op, Path: f.name, Err: err}
}

// errFileClosing is the very error os.File's deadline setters return on a
// closed file (internal/poll's ErrFileClosing, "use of closed file").
var errFileClosing = sync.OnceValue(func() error {
	r, w, err := os.Pipe()
	if err != nil {
		return os.ErrClosed
	}
	w.Close()
	r.Close()
	if err := r.SetDeadline(time.Time{}); err != nil {
		return err
	}
	return os.ErrClosed
})

var _ = net.ErrClosed // errClosing is net.ErrClosed (hub.go)
