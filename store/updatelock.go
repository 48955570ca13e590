package store

import (
	"sync"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// FerretDB v1 applies an update (update, findAndModify, a replace) by
// reading the document and then writing it back whole, not in one
// transaction: two updates of one document at once can both read it, and
// the second write undoes the first. Measured on the embedded store: of
// 400 concurrent $inc of one document (4 goroutines), about 200 counted;
// of 6 findOneAndUpdate claims of one free document at once, two won in
// 9 rounds of 20. MongoDB applies each update atomically.
//
// So where updates are not atomic (Capabilities.AtomicUpdates false) the
// updates of one collection are serialized: by its Collection handles in
// this process, and, for the embedded server this process runs, by the
// query front for the clients of other processes (`db serve`), with the
// same locks. A whole-document replace (Upsert) is atomic by itself but
// must not land between an update's read and its write: it holds the
// lock shared. Inserts and deletes need no lock (FerretDB's update of a
// deleted document changes nothing; an upsert racing an insert fails with
// a duplicate key).

// updateLocks holds one lock per collection ("db.collection"), made on
// first use. The zero value is ready.
type updateLocks struct{ m sync.Map }

// of is the lock of collection coll of database db.
func (l *updateLocks) of(db, coll string) *sync.RWMutex {
	ns := db + "." + coll
	if mu, ok := l.m.Load(ns); ok {
		return mu.(*sync.RWMutex)
	}
	mu, _ := l.m.LoadOrStore(ns, new(sync.RWMutex))
	return mu.(*sync.RWMutex)
}

// updateLocks is the lock table of s's collection handles: its embedded
// server's (shared with that server's query front) when this process runs
// it, else the Store's own.
func (s *Store) updateLocks() *updateLocks {
	if s.server != nil {
		return &s.server.updates
	}
	return &s.updates
}

// exclusive locks c's collection for an update and returns the unlock;
// nothing to do where updates are atomic.
func (c *Collection) exclusive() func() {
	if c.upd == nil {
		return func() {}
	}
	c.upd.Lock()
	return c.upd.Unlock
}

// shared locks c's collection for a whole-document write.
func (c *Collection) shared() func() {
	if c.upd == nil {
		return func() {}
	}
	c.upd.RLock()
	return c.upd.RUnlock
}

// wireUpdate is the collection an OP_MSG message updates (update or
// findAndModify) and its request ID; ok is false for any other message,
// and for one that wants no reply (moreToCome), whose end the front
// cannot see.
func wireUpdate(msg []byte) (db, coll string, reqID int32, ok bool) {
	_, reqID, _, op, rest, ok := wiremessage.ReadHeader(msg)
	if !ok || op != wiremessage.OpMsg {
		return "", "", 0, false
	}
	flags, rest, ok := wiremessage.ReadMsgFlags(rest)
	if !ok || flags&wiremessage.MoreToCome != 0 {
		return "", "", 0, false
	}
	if flags&wiremessage.ChecksumPresent != 0 {
		if len(rest) < 4 {
			return "", "", 0, false
		}
		rest = rest[:len(rest)-4]
	}
	for len(rest) > 0 {
		var st wiremessage.SectionType
		if st, rest, ok = wiremessage.ReadMsgSectionType(rest); !ok {
			return "", "", 0, false
		}
		if st == wiremessage.DocumentSequence {
			if _, _, rest, ok = wiremessage.ReadMsgSectionDocumentSequence(rest); !ok {
				return "", "", 0, false
			}
			continue
		}
		var cmd bsoncore.Document
		if cmd, rest, ok = wiremessage.ReadMsgSectionSingleDocument(rest); !ok {
			return "", "", 0, false
		}
		first, err := cmd.IndexErr(0)
		if err != nil {
			return "", "", 0, false
		}
		switch first.Key() {
		case "update", "findAndModify", "findandmodify":
		default:
			return "", "", 0, false
		}
		coll, ok1 := first.Value().StringValueOK()
		db, ok2 := cmd.Lookup("$db").StringValueOK()
		return db, coll, reqID, ok1 && ok2
	}
	return "", "", 0, false
}

// frontPending holds the update locks a front connection took for the
// updates it forwarded, until FerretDB answers each.
type frontPending struct {
	mu sync.Mutex
	m  map[int32]*sync.RWMutex
}

// add records that the update of request reqID holds mu.
func (p *frontPending) add(reqID int32, mu *sync.RWMutex) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[int32]*sync.RWMutex{}
	}
	p.m[reqID] = mu
}

// done releases the lock of the request reply answers, if any.
func (p *frontPending) done(reply []byte) {
	_, _, responseTo, _, _, ok := wiremessage.ReadHeader(reply)
	if !ok {
		return
	}
	p.mu.Lock()
	mu := p.m[responseTo]
	delete(p.m, responseTo)
	p.mu.Unlock()
	if mu != nil {
		mu.Unlock()
	}
}

// releaseAll releases every lock still held (the connection ended).
func (p *frontPending) releaseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, mu := range p.m {
		mu.Unlock()
		delete(p.m, id)
	}
}
