//go:build uring && cgo

package bench

/*
#cgo LDFLAGS: -luring
#include <liburing.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

// A plain liburing echo server, the way one writes it in C for io_uring's
// completion model: one ring owned by one thread (SINGLE_ISSUER and
// DEFER_TASKRUN), a multishot accept, per connection one multishot receive
// into a shared provided-buffer ring (no buffer is held while a connection
// is idle) and one send at a time, the received buffers queued in order
// until sent and then given back to the buffer ring.

#define URB_BGID   0
#define URB_NBUF   512             // power of two; 2 MiB, touched in turn (the ring is FIFO)
#define URB_BUFSZ  4096
#define URB_ACCEPT 1
#define URB_RECV   2
#define URB_SEND   3

typedef struct urb_conn {
	int fd;
	int32_t head, tail;  // queue of buffer ids to send, linked through urb_next; -1 if empty
	uint32_t off;        // bytes of the head buffer already sent
	uint8_t sending, recv_live, starved, dead;
} urb_conn;

static struct io_uring urb_ring;
static struct io_uring_buf_ring *urb_br;
static char *urb_bufs;
static int32_t urb_next[URB_NBUF];
static uint32_t urb_len[URB_NBUF];
static urb_conn **urb_starved; // conns whose receive ran out of buffers
static int urb_nstarved, urb_capstarved;

static uint64_t urb_data(urb_conn *c, int tag) { return (uint64_t)(uintptr_t)c | (uint64_t)tag; }

static struct io_uring_sqe *urb_sqe(void) {
	struct io_uring_sqe *s = io_uring_get_sqe(&urb_ring);
	while (!s) {
		io_uring_submit(&urb_ring);
		s = io_uring_get_sqe(&urb_ring);
	}
	return s;
}

static void urb_recv(urb_conn *c) {
	struct io_uring_sqe *s = urb_sqe();
	io_uring_prep_recv_multishot(s, c->fd, NULL, 0, 0);
	s->flags |= IOSQE_BUFFER_SELECT;
	s->buf_group = URB_BGID;
	io_uring_sqe_set_data64(s, urb_data(c, URB_RECV));
	c->recv_live = 1;
}

static void urb_send(urb_conn *c) {
	int32_t b = c->head;
	struct io_uring_sqe *s = urb_sqe();
	io_uring_prep_send(s, c->fd, urb_bufs + (size_t)b * URB_BUFSZ + c->off, urb_len[b] - c->off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(s, urb_data(c, URB_SEND));
	c->sending = 1;
}

static void urb_give_back(int32_t b) {
	io_uring_buf_ring_add(urb_br, urb_bufs + (size_t)b * URB_BUFSZ, URB_BUFSZ, (unsigned short)b,
		io_uring_buf_ring_mask(URB_NBUF), 0);
	io_uring_buf_ring_advance(urb_br, 1);
	if (urb_nstarved > 0) {
		urb_conn *c = urb_starved[--urb_nstarved];
		c->starved = 0;
		if (!c->dead) urb_recv(c);
	}
}

static void urb_maybe_free(urb_conn *c) {
	if (c->dead && !c->sending && !c->recv_live && !c->starved) {
		close(c->fd);
		free(c);
	}
}

static void urb_on_recv(urb_conn *c, int res, unsigned flags) {
	if (!(flags & IORING_CQE_F_MORE)) c->recv_live = 0;
	if (res > 0) {
		int32_t b = (int32_t)(flags >> IORING_CQE_BUFFER_SHIFT);
		urb_len[b] = (uint32_t)res;
		urb_next[b] = -1;
		if (c->tail >= 0) urb_next[c->tail] = b; else c->head = b;
		c->tail = b;
		if (!c->sending && !c->dead) urb_send(c);
		if (!c->recv_live && !c->dead) urb_recv(c); // ended by the kernel (CQ overflow)
		return;
	}
	if (res == -ENOBUFS && !c->dead) {
		if (urb_nstarved == urb_capstarved) {
			int n = urb_capstarved ? 2 * urb_capstarved : 64;
			urb_conn **s = realloc(urb_starved, (size_t)n * sizeof *s);
			if (!s) { c->dead = 1; urb_maybe_free(c); return; }
			urb_starved = s;
			urb_capstarved = n;
		}
		c->starved = 1;
		urb_starved[urb_nstarved++] = c;
		return;
	}
	if (!c->recv_live) { // EOF or an error
		c->dead = 1;
		urb_maybe_free(c);
	}
}

static void urb_on_send(urb_conn *c, int res) {
	c->sending = 0;
	if (res <= 0) c->dead = 1;
	if (c->dead) {
		while (c->head >= 0) {
			int32_t b = c->head;
			c->head = urb_next[b];
			urb_give_back(b);
		}
		c->tail = -1;
		if (c->recv_live) {
			struct io_uring_sqe *s = urb_sqe();
			io_uring_prep_cancel64(s, urb_data(c, URB_RECV), 0);
			io_uring_sqe_set_data64(s, 0);
		}
		urb_maybe_free(c);
		return;
	}
	c->off += (uint32_t)res;
	int32_t b = c->head;
	if (c->off < urb_len[b]) {
		urb_send(c);
		return;
	}
	c->off = 0;
	c->head = urb_next[b];
	if (c->head < 0) c->tail = -1;
	urb_give_back(b);
	if (c->head >= 0) urb_send(c);
}

static void urb_accept(int lfd) {
	struct io_uring_sqe *s = urb_sqe();
	io_uring_prep_multishot_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(s, URB_ACCEPT);
}

static void urb_on_accept(int lfd, int res, unsigned flags) {
	if (!(flags & IORING_CQE_F_MORE)) urb_accept(lfd); // EMFILE ends it: arm again
	if (res < 0) return;
	int one = 1;
	setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	urb_conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(res);
		return;
	}
	c->fd = res;
	c->head = c->tail = -1;
	urb_recv(c);
}

// urb_run serves the listening socket lfd until the process exits. The
// calling thread is the ring's only issuer: a cgo call keeps its goroutine
// on one thread until it returns, and this one never does. Returns a
// negative errno if the ring cannot be made.
static int urb_run(int lfd) {
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = 16384;
	int ret = io_uring_queue_init_params(1024, &urb_ring, &p);
	if (ret < 0) return ret;
	if (posix_memalign((void **)&urb_br, 4096, URB_NBUF * sizeof(struct io_uring_buf))) return -ENOMEM;
	urb_bufs = malloc((size_t)URB_NBUF * URB_BUFSZ);
	if (!urb_bufs) return -ENOMEM;
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (uint64_t)(uintptr_t)urb_br;
	reg.ring_entries = URB_NBUF;
	reg.bgid = URB_BGID;
	ret = io_uring_register_buf_ring(&urb_ring, &reg, 0);
	if (ret < 0) return ret;
	io_uring_buf_ring_init(urb_br);
	for (int i = 0; i < URB_NBUF; i++) {
		io_uring_buf_ring_add(urb_br, urb_bufs + (size_t)i * URB_BUFSZ, URB_BUFSZ, (unsigned short)i,
			io_uring_buf_ring_mask(URB_NBUF), i);
	}
	io_uring_buf_ring_advance(urb_br, URB_NBUF);
	urb_accept(lfd);
	for (;;) {
		ret = io_uring_submit_and_wait(&urb_ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN) return ret;
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&urb_ring, head, cqe) {
			n++;
			uint64_t d = cqe->user_data;
			urb_conn *c = (urb_conn *)(uintptr_t)(d & ~(uint64_t)7);
			switch (d & 7) {
			case URB_ACCEPT: urb_on_accept(lfd, cqe->res, cqe->flags); break;
			case URB_RECV: urb_on_recv(c, cqe->res, cqe->flags); break;
			case URB_SEND: urb_on_send(c, cqe->res); break;
			}
		}
		io_uring_cq_advance(&urb_ring, n);
	}
}
*/
import "C"

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

func startLiburing(proto Protocol, addr string) (net.Addr, error) {
	if proto != Echo {
		return nil, fmt.Errorf("liburing: protocol %d not supported", proto)
	}
	fd, err := rawListen(addr)
	if err != nil {
		return nil, err
	}
	bound, err := sockAddr(fd)
	if err == nil {
		// io_uring waits for a blocking socket itself; on a non-blocking
		// one an accept with nothing pending completes with EAGAIN.
		err = unix.SetNonblock(fd, false)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("liburing: %w", err)
	}
	go func() {
		if ret := C.urb_run(C.int(fd)); ret < 0 {
			fatal(fmt.Errorf("liburing: %w", syscall.Errno(-ret)))
		}
		fatal(fmt.Errorf("liburing: loop returned"))
	}()
	return bound, nil
}

func init() {
	Register(Server{
		Name:      "liburing",
		Kind:      Baseline,
		Backend:   "uring",
		Protocols: Echo,
		Doc:       "io_uring echo written in C on liburing (cgo): multishot accept, multishot receive into a provided-buffer ring, one send at a time per connection, SINGLE_ISSUER|DEFER_TASKRUN",
		Start:     startLiburing,
	})
}
