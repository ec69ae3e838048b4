//go:build cev

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cev.h"

static void cev_record(cev_t *c, uint64_t h, int revents) {
	if (c->n == c->cap) {
		int32_t ncap = c->cap * 2;
		cev_rec *r = realloc(c->recs, (size_t)ncap * sizeof *r);
		if (!r) {
			c->lost = 1;
			return;
		}
		c->recs = r;
		c->cap = ncap;
	}
	c->recs[c->n].h = h;
	c->recs[c->n].revents = revents;
	c->n++;
}

// The callbacks of the loop's own watchers only record: no Go code runs
// inside ev_run.
static void cev_io_cb(struct ev_loop *L, ev_io *w, int revents) {
	cev_record((cev_t *)ev_userdata(L), (uint64_t)(uintptr_t)w->data, revents);
}

static void cev_async_cb(struct ev_loop *L, ev_async *w, int revents) {
	((cev_t *)ev_userdata(L))->async_fired = 1;
}

static void cev_timer_cb(struct ev_loop *L, ev_timer *w, int revents) {
	((cev_t *)ev_userdata(L))->timer_fired = 1;
}

// Counts what libev invokes, so that the Go driver can tell a spurious
// wake-up (nothing invoked) from an iteration that ran only C watchers.
static void cev_invoke(struct ev_loop *L) {
	cev_t *c = ev_userdata(L);
	c->invoked += ev_pending_count(L);
	ev_invoke_pending(L);
}

cev_t *cev_new(int *err) {
	cev_t *c = calloc(1, sizeof *c);
	if (!c) {
		*err = ENOMEM;
		return NULL;
	}
	c->cap = 256;
	c->recs = malloc((size_t)c->cap * sizeof *c->recs);
	if (!c->recs) {
		free(c);
		*err = ENOMEM;
		return NULL;
	}
	// libev aborts the process when it cannot create the eventfd behind
	// ev_async (EMFILE). Hold one fd while the loop is made and release it
	// just before ev_async_start, so fd exhaustion is an error here.
	int probe = eventfd(0, EFD_CLOEXEC);
	if (probe < 0) {
		*err = errno;
		free(c->recs);
		free(c);
		return NULL;
	}
	// ev.h has no accessor for the loop's epoll fd, and epoll_ctl on it
	// (EINVAL) is an assertion failure in libev: Watch must refuse it. The
	// kernel gives epoll_create the lowest free fd; note which that is and
	// confirm below that an epoll fd now has that number.
	int lowest = fcntl(probe, F_DUPFD_CLOEXEC, 0);
	if (lowest >= 0) {
		close(lowest);
	}
	errno = 0;
	c->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!c->loop) {
		*err = errno ? errno : EINVAL;
		close(probe);
		free(c->recs);
		free(c);
		return NULL;
	}
	c->epfd = -1;
	if (lowest >= 0 && (ev_backend(c->loop) & EVBACKEND_EPOLL)) {
		char path[64], link[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", lowest);
		ssize_t n = readlink(path, link, sizeof link - 1);
		if (n > 0) {
			link[n] = 0;
			if (strcmp(link, "anon_inode:[eventpoll]") == 0) {
				c->epfd = lowest;
			}
		}
	}
	ev_set_userdata(c->loop, c);
	ev_set_invoke_pending_cb(c->loop, cev_invoke);
	ev_async_init(&c->async, cev_async_cb);
	ev_init(&c->timer, cev_timer_cb);
	close(probe);
	ev_async_start(c->loop, &c->async);
	return c;
}

void cev_destroy(cev_t *c) {
	ev_timer_stop(c->loop, &c->timer);
	ev_async_stop(c->loop, &c->async);
	ev_loop_destroy(c->loop);
	free(c->recs);
	free(c);
}

// One iteration: arm the heap's ev_timer (timeout < 0: none) and run.
//
// fds are the fds whose watchers changed since the last run: libev calls
// epoll_ctl for them in ev_run and, built with assertions as Debian's is,
// aborts the process on EBADF. If any of them is closed, cev_run moves
// those to the front of fds and returns their count without running, so
// that the Go side can stop their watchers first.
int cev_run(cev_t *c, int flags, double timeout, int *fds, int nfds) {
	int nbad = 0;
	for (int i = 0; i < nfds; i++) {
		if (fcntl(fds[i], F_GETFD) < 0 && errno == EBADF) {
			fds[nbad++] = fds[i];
		}
	}
	if (nbad) {
		return nbad;
	}
	c->n = 0;
	c->async_fired = 0;
	c->timer_fired = 0;
	c->lost = 0;
	c->invoked = 0;
	if (timeout >= 0) {
		// ev_timer counts from the loop's cached time, which is as old as
		// the last poll; refresh it so the timer is not early.
		ev_now_update(c->loop);
		ev_timer_stop(c->loop, &c->timer);
		ev_timer_set(&c->timer, timeout, 0.);
		ev_timer_start(c->loop, &c->timer);
	} else if (ev_is_active(&c->timer)) {
		ev_timer_stop(c->loop, &c->timer);
	}
	ev_run(c->loop, flags);
	return 0;
}

void cev_wake(cev_t *c) {
	ev_async_send(c->loop, &c->async);
}

// libev asserts (aborts) on a negative fd and turns a closed one into an
// EV_ERROR event; check first so a bad fd is an error.
int cev_io_start(cev_t *c, ev_io *w, int fd, int events, uint64_t h) {
	if (fd < 0) {
		return EBADF;
	}
	if (fcntl(fd, F_GETFD) < 0) {
		return errno;
	}
	if (fd == c->epfd) {
		return EINVAL; // epoll_ctl's EINVAL is an assertion failure in libev
	}
	ev_io_init(w, cev_io_cb, fd, events);
	w->data = (void *)(uintptr_t)h;
	ev_io_start(c->loop, w);
	return 0;
}

void cev_io_modify(cev_t *c, ev_io *w, int events) {
	ev_io_stop(c->loop, w);
	ev_io_modify(w, events);
	if (events) {
		ev_io_start(c->loop, w);
	}
}

void cev_io_stop(cev_t *c, ev_io *w) {
	ev_io_stop(c->loop, w);
}
