//go:build linux

// Package pin starts child processes pinned to one CPU, for the bench and
// for tests that measure a server in its own process.
package pin

import (
	"fmt"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// Start starts cmd with the CPU affinity {cpu}: the fork happens on this
// goroutine's thread, and a child inherits that thread's affinity, so every
// thread of the child is pinned from its first instruction. cpu < 0 starts
// it unpinned.
func Start(cmd *exec.Cmd, cpu int) error {
	if cpu < 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return fmt.Errorf("sched_getaffinity: %w", err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to CPU %d: %w", cpu, err)
	}
	startErr := cmd.Start()
	if err := unix.SchedSetaffinity(0, &old); err != nil {
		// Restoring the mask we just read cannot fail in practice; if it
		// does, keep the thread locked so that no other goroutine inherits
		// the pin (the runtime ends a thread whose goroutine exits locked).
		runtime.LockOSThread()
		if startErr == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return fmt.Errorf("restore CPU affinity: %w", err)
	}
	return startErr
}
