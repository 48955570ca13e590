package frontier

// queueBlock is how many items one block of an itemQueue holds.
const queueBlock = 4096

// itemQueue is a FIFO of qitems in fixed-size blocks, with a LIFO in front
// of it for items pushed back to the head. Unlike one growing slice, it
// never copies its items to grow (a run of a million pending URLs would
// briefly hold its queue two or three times over) and gives the memory of
// consumed blocks back as it goes.
type itemQueue struct {
	front  []qitem   // popped first, last pushed first
	blocks [][]qitem // blocks[0][head:] then the other blocks, in order
	head   int
	n      int
}

func (q *itemQueue) len() int { return q.n }

func (q *itemQueue) push(it qitem) {
	last := len(q.blocks) - 1
	if last < 0 || len(q.blocks[last]) == queueBlock {
		q.blocks = append(q.blocks, make([]qitem, 0, queueBlock))
		last++
	}
	q.blocks[last] = append(q.blocks[last], it)
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
	if len(q.blocks) == 0 || q.head >= len(q.blocks[0]) {
		return qitem{}, false
	}
	b := q.blocks[0]
	it := b[q.head]
	b[q.head] = qitem{} // let the URL go
	q.head++
	q.n--
	if q.head == len(b) && (len(b) == queueBlock || len(q.blocks) > 1) {
		q.blocks[0] = nil
		q.blocks = q.blocks[1:]
		q.head = 0
	}
	return it, true
}

// each calls f with every item, in the order pop returns them.
func (q *itemQueue) each(f func(qitem)) {
	for i := len(q.front) - 1; i >= 0; i-- {
		f(q.front[i])
	}
	for i, b := range q.blocks {
		start := 0
		if i == 0 {
			start = q.head
		}
		for _, it := range b[start:] {
			f(it)
		}
	}
}

// reset empties the queue.
func (q *itemQueue) reset() { *q = itemQueue{} }
