//go:build linux

package gnet

import (
	"os"
	"time"

	"github.com/panjf2000/gnet/v2/pkg/netpoll"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// ctlName names the registration syscall in errors.
const ctlName = "epoll_ctl"

// onePoller: the watched fds are registered on the poller that runs
// (rewake keeps it across Polling calls).
const onePoller = true

// applyInterest makes reg's registration of rec equal to want. The poller has no ModWrite: going to write-only is a Delete and an
// AddWrite.
func applyInterest(l *Loop, rec *fdRec, want loop.Events) error {
	have := rec.kernel
	if want == have {
		return nil
	}
	p, pa := l.reg, &rec.pa
	var err error
	switch {
	case want == 0:
		err = p.Delete(pa.FD)
	case have == 0:
		err = addInterest(p, pa, want, rec.edge)
	case want == loop.Readable:
		err = p.ModRead(pa, rec.edge)
	case want == loop.Readable|loop.Writable:
		err = p.ModReadWrite(pa, rec.edge)
	default:
		if err = p.Delete(pa.FD); err == nil {
			rec.kernel = 0
			err = p.AddWrite(pa, rec.edge)
		}
	}
	if err != nil {
		return err
	}
	rec.kernel = want
	return nil
}

func addInterest(p *netpoll.Poller, pa *netpoll.PollAttachment, want loop.Events, edge bool) error {
	switch want {
	case loop.Readable:
		return p.AddRead(pa, edge)
	case loop.Writable:
		return p.AddWrite(pa, edge)
	default:
		return p.AddReadWrite(pa, edge)
	}
}

// rawEvents is the buffer of one wait on the registration poller.
type rawEvents []unix.EpollEvent

func newRawEvents(n int) rawEvents { return make(rawEvents, n) }

// waitInner collects, without blocking, what the registration epoll
// (nested) has ready and appends it to ready. gnet registers an fd with its number in the
// event's data, which is where epoll hands it back.
func waitInner(epfd int, raw rawEvents, ready []readyEvent) []readyEvent {
	n, err := unix.EpollWait(epfd, raw, 0)
	if err != nil {
		return ready // EINTR: the poller reports the registration poller again
	}
	for i := range n {
		e := &raw[i]
		ready = append(ready, readyEvent{fd: int(e.Fd), ev: decode(e.Events)})
	}
	return ready
}

// decodeEvent maps an event of Polling's callback to readiness.
func decodeEvent(ev netpoll.IOEvent, _ netpoll.IOFlags) loop.Events { return decode(ev) }

// decode maps epoll's event bits to readiness; hang-up and error count as
// both directions (and a peer's half-close as readable) so that the next
// syscall surfaces them.
func decode(e uint32) loop.Events {
	var ev loop.Events
	if e&(unix.EPOLLIN|unix.EPOLLPRI|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ev |= loop.Readable
	}
	if e&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ev |= loop.Writable
	}
	return ev
}

// timerfdSource drives the timer heap with one timerfd registered
// level-triggered with the poller. It is re-armed only when the earliest
// deadline moves earlier than the armed one.
type timerfdSource struct {
	tfd   int
	armed bool
	at    time.Time
	buf   [8]byte
	sets  int // timerfd_settime calls, for tests
}

func newTimerSource(*Loop) (timerSource, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("timerfd_create", err)
	}
	return &timerfdSource{tfd: fd}, nil
}

func (s *timerfdSource) fd() int { return s.tfd }

func (s *timerfdSource) register(p *netpoll.Poller) error {
	return p.AddRead(&netpoll.PollAttachment{FD: s.tfd}, false)
}

func (s *timerfdSource) arm(at time.Time) {
	if s.armed && !at.Before(s.at) {
		return
	}
	s.set(time.Until(at))
	s.armed, s.at = true, at
}

func (s *timerfdSource) kick() {
	s.set(0)
	s.armed, s.at = true, time.Now()
}

func (s *timerfdSource) set(d time.Duration) {
	if d <= 0 {
		d = 1 // zero would disarm
	}
	s.sets++
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	// Only a bad fd or spec can fail, and neither can happen while the
	// loop is open.
	_ = unix.TimerfdSettime(s.tfd, 0, &spec, nil)
}

func (s *timerfdSource) fired() {
	// Drain the expiration count so that the level-triggered fd goes
	// quiet; EAGAIN means a re-arm already reset it.
	_, _ = unix.Read(s.tfd, s.buf[:])
	s.armed = false
}

func (s *timerfdSource) close() error {
	return os.NewSyscallError("close", unix.Close(s.tfd))
}
