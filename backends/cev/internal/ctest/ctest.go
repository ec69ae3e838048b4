//go:build cev

// Package ctest is C code for the cev backend's tests: watchers started in
// C on the same libev loop as the Go ones, as a C library sharing the loop
// would. _test.go files cannot use cgo, hence this package.
package ctest

/*
#cgo LDFLAGS: -lev
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>
#include <ev.h>

typedef struct {
	ev_timer timer;
	ev_io io;
	int timer_fired;
	int io_fired;
	int io_bytes;
} helper;

static void helper_timer_cb(struct ev_loop *L, ev_timer *w, int revents) {
	helper *h = (helper *)((char *)w - offsetof(helper, timer));
	h->timer_fired++;
}

// Drains the fd like a C library would, so level-triggered readiness ends.
static void helper_io_cb(struct ev_loop *L, ev_io *w, int revents) {
	helper *h = (helper *)((char *)w - offsetof(helper, io));
	char buf[256];
	h->io_fired++;
	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof buf);
		if (n <= 0) {
			break;
		}
		h->io_bytes += (int)n;
	}
}

static helper *helper_start(struct ev_loop *L, int fd, double after, double repeat) {
	helper *h = calloc(1, sizeof *h);
	if (!h) {
		return NULL;
	}
	ev_timer_init(&h->timer, helper_timer_cb, after, repeat);
	ev_timer_start(L, &h->timer);
	ev_io_init(&h->io, helper_io_cb, fd, EV_READ);
	ev_io_start(L, &h->io);
	return h;
}

static void helper_stop(struct ev_loop *L, helper *h) {
	ev_timer_stop(L, &h->timer);
	ev_io_stop(L, &h->io);
	free(h);
}

// Two io watchers whose callbacks each stop the other: with both fds ready
// in one iteration, libev must invoke only the first (ev_io_stop clears a
// collected, pending event).
typedef struct {
	ev_io a, b;
	int a_fired, b_fired;
} pair;

static void pair_a_cb(struct ev_loop *L, ev_io *w, int revents) {
	pair *p = (pair *)((char *)w - offsetof(pair, a));
	p->a_fired++;
	ev_io_stop(L, &p->b);
}

static void pair_b_cb(struct ev_loop *L, ev_io *w, int revents) {
	pair *p = (pair *)((char *)w - offsetof(pair, b));
	p->b_fired++;
	ev_io_stop(L, &p->a);
}

static pair *pair_start(struct ev_loop *L, int fa, int fb) {
	pair *p = calloc(1, sizeof *p);
	if (!p) {
		return NULL;
	}
	ev_io_init(&p->a, pair_a_cb, fa, EV_WRITE);
	ev_io_init(&p->b, pair_b_cb, fb, EV_WRITE);
	ev_io_start(L, &p->a);
	ev_io_start(L, &p->b);
	return p;
}

static void pair_stop(struct ev_loop *L, pair *p) {
	ev_io_stop(L, &p->a);
	ev_io_stop(L, &p->b);
	free(p);
}
*/
import "C"

import (
	"errors"
	"time"
	"unsafe"
)

// Helper is a C ev_timer and a C ev_io (reading and draining fd) on a loop.
type Helper struct {
	loop unsafe.Pointer
	h    *C.helper
}

// Start starts the C watchers on the struct ev_loop at loop. Call it on
// the loop goroutine.
func Start(loop unsafe.Pointer, fd int, after, repeat time.Duration) (*Helper, error) {
	h := C.helper_start((*C.struct_ev_loop)(loop), C.int(fd), C.double(after.Seconds()), C.double(repeat.Seconds()))
	if h == nil {
		return nil, errors.New("ctest: out of memory")
	}
	return &Helper{loop: loop, h: h}, nil
}

// TimerFired is how many times the C timer fired.
func (h *Helper) TimerFired() int { return int(h.h.timer_fired) }

// IOFired is how many times the C io watcher fired.
func (h *Helper) IOFired() int { return int(h.h.io_fired) }

// IOBytes is how many bytes the C io watcher drained.
func (h *Helper) IOBytes() int { return int(h.h.io_bytes) }

// Stop stops the C watchers and frees them.
func (h *Helper) Stop() { C.helper_stop((*C.struct_ev_loop)(h.loop), h.h) }

// Pair is two C io watchers for writability that stop each other.
type Pair struct {
	loop unsafe.Pointer
	p    *C.pair
}

// StartPair starts the pair on fa and fb (both should be writable).
func StartPair(loop unsafe.Pointer, fa, fb int) (*Pair, error) {
	p := C.pair_start((*C.struct_ev_loop)(loop), C.int(fa), C.int(fb))
	if p == nil {
		return nil, errors.New("ctest: out of memory")
	}
	return &Pair{loop: loop, p: p}, nil
}

// Fired reports how often each callback ran.
func (p *Pair) Fired() (a, b int) { return int(p.p.a_fired), int(p.p.b_fired) }

// Stop stops both watchers and frees them.
func (p *Pair) Stop() { C.pair_stop((*C.struct_ev_loop)(p.loop), p.p) }
