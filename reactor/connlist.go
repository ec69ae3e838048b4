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

// fdChunk is how many fd numbers one block of an fdConns covers.
const fdChunk = 512

// fdConns is a loop's open connections on a loop.Completer by fd, in
// fixed blocks of fdChunk pointers made when an fd of their range first
// opens (fd numbers are dense, so the table is about as large as the
// connections): the Completer's callbacks name the fd, and the table
// finds its connection, as libev's callers find theirs by watcher. A
// connection costs its slot and nothing else: no position of its own,
// and no Receiver of its own for the loop to keep.
type fdConns struct {
	blocks []*[fdChunk]*Conn
}

// get returns fd's connection, or nil.
func (t *fdConns) get(fd int) *Conn {
	i := fd / fdChunk
	if fd < 0 || i >= len(t.blocks) || t.blocks[i] == nil {
		return nil
	}
	return t.blocks[i][fd%fdChunk]
}

// add puts c at its fd.
func (t *fdConns) add(c *Conn) {
	fd := int(c.fd)
	i := fd / fdChunk
	if i >= len(t.blocks) {
		t.blocks = append(t.blocks, make([]*[fdChunk]*Conn, i+1-len(t.blocks))...)
	}
	if t.blocks[i] == nil {
		t.blocks[i] = new([fdChunk]*Conn)
	}
	t.blocks[i][fd%fdChunk] = c
}

// remove takes c out, if it is at its fd.
func (t *fdConns) remove(c *Conn) {
	if t.get(int(c.fd)) == c {
		t.blocks[int(c.fd)/fdChunk][int(c.fd)%fdChunk] = nil
	}
}

// each calls f with every connection; f may remove it.
func (t *fdConns) each(f func(c *Conn)) {
	for _, b := range t.blocks {
		if b == nil {
			continue
		}
		for _, c := range b {
			if c != nil {
				f(c)
			}
		}
	}
}
