//go:build !amd64 && !arm64

package scheduler

import (
	"runtime"
	"strconv"
	"strings"
)

// getg returns the goroutine id parsed from runtime.Stack (about 2 µs) on
// architectures without the assembly version; it is unique among live
// goroutines, which is all a task's identity needs.
func getg() uintptr {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	if i := strings.IndexByte(s, ' '); i > 0 {
		if id, err := strconv.ParseUint(s[:i], 10, 64); err == nil {
			return uintptr(id)
		}
	}
	return 0
}
