// Package uring is the evhub loop backend on Linux's io_uring, in pure Go:
// io_uring_setup and io_uring_enter through golang.org/x/sys/unix, the
// submission and completion rings mapped and driven by this package, no
// cgo. Importing it registers the backend as "uring" with loop.Register;
// open a loop with loop.Open("uring") or New.
//
// The backend is compiled only on Linux with the build tag uring (go build
// -tags uring). Elsewhere, and without the tag, the package still builds
// and registers, and New returns an error wrapping errors.ErrUnsupported;
// so does it where io_uring cannot run (an old kernel, a seccomp profile
// that refuses io_uring_setup, the kernel.io_uring_disabled sysctl), naming
// the cause.
package uring

// Name is the backend's registered name.
const Name = "uring"
