package conformance

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
)

// patBlock is the block length of the test byte stream: a prime, so that
// no read or write size lines up with it.
const patBlock = 65521

// pattern is a deterministic pseudo-random byte stream: block i is a fixed
// random block whose first 8 bytes hold i, so that a lost, repeated or
// reordered chunk of any size is detected. fill and check copy whole runs
// (no per-byte loop) so they stay cheap under the race detector.
type pattern struct {
	block []byte
}

func newPattern(seed uint64) *pattern {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, patBlock)
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(b[i:], w[:])
	}
	return &pattern{block: b}
}

// fill writes the stream's bytes [off, off+len(p)) into p.
func (pt *pattern) fill(off int64, p []byte) {
	for len(p) > 0 {
		blk, in := off/patBlock, int(off%patBlock)
		n := copy(p, pt.block[in:])
		if in < 8 {
			var hdr [8]byte
			binary.BigEndian.PutUint64(hdr[:], uint64(blk))
			copy(p[:n], hdr[in:])
		}
		p, off = p[n:], off+int64(n)
	}
}

// check returns an error naming the first offset where p differs from the
// stream at off. scratch is reused to avoid allocating.
func (pt *pattern) check(off int64, p, scratch []byte) error {
	for len(p) > 0 {
		n := min(len(p), len(scratch))
		want := scratch[:n]
		pt.fill(off, want)
		if !bytes.Equal(p[:n], want) {
			for i := range n {
				if p[i] != want[i] {
					return fmt.Errorf("byte %d of the stream is %#x, want %#x", off+int64(i), p[i], want[i])
				}
			}
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// writePattern writes total bytes of the stream to w in chunks of size
// chunk.
func (pt *pattern) write(w io.Writer, total int64, chunk int) error {
	buf := make([]byte, chunk)
	for off := int64(0); off < total; {
		n := int(min(int64(chunk), total-off))
		pt.fill(off, buf[:n])
		m, err := w.Write(buf[:n])
		off += int64(m)
		if err != nil {
			return fmt.Errorf("write at stream offset %d: %w", off, err)
		}
		if m != n {
			return fmt.Errorf("short write at stream offset %d: %d of %d bytes and no error", off, m, n)
		}
	}
	return nil
}

// readPattern reads exactly total bytes from r and checks each one, then
// (if wantEOF) requires io.EOF.
func (pt *pattern) read(r io.Reader, total int64, chunk int, wantEOF bool) error {
	buf := make([]byte, chunk)
	scratch := make([]byte, chunk)
	for off := int64(0); off < total; {
		n, err := r.Read(buf[:min(int64(chunk), total-off)])
		if cerr := pt.check(off, buf[:n], scratch); cerr != nil {
			return cerr
		}
		off += int64(n)
		if err == io.EOF && off == total && wantEOF {
			return nil // the last bytes came together with EOF
		}
		if err != nil {
			return fmt.Errorf("read at stream offset %d of %d: %w", off, total, err)
		}
	}
	if wantEOF {
		n, err := r.Read(buf[:1])
		if n != 0 || err != io.EOF {
			return fmt.Errorf("after %d bytes: Read = %d, %v; want 0, io.EOF", total, n, err)
		}
	}
	return nil
}
