//go:build linux

package evio

import "sync"

// For a handler that borrows Data's bytes (loop.DataBorrower), evio reads
// into its own shared buffer (evio.Options.ReuseInputBuffer) and the bytes
// are copied into a pooled buffer that goes back to its pool once the
// handler's Data returns: no allocation per read, where evio's default
// is a fresh copy of every read. Three sizes cover evio's reads of up to
// 64 KiB (evioPacket).

var (
	readPoolS = sync.Pool{New: func() any { return new([512]byte) }}
	readPoolM = sync.Pool{New: func() any { return new([8 << 10]byte) }}
	readPoolL = sync.Pool{New: func() any { return new([64 << 10]byte) }}
)

// borrowRead returns a copy of in, in a pooled buffer for returnRead.
func borrowRead(in []byte) []byte {
	var b []byte
	switch n := len(in); {
	case n <= 512:
		b = readPoolS.Get().(*[512]byte)[:n]
	case n <= 8<<10:
		b = readPoolM.Get().(*[8 << 10]byte)[:n]
	case n <= 64<<10:
		b = readPoolL.Get().(*[64 << 10]byte)[:n]
	default:
		return append([]byte(nil), in...) // never: evio reads at most 64 KiB
	}
	copy(b, in)
	return b
}

// returnRead gives p's buffer, from borrowRead, back to its pool.
func returnRead(p []byte) {
	switch cap(p) {
	case 512:
		readPoolS.Put((*[512]byte)(p[:512]))
	case 8 << 10:
		readPoolM.Put((*[8 << 10]byte)(p[:8<<10]))
	case 64 << 10:
		readPoolL.Put((*[64 << 10]byte)(p[:64<<10]))
	}
}
