//go:build cev

package bench

/*
#cgo LDFLAGS: -lev
#define _GNU_SOURCE
#include <ev.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

// A plain libev echo server, the way one writes it in C: one loop, one
// ev_io per connection, one shared read buffer, and per connection only the
// bytes the kernel did not take yet.
typedef struct evb_conn {
	ev_io io;      // first member: the watcher pointer is the conn pointer
	char *pend;    // unsent bytes, or NULL
	size_t plen, poff;
} evb_conn;

static char evb_buf[65536];

static void evb_close(struct ev_loop *l, evb_conn *c) {
	ev_io_stop(l, &c->io);
	close(c->io.fd);
	free(c->pend);
	free(c);
}

static void evb_rearm(struct ev_loop *l, evb_conn *c, int ev) {
	ev_io_stop(l, &c->io);
	ev_io_set(&c->io, c->io.fd, ev);
	ev_io_start(l, &c->io);
}

static void evb_conn_cb(struct ev_loop *l, ev_io *w, int revents) {
	evb_conn *c = (evb_conn *)w;
	if (c->pend) {
		ssize_t n = write(w->fd, c->pend + c->poff, c->plen - c->poff);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) return;
			evb_close(l, c);
			return;
		}
		c->poff += (size_t)n;
		if (c->poff == c->plen) {
			free(c->pend);
			c->pend = NULL;
			c->plen = c->poff = 0;
			evb_rearm(l, c, EV_READ);
		}
		return;
	}
	ssize_t n;
	do {
		n = read(w->fd, evb_buf, sizeof evb_buf);
	} while (n < 0 && errno == EINTR);
	if (n == 0 || (n < 0 && errno != EAGAIN)) {
		evb_close(l, c);
		return;
	}
	if (n < 0) return;
	ssize_t off = 0;
	while (off < n) {
		ssize_t m = write(w->fd, evb_buf + off, (size_t)(n - off));
		if (m < 0) {
			if (errno == EINTR) continue;
			if (errno == EAGAIN) break;
			evb_close(l, c);
			return;
		}
		off += m;
	}
	if (off < n) {
		// Backpressure: stop reading until the rest is written.
		c->plen = (size_t)(n - off);
		c->poff = 0;
		c->pend = malloc(c->plen);
		if (!c->pend) {
			evb_close(l, c);
			return;
		}
		memcpy(c->pend, evb_buf + off, c->plen);
		evb_rearm(l, c, EV_WRITE);
	}
}

static void evb_accept_cb(struct ev_loop *l, ev_io *w, int revents) {
	for (;;) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR) continue;
			return; // EAGAIN, or EMFILE: retried on the next iteration
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		evb_conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		ev_io_init(&c->io, evb_conn_cb, fd, EV_READ);
		ev_io_start(l, &c->io);
	}
}

// evb_run serves the non-blocking listening socket lfd until the process
// exits. EVFLAG_NOSIGMASK and no signal watchers: the Go runtime owns
// signals. Returns -1 if the loop cannot be created.
static int evb_run(int lfd) {
	struct ev_loop *l = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!l) return -1;
	static ev_io acc;
	ev_io_init(&acc, evb_accept_cb, lfd, EV_READ);
	ev_io_start(l, &acc);
	ev_run(l, 0);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

func startLibev(proto Protocol, addr string) (net.Addr, error) {
	if proto != Echo {
		return nil, fmt.Errorf("libev: protocol %d not supported", proto)
	}
	fd, err := rawListen(addr)
	if err != nil {
		return nil, err
	}
	bound, err := sockAddr(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("libev: %w", err)
	}
	go func() {
		if C.evb_run(C.int(fd)) != 0 {
			fatal(fmt.Errorf("libev: ev_loop_new failed"))
		}
		fatal(fmt.Errorf("libev: loop returned"))
	}()
	return bound, nil
}

func init() {
	Register(Server{
		Name:      "libev",
		Kind:      Baseline,
		Backend:   "cev",
		Protocols: Echo,
		Doc:       "libev 4 echo written in C (cgo), one ev_loop_new loop",
		Start:     startLibev,
	})
}
