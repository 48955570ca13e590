package frontier

import (
	"encoding/binary"
)

// queueBlockBytes is the size of one block of an itemQueue's encoded
// items (larger for an item that does not fit in one).
const queueBlockBytes = 32 << 10

// itemQueue is a FIFO of qitems, with a LIFO in front of it for items
// pushed back to the head. The FIFO keeps its items encoded in blocks of
// bytes: the hash, then seq, attempts and depth as varints, then the URL
// front-coded against the URL before it in the block (the length they
// share and the rest). A crawl queues the links of a page one after the
// other, and they share most of their URL, so an item takes about 22
// bytes instead of a 48-byte struct and a separate string (the Frontier's
// heap per added URL went from 121 to 80 bytes, seen set included:
// `go test -run '^$' -bench Add -benchtime 100000x ./frontier/`, B/url).
// Blocks never copy to grow, and consumed blocks are given back as the
// queue is popped. Pop decodes the items in order, building each URL from
// the one before.
type itemQueue struct {
	front  []qitem // popped first, last pushed first
	blocks []*queueBlock
	n      int
	tail   string // URL of the last item pushed into the last block
}

// queueBlock holds encoded items; off is where the next one to pop starts
// and prev the URL of the one before it (blocks[0] only).
type queueBlock struct {
	buf  []byte
	off  int
	prev string
}

func (q *itemQueue) len() int { return q.n }

func (q *itemQueue) push(it qitem) {
	// Room for the hash, five varints and what the URL does not share.
	need := func(pre int) int { return len(it.h) + 5*binary.MaxVarintLen64 + len(it.url) - pre }
	var last *queueBlock
	pre := 0
	if k := len(q.blocks); k > 0 {
		last = q.blocks[k-1]
		pre = commonPrefix(q.tail, it.url)
	}
	if last == nil || len(last.buf)+need(pre) > cap(last.buf) {
		pre = 0
		b := &queueBlock{buf: make([]byte, 0, max(queueBlockBytes, need(0)))}
		if last != nil && len(last.buf) == 0 {
			q.blocks[len(q.blocks)-1] = b // an emptied block too small for it
		} else {
			q.blocks = append(q.blocks, b)
		}
		last = b
	}
	b := append(last.buf, it.h[:]...)
	b = binary.AppendUvarint(b, uint64(it.seq))
	b = binary.AppendVarint(b, int64(it.attempts))
	b = binary.AppendVarint(b, int64(it.depth))
	b = binary.AppendUvarint(b, uint64(pre))
	b = binary.AppendUvarint(b, uint64(len(it.url)-pre))
	last.buf = append(b, it.url[pre:]...)
	q.tail = it.url
	q.n++
}

func (q *itemQueue) pushFront(it qitem) {
	q.front = append(q.front, it)
	q.n++
}

func (q *itemQueue) pop() (qitem, bool) {
	if k := len(q.front); k > 0 {
		it := q.front[k-1]
		q.front[k-1] = qitem{}
		q.front = q.front[:k-1]
		q.n--
		return it, true
	}
	if len(q.blocks) == 0 || q.blocks[0].off == len(q.blocks[0].buf) {
		return qitem{}, false
	}
	b := q.blocks[0]
	it, next := decodeItem(b.buf, b.off, b.prev)
	b.off, b.prev = next, it.url
	q.n--
	if b.off == len(b.buf) {
		if len(q.blocks) == 1 {
			// Empty: the block is used again from its start.
			b.buf, b.off, b.prev, q.tail = b.buf[:0], 0, "", ""
		} else {
			q.blocks[0] = nil
			q.blocks = q.blocks[1:]
		}
	}
	return it, true
}

// each calls f with every item, in the order pop returns them.
func (q *itemQueue) each(f func(qitem)) {
	for i := len(q.front) - 1; i >= 0; i-- {
		f(q.front[i])
	}
	for _, b := range q.blocks {
		off, prev := b.off, b.prev
		for off < len(b.buf) {
			var it qitem
			it, off = decodeItem(b.buf, off, prev)
			prev = it.url
			f(it)
		}
	}
}

// reset empties the queue.
func (q *itemQueue) reset() { *q = itemQueue{} }

// decodeItem decodes the item at buf[off:], whose URL is front-coded
// against prev, and returns it with the offset of the next one.
func decodeItem(buf []byte, off int, prev string) (qitem, int) {
	var it qitem
	off += copy(it.h[:], buf[off:])
	seq, n := binary.Uvarint(buf[off:])
	off += n
	attempts, n := binary.Varint(buf[off:])
	off += n
	depth, n := binary.Varint(buf[off:])
	off += n
	pre, n := binary.Uvarint(buf[off:])
	off += n
	rest, n := binary.Uvarint(buf[off:])
	off += n
	it.seq, it.attempts, it.depth = int64(seq), int32(attempts), int32(depth)
	it.url = prev[:pre] + string(buf[off:off+int(rest)])
	return it, off + int(rest)
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
