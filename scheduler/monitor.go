package scheduler

import (
	"bytes"
	"fmt"
	"log"
	"runtime"
	"time"
)

// A task that blocks its thread with a call that is not the hub's
// (time.Sleep, a plain channel, a mutex) stalls every task of its hub, as
// in gevent. The monitor is gevent's remedy: a goroutine that notices when
// the hub has been inside one task for longer than a threshold and reports
// it once, with that task's stack and the cure (Blocking, blocking.go).

// MonitorReport describes one stall.
type MonitorReport struct {
	Backend string        // the hub's backend
	Blocked time.Duration // how long the task had been running when seen
	Stack   string        // the offending task's goroutine stack
}

func (r MonitorReport) String() string {
	return fmt.Sprintf("evhub monitor: a task has blocked the %s hub for %v without returning to it (a non-hub blocking call?); "+
		"run such a call through scheduler.Blocking (evhub.Blocking), which parks only the calling task, "+
		"and use the hub's own sockets, Resolver, files (NewFile, Pipe), WaitFD and hubexec for I/O:\n%s",
		r.Backend, r.Blocked.Round(time.Millisecond), r.Stack)
}

// StartMonitor starts the blocking monitor: every threshold/4 it checks
// whether one task has run for longer than threshold without switching
// back to the hub, and calls report (log.Print of the report when nil)
// once per stall. It stops when the hub closes. Starting it twice is an
// error.
func (h *Hub) StartMonitor(threshold time.Duration, report func(MonitorReport)) error {
	if threshold <= 0 {
		return fmt.Errorf("evhub: monitor threshold %v: must be positive", threshold)
	}
	if report == nil {
		report = func(r MonitorReport) { log.Print(r.String()) }
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed.Load() {
		return ErrHubClosed
	}
	if h.monitorStop != nil {
		return fmt.Errorf("evhub: monitor already running on this hub")
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	h.monitorStop, h.monitorDone = stop, done
	go h.monitor(threshold, report, stop, done)
	return nil
}

func (h *Hub) monitor(threshold time.Duration, report func(MonitorReport), stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(threshold / 4)
	defer tick.Stop()
	var reported int64
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		start := h.resumeStart.Load()
		if start == 0 || start == reported {
			continue
		}
		blocked := time.Duration(mono() - start)
		if blocked < threshold {
			continue
		}
		t := h.current.Load()
		if t == nil || h.resumeStart.Load() != start {
			continue
		}
		id := t.goid.Load()
		if id == nil {
			continue
		}
		reported = start
		report(MonitorReport{Backend: h.Backend(), Blocked: blocked, Stack: goroutineStack(*id)})
	}
}

// goroutineStack returns the stack of goroutine id from a dump of all.
func goroutineStack(id string) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	head := []byte("goroutine " + id + " [")
	for _, block := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.HasPrefix(block, head) {
			return string(block)
		}
	}
	return "goroutine " + id + ": stack not found"
}

func (h *Hub) stopMonitor() {
	h.mu.Lock()
	stop, done := h.monitorStop, h.monitorDone
	h.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}
