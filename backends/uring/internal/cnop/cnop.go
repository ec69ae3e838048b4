//go:build uring && cgo

// Package cnop is the C side of the uring backend's pure-Go-versus-C
// measurement: the NOP submit-and-reap loop of BenchmarkSubmit written in C
// on liburing, run whole inside one cgo call. _test.go files cannot use
// cgo, hence this package.
package cnop

/*
#cgo LDFLAGS: -luring
#include <liburing.h>
#include <string.h>

// cnop_run submits n NOPs in batches of batch, each batch with one
// io_uring_enter, and reaps them. Returns 0 or a negative errno.
static int cnop_run(long n, int batch) {
	struct io_uring r;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
	p.cq_entries = 4096;
	int ret = io_uring_queue_init_params(256, &r, &p);
	if (ret < 0) return ret;
	for (long i = 0; i < n; i += batch) {
		for (int k = 0; k < batch; k++) {
			io_uring_prep_nop(io_uring_get_sqe(&r));
		}
		ret = io_uring_submit_and_get_events(&r);
		if (ret < 0) break;
		struct io_uring_cqe *c;
		unsigned head, got = 0;
		io_uring_for_each_cqe(&r, head, c) { got++; }
		io_uring_cq_advance(&r, got);
		ret = 0;
	}
	io_uring_queue_exit(&r);
	return ret;
}
*/
import "C"

import "syscall"

// Run submits and reaps n NOP requests in batches of batch (at most 256)
// on a fresh liburing ring, all in C.
func Run(n, batch int) error {
	if ret := C.cnop_run(C.long(n), C.int(batch)); ret < 0 {
		return syscall.Errno(-ret)
	}
	return nil
}
