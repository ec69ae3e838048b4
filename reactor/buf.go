package reactor

import (
	"math/bits"
	"sync"
	"unsafe"
)

// Inbound leftovers and pending output live in pooled buffers of
// power-of-two sizes from minBuf to maxPooled, taken when a connection has
// bytes to keep and returned as soon as it has none, so an idle
// connection holds no buffer. The pools are sync.Pools, which the garbage
// collector empties: after a burst the heap returns to its idle size.
const (
	minBufShift = 9 // 512 B
	maxBufShift = 22
	minBuf      = 1 << minBufShift
	maxPooled   = 1 << maxBufShift // 4 MiB; larger buffers are not pooled
)

var pools [maxBufShift - minBufShift + 1]sync.Pool

func class(n int) int {
	if n <= minBuf {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// getBuf returns an empty buffer with room for at least n bytes.
func getBuf(n int) []byte {
	if n > maxPooled {
		return make([]byte, 0, n)
	}
	k := class(n)
	// The pools hold *byte (the first byte of the buffer), which fits in
	// an interface without allocating; the size is the class's.
	if p, _ := pools[k].Get().(*byte); p != nil {
		return unsafe.Slice(p, minBuf<<k)[:0]
	}
	return make([]byte, 0, minBuf<<k)
}

// putBuf returns b to its pool. b must come from getBuf.
func putBuf(b []byte) {
	c := cap(b)
	if c < minBuf || c > maxPooled || c&(c-1) != 0 {
		return
	}
	pools[class(c)].Put(unsafe.SliceData(b[:c]))
}

// appendBuf appends p to b, moving to a bigger pooled buffer when b is
// full. b may be nil. head is the offset of b's first live byte: moving
// drops the bytes before it.
func appendBuf(b []byte, head int, p []byte) ([]byte, int) {
	if len(b)+len(p) <= cap(b) {
		return append(b, p...), head
	}
	live := len(b) - head
	if b != nil && live+len(p) <= cap(b)/2 {
		// Compact in place instead of growing.
		n := copy(b[:cap(b)], b[head:])
		return append(b[:n], p...), 0
	}
	nb := getBuf(2 * (live + len(p)))
	nb = append(nb, b[head:]...)
	nb = append(nb, p...)
	if b != nil {
		putBuf(b)
	}
	return nb, 0
}
