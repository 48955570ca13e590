package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// The embedded server's public address is served by a query front: every
// message a client sends goes, as it came, to FerretDB's own listener on
// an internal loopback port, except queries on the front collections
// (frontplan.go) that the front can answer exactly from SQLite with the
// indexes it keeps on FerretDB's tables. FerretDB v1 decodes every
// document of a collection for any filter but _id equality: a query by
// status over 20,000 page summaries took 1.4–2.4 s of CPU through it.
//
// Answered here: find (with sort, skip, limit, batchSize and projections
// of top-level fields), count, the count aggregation of countDocuments
// ([{$match}, {$skip}, {$limit}, {$group: {_id: <number>, n: {$sum: 1}}}])
// and a count by a front field, whose filter is equality, $in or a range
// on a front field, a regular expression on a string field, _id equality,
// or an $and of these; getMore and killCursors of the cursors it opened.
// Everything else, including anything it is unsure of, is FerretDB's. The
// store's own client in this process talks to FerretDB directly.

// frontMaxMessage bounds a message read from a client or from FerretDB
// (MongoDB's maxMessageSizeBytes).
const frontMaxMessage = 48_000_000

// front is the query front of one embedded server.
type front struct {
	ln      net.Listener
	backend string       // FerretDB's host:port
	files   *frontFiles  // nil: forward everything (the direct path is off)
	cursors frontCursors // the cursors of answered finds
	updates *updateLocks // held by forwarded updates until answered (updatelock.go)
	log     *slog.Logger

	answered atomic.Int64 // commands answered here (tests)

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// startFront listens on listen and serves it, forwarding to backend. files
// nil forwards every message.
func startFront(listen, backend string, files *frontFiles, updates *updateLocks, logger *slog.Logger) (*front, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	f := &front{ln: ln, backend: backend, files: files, updates: updates, log: logger, conns: map[net.Conn]struct{}{}}
	f.cursors.m = map[int64]*frontCursor{}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// uri is the connection string of the front's address.
func (f *front) uri() string { return "mongodb://" + f.ln.Addr().String() + "/" }

func (f *front) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return // closed
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(c)
			f.handle(c)
		}()
	}
}

func (f *front) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *front) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
}

// close stops listening, closes every client connection and waits for
// their goroutines.
func (f *front) close() {
	f.mu.Lock()
	f.closed = true
	_ = f.ln.Close()
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	if f.files != nil {
		f.files.close()
	}
}

// handle serves one client connection with one connection to FerretDB:
// FerretDB's replies are copied back whole messages at a time, and the
// front's own answers are written between them. An update forwarded holds
// its collection's update lock until FerretDB answers it.
func (f *front) handle(client net.Conn) {
	defer client.Close()
	up, err := net.Dial("tcp", f.backend)
	if err != nil {
		f.log.Warn("embedded store: query front cannot reach the server", "err", err)
		return
	}
	defer up.Close()
	var wmu sync.Mutex // one message at a time to the client
	var pending frontPending
	defer pending.releaseAll()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer client.Close()
		for {
			msg, err := readWireMessage(up)
			if err != nil {
				return
			}
			pending.done(msg)
			wmu.Lock()
			_, err = client.Write(msg)
			wmu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for {
		msg, err := readWireMessage(client)
		if err != nil {
			break
		}
		if reply := f.answer(ctx, msg); reply != nil {
			wmu.Lock()
			_, err = client.Write(reply)
			wmu.Unlock()
		} else {
			f.lockUpdate(msg, &pending)
			_, err = up.Write(msg)
		}
		if err != nil {
			break
		}
	}
	_ = up.Close()
	<-done
}

// lockUpdate takes the update lock of the collection msg updates, if it is
// an update, and leaves it to pending until FerretDB answers.
func (f *front) lockUpdate(msg []byte, pending *frontPending) {
	if f.updates == nil {
		return
	}
	db, coll, reqID, ok := wireUpdate(msg)
	if !ok {
		return
	}
	mu := f.updates.of(db, coll)
	mu.Lock()
	pending.add(reqID, mu)
}

// readWireMessage reads one whole message (header included).
func readWireMessage(r io.Reader) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := int32(binary.LittleEndian.Uint32(head[:]))
	if n < 16 || n > frontMaxMessage {
		return nil, fmt.Errorf("wire message of %d bytes", n)
	}
	msg := make([]byte, n)
	copy(msg, head[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// answer returns the front's reply to msg, or nil when FerretDB must
// answer it. Only OP_MSG commands without flags and with one document
// (no document sequences) are read.
func (f *front) answer(ctx context.Context, msg []byte) []byte {
	if f.files == nil {
		return nil
	}
	_, reqID, _, op, rest, ok := wiremessage.ReadHeader(msg)
	if !ok || op != wiremessage.OpMsg {
		return nil
	}
	flags, rest, ok := wiremessage.ReadMsgFlags(rest)
	if !ok || flags != 0 {
		return nil
	}
	st, rest, ok := wiremessage.ReadMsgSectionType(rest)
	if !ok || st != wiremessage.SingleDocument {
		return nil
	}
	cmd, rest, ok := wiremessage.ReadMsgSectionSingleDocument(rest)
	if !ok || len(rest) != 0 || cmd.Validate() != nil {
		return nil
	}
	doc, err := f.command(ctx, cmd)
	if err != nil {
		if !errors.Is(err, errFrontUnsupported) {
			f.log.Debug("embedded store: query front leaves a command to the server", "err", err)
		}
		return nil
	}
	f.answered.Add(1)
	return opMsgReply(reqID, doc)
}

// command answers cmd, or returns errFrontUnsupported (or another error:
// FerretDB answers then too).
func (f *front) command(ctx context.Context, cmd bsoncore.Document) (bsoncore.Document, error) {
	first, err := cmd.IndexErr(0)
	if err != nil {
		return nil, errFrontUnsupported
	}
	db, ok := cmd.Lookup("$db").StringValueOK()
	if !ok {
		return nil, errFrontUnsupported
	}
	switch first.Key() {
	case "find", "count", "aggregate":
		name, ok := first.Value().StringValueOK()
		coll := frontCollectionOf(db, name)
		if !ok || coll == nil {
			return nil, errFrontUnsupported
		}
		switch first.Key() {
		case "find":
			return f.find(ctx, coll, cmd)
		case "count":
			return f.count(ctx, coll, cmd)
		default:
			return f.aggregate(ctx, coll, cmd)
		}
	case "getMore":
		return f.getMore(db, cmd)
	case "killCursors":
		return f.killCursors(db, cmd)
	}
	return nil, errFrontUnsupported
}

// opMsgReply is an OP_MSG reply to request reqID holding doc.
func opMsgReply(reqID int32, doc bsoncore.Document) []byte {
	idx, b := wiremessage.AppendHeaderStart(make([]byte, 0, len(doc)+21), wiremessage.NextRequestID(), reqID, wiremessage.OpMsg)
	b = wiremessage.AppendMsgFlags(b, 0)
	b = wiremessage.AppendMsgSectionType(b, wiremessage.SingleDocument)
	b = append(b, doc...)
	binary.LittleEndian.PutUint32(b[idx:], uint32(len(b)-int(idx)))
	return b
}
