package store

import (
	"encoding/binary"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// opMsg builds an OP_MSG request with flags, a body and, when seq is not
// nil, a document sequence "updates" before the body (the order a client
// may choose).
func opMsg(t *testing.T, reqID int32, flags wiremessage.MsgFlag, body bson.D, seq []bson.D) []byte {
	t.Helper()
	raw, err := bson.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	idx, b := wiremessage.AppendHeaderStart(nil, reqID, 0, wiremessage.OpMsg)
	b = wiremessage.AppendMsgFlags(b, flags)
	if seq != nil {
		b = wiremessage.AppendMsgSectionType(b, wiremessage.DocumentSequence)
		start := len(b)
		b = append(b, 0, 0, 0, 0)
		b = append(b, "updates"...)
		b = append(b, 0)
		for _, d := range seq {
			r, err := bson.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, r...)
		}
		binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start))
	}
	b = wiremessage.AppendMsgSectionType(b, wiremessage.SingleDocument)
	b = append(b, raw...)
	if flags&wiremessage.ChecksumPresent != 0 {
		b = append(b, 0, 0, 0, 0)
	}
	return bsoncore.UpdateLength(b, idx, int32(len(b)-int(idx)))
}

// TestWireUpdate: the query front locks what updates a document (update
// and findAndModify, whatever the order of their sections) and nothing
// else; a message that wants no reply is not locked, since its end cannot
// be seen.
func TestWireUpdate(t *testing.T) {
	update := bson.D{{Key: "update", Value: "runs"}, {Key: "ordered", Value: true}, {Key: "$db", Value: "crawlcache"}}
	one := []bson.D{{{Key: "q", Value: bson.D{{Key: "_id", Value: "r"}}}, {Key: "u", Value: bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}}}}
	tests := []struct {
		name     string
		msg      []byte
		db, coll string
		ok       bool
	}{
		{"update, sequence first", opMsg(t, 7, 0, update, one), "crawlcache", "runs", true},
		{"update, sequence in the body", opMsg(t, 7, 0, append(update, bson.E{Key: "updates", Value: bson.A{one[0]}}), nil), "crawlcache", "runs", true},
		{"update with a checksum", opMsg(t, 7, wiremessage.ChecksumPresent, update, one), "crawlcache", "runs", true},
		{"findAndModify", opMsg(t, 7, 0, bson.D{{Key: "findAndModify", Value: "host_leases"}, {Key: "$db", Value: "crawlcache"}}, nil), "crawlcache", "host_leases", true},
		{"unacknowledged update", opMsg(t, 7, wiremessage.MoreToCome, update, one), "", "", false},
		{"insert", opMsg(t, 7, 0, bson.D{{Key: "insert", Value: "runs"}, {Key: "$db", Value: "crawlcache"}}, nil), "", "", false},
		{"find", opMsg(t, 7, 0, bson.D{{Key: "find", Value: "runs"}, {Key: "$db", Value: "crawlcache"}}, nil), "", "", false},
		{"update without $db", opMsg(t, 7, 0, bson.D{{Key: "update", Value: "runs"}}, one), "", "", false},
		{"truncated", opMsg(t, 7, 0, update, one)[:30], "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, coll, reqID, ok := wireUpdate(tt.msg)
			if ok != tt.ok || (ok && (db != tt.db || coll != tt.coll || reqID != 7)) {
				t.Errorf("wireUpdate = %q, %q, %d, %v; want %q, %q, 7, %v", db, coll, reqID, ok, tt.db, tt.coll, tt.ok)
			}
		})
	}
}

// TestFrontPendingReleases: a lock taken for a forwarded update is
// released by the reply to that request, not by another's, and by the end
// of the connection.
func TestFrontPendingReleases(t *testing.T) {
	var locks updateLocks
	a, b := locks.of("db", "a"), locks.of("db", "b")
	var p frontPending
	a.Lock()
	p.add(1, a)
	b.Lock()
	p.add(2, b)
	p.done(opMsgReply(1, bsoncore.NewDocumentBuilder().AppendDouble("ok", 1).Build()))
	if !a.TryLock() {
		t.Fatal("the reply to request 1 did not release its lock")
	}
	a.Unlock()
	if b.TryLock() {
		t.Fatal("the reply to request 1 released the lock of request 2")
	}
	p.releaseAll()
	if !b.TryLock() {
		t.Fatal("the end of the connection did not release the lock of request 2")
	}
}
