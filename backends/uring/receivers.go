//go:build linux && uring

package uring

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/evhub/evhub/loop"
)

// receivers are the loop's distinct loop.Receivers, each with the number
// of fds it receives on, so that an fd's entry holds a 16-bit id instead
// of a 16-byte interface value: a caller gives its sockets one Receiver
// and each fd costs 6 bytes of the table (TestRecvEntrySize). Receivers
// are told apart by identity, the interface's two words: every dynamic
// type has one (comparing a func with == panics), and two values that
// are == but boxed apart only cost a second id.
type receivers struct {
	slots []receiverSlot // by id-1
	free  []uint16       // ids of empty slots
	ids   map[[2]unsafe.Pointer]uint16
}

type receiverSlot struct {
	r loop.Receiver
	n int // fds receiving with r
}

// maxReceivers is the most distinct Receivers a loop keeps at once.
const maxReceivers = math.MaxUint16

func identity(r loop.Receiver) [2]unsafe.Pointer {
	return *(*[2]unsafe.Pointer)(unsafe.Pointer(&r))
}

// add counts one more fd receiving with r and returns r's id.
func (rs *receivers) add(r loop.Receiver) (uint16, error) {
	k := identity(r)
	if id, ok := rs.ids[k]; ok {
		rs.slots[id-1].n++
		return id, nil
	}
	var id uint16
	switch {
	case len(rs.free) > 0:
		id = rs.free[len(rs.free)-1]
		rs.free = rs.free[:len(rs.free)-1]
	case len(rs.slots) < maxReceivers:
		rs.slots = append(rs.slots, receiverSlot{})
		id = uint16(len(rs.slots))
	default:
		return 0, fmt.Errorf("%d distinct receivers already, the most a loop keeps: give many fds one Receiver", maxReceivers)
	}
	if rs.ids == nil {
		rs.ids = make(map[[2]unsafe.Pointer]uint16)
	}
	rs.ids[k] = id
	rs.slots[id-1] = receiverSlot{r: r, n: 1}
	return id, nil
}

// get returns the Receiver of id (not 0).
func (rs *receivers) get(id uint16) loop.Receiver { return rs.slots[id-1].r }

// drop counts one fd fewer receiving with id's Receiver, and forgets it
// after its last.
func (rs *receivers) drop(id uint16) {
	s := &rs.slots[id-1]
	if s.n--; s.n > 0 {
		return
	}
	delete(rs.ids, identity(s.r))
	*s = receiverSlot{}
	rs.free = append(rs.free, id)
}
