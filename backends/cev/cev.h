// The C side of the cev backend: a libev loop whose own watchers only
// record events for the Go driver (cev.go) to dispatch after ev_run
// returns. See the package documentation for the rules it keeps.

#ifndef EVHUB_CEV_H
#define EVHUB_CEV_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <ev.h>

// One readiness event of one of the loop's ev_io watchers, recorded during
// ev_run and dispatched in Go after it returns.
typedef struct {
	uint64_t h;       // the watcher's handle: generation << 32 | slot
	int32_t revents;
	int32_t pad;
} cev_rec;

// The C side of one loop. ev_userdata points here.
typedef struct {
	struct ev_loop *loop;
	ev_async async;   // Post and Stop wake-ups
	ev_timer timer;   // armed for the earliest deadline of the Go timer heap
	cev_rec *recs;    // events recorded by the last cev_run
	int32_t n, cap;
	int32_t async_fired, timer_fired;
	int32_t lost;     // recs could not grow; events were dropped (level-triggered: they come back)
	uint32_t invoked; // watchers libev invoked in the last cev_run, ours and foreign C ones
	int epfd;         // libev's epoll fd, or -1 if unknown
} cev_t;

// cev_new makes a loop with ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
// on failure it returns NULL and sets *err.
cev_t *cev_new(int *err);
// cev_destroy stops the loop's own watchers and destroys it.
void cev_destroy(cev_t *c);
// cev_run runs one iteration (see cev.c).
int cev_run(cev_t *c, int flags, double timeout, int *fds, int nfds);
// cev_wake wakes the loop from any thread (ev_async_send).
void cev_wake(cev_t *c);
// cev_io_start starts w on fd for events, named by handle h; it returns 0
// or an errno value.
int cev_io_start(cev_t *c, ev_io *w, int fd, int events, uint64_t h);
// cev_io_modify changes w's events; 0 leaves it stopped.
void cev_io_modify(cev_t *c, ev_io *w, int events);
// cev_io_stop stops w.
void cev_io_stop(cev_t *c, ev_io *w);

#endif
