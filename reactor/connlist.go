package reactor

// connChunk is how many connections one block of a connList holds.
const connChunk = 128

// connList is a loop's open connections, in fixed blocks of connChunk
// pointers: it grows by one block at a time, so a crowd of connections
// arriving leaves no trail of outgrown slices behind (a doubling slice
// allocates about twice its final size on the way there), and gives
// blocks back as it shrinks. Conn.idx is a connection's position.
type connList struct {
	blocks []*[connChunk]*Conn
	n      int
}

func (l *connList) len() int { return l.n }

func (l *connList) at(i int) *Conn { return l.blocks[i/connChunk][i%connChunk] }

func (l *connList) set(i int, c *Conn) { l.blocks[i/connChunk][i%connChunk] = c }

// add appends c and records its position.
func (l *connList) add(c *Conn) {
	if l.n == len(l.blocks)*connChunk {
		l.blocks = append(l.blocks, new([connChunk]*Conn))
	}
	l.set(l.n, c)
	c.idx = int32(l.n)
	l.n++
}

// remove takes c out (the last connection takes its place) and reports
// whether c was there.
func (l *connList) remove(c *Conn) bool {
	i := int(c.idx)
	if i < 0 || i >= l.n || l.at(i) != c {
		return false
	}
	last := l.n - 1
	if i != last {
		m := l.at(last)
		l.set(i, m)
		m.idx = int32(i)
	}
	l.set(last, nil)
	l.n = last
	c.idx = -1
	// Keep one spare block, so that a count going back and forth across
	// a block's edge does not allocate each time.
	if k := len(l.blocks); k > 1 && l.n <= (k-2)*connChunk {
		l.blocks[k-1] = nil
		l.blocks = l.blocks[:k-1]
	}
	return true
}
