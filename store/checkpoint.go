package store

import (
	"errors"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// In WAL mode SQLite copies the log back into the database file (a
// checkpoint) once the log passes 1,000 pages, and by default the
// connection whose commit crossed that line does it, fsyncs included,
// before its COMMIT returns, and again after every later commit until the
// log restarts. A checkpoint may not copy pages that a reader's snapshot
// still needs, and a crawl reads all the time, so the log rarely empties
// at once: on Direct's one write connection per file, whose commits every
// fetch goroutine of a crawl waits on, that was a checkpoint with two
// fsyncs at nearly every commit (the same rule run in a goroutine of its
// own made 67 fsyncs, 104 ms, in a runtime trace of a 420 ms warm replay
// of make bench's incremental site). The write connection
// now only notes the log's length after each commit (a WAL hook, which
// also turns SQLite's own automatic checkpoint off on it). A goroutine
// with a connection of its own checkpoints (PASSIVE: it waits for no
// reader and no writer) each time the log has grown by
// walCheckpointFrames, while the writes go on. Only when the log reaches
// walHardFrames does the writer checkpoint itself after its commit, as
// SQLite would have: what is left to copy then is what was written since
// the last checkpoint, and the log restarts from its beginning at the
// next write, so it stays bounded (64 MiB with 4 KiB pages). A checkpoint
// is as safe on any connection of the file: WAL's own rules decide what it
// may copy, and it syncs as the connection's synchronous setting (the
// server's) says.
//
// The steps are large because each checkpoint's two fsyncs are the cost:
// an fsync holds one of the process's Ps (GOMAXPROCS) until the Go
// scheduler's monitor takes it back, which on a busy process can be
// milliseconds later, so on 2 cores an fsync idled half the crawl's CPU
// for much of its length. Traces of the warm replay counted 7–9 fsyncs of
// 5–10 ms with steps of 1,000 pages, 1–3 with steps of 4,000. Measured
// with the warm replay of make bench's incremental site (nine replays
// each, alternating builds):
// medians 212 and 248 ms with steps of 4,000 pages, 228 and 354 ms with
// steps of 1,000 and a hard limit of 4,000, 282 and 366 ms with SQLite's
// own checkpoints.

// walCheckpointFrames is the growth of the log (in pages) that wakes the
// checkpointer: 16 MiB with 4 KiB pages, four times SQLite's default
// wal_autocheckpoint.
var walCheckpointFrames = 4000

// walHardFrames is the log length at which the writer checkpoints itself.
var walHardFrames = 4 * walCheckpointFrames

// walHook is SQLite's WAL hook of a write connection (sqlite3_wal_hook):
// after each commit it stores the number of pages in the log where arg
// points.
func walHook(_ *libc.TLS, arg, _, _ uintptr, frames int32) int32 {
	*(*int32)(cptr(arg)) = frames
	return sqlite3.SQLITE_OK
}

// cWALHook is walHook as SQLite calls a function pointer: the address of
// its func value, which for a top-level function never moves.
var cWALHook = *(*uintptr)(unsafe.Pointer(&struct {
	f func(*libc.TLS, uintptr, uintptr, uintptr, int32) int32
}{walHook}))

// hookWAL makes c note its log's length after each commit (walFrames), in
// place of SQLite's automatic checkpoint.
func (c *rawConn) hookWAL() error {
	p := libc.Xmalloc(c.tls, 4)
	if p == 0 {
		return errors.New("wal hook: out of memory")
	}
	*(*int32)(cptr(p)) = 0
	c.walLen = p
	sqlite3.Xsqlite3_wal_hook(c.tls, c.db, cWALHook, p)
	return nil
}

// walFrames is the number of pages in the log after c's last commit; 0
// without hookWAL.
func (c *rawConn) walFrames() int {
	if c.walLen == 0 {
		return 0
	}
	return int(*(*int32)(cptr(c.walLen)))
}

// checkpoint copies what it can of the log into the database file without
// waiting for anyone (SQLITE_CHECKPOINT_PASSIVE). Another checkpoint under
// way (the server's own) is not an error: it does the same work.
func (c *rawConn) checkpoint() error {
	rc := sqlite3.Xsqlite3_wal_checkpoint_v2(c.tls, c.db, 0, sqlite3.SQLITE_CHECKPOINT_PASSIVE, 0, 0)
	if rc != sqlite3.SQLITE_OK && rc != sqlite3.SQLITE_BUSY {
		return c.errorf(rc, "checkpoint")
	}
	return nil
}

// checkpointer checkpoints one database file off the write path.
type checkpointer struct {
	uri  string
	kick chan struct{} // buffered: kicks during a checkpoint make one more
	done chan struct{} // closed when the goroutine has ended

	background, inline atomic.Int64 // checkpoints run, by whom
	lastErr            atomic.Pointer[error]

	// The writer's own (afterCommit): the log's length after its last
	// commit, and the lengths at which it next wakes the checkpointer and
	// checkpoints itself.
	frames, nextKick, nextInline int
}

func startCheckpointer(uri string) *checkpointer {
	k := &checkpointer{uri: uri, kick: make(chan struct{}, 1), done: make(chan struct{}),
		nextKick: walCheckpointFrames, nextInline: walHardFrames}
	go k.loop()
	return k
}

// loop checkpoints on each kick until stop. Its connection is opened at
// the first kick. A failed checkpoint is tried again at the next kick (the
// writer's hard limit bounds the log meanwhile); its error is kept in
// lastErr, which only the tests read: a lasting cause (a full disk) fails
// the writes too, which report it.
func (k *checkpointer) loop() {
	defer close(k.done)
	var conn *rawConn
	defer func() {
		if conn != nil {
			conn.close()
		}
	}()
	for range k.kick {
		if conn == nil {
			c, err := openRawConn(k.uri, true)
			if err != nil {
				k.lastErr.Store(&err)
				continue
			}
			conn = c
		}
		if err := conn.checkpoint(); err != nil {
			k.lastErr.Store(&err)
			continue
		}
		k.background.Add(1)
	}
}

// afterCommit is called by the writer, on its connection c, after each
// commit: it wakes the checkpointer each time the log has grown by
// walCheckpointFrames, and checkpoints on c itself once the log is
// walHardFrames long, and again each walCheckpointFrames later while it
// has not restarted (a reader held the pages back).
func (k *checkpointer) afterCommit(c *rawConn) {
	n := c.walFrames()
	if n < k.frames { // the log restarted
		k.nextKick, k.nextInline = walCheckpointFrames, walHardFrames
	}
	k.frames = n
	switch {
	case n >= k.nextInline:
		k.nextInline = n + walCheckpointFrames
		if c.checkpoint() == nil {
			k.inline.Add(1)
		}
	case n >= k.nextKick:
		k.nextKick = n + walCheckpointFrames
		select {
		case k.kick <- struct{}{}:
		default:
		}
	}
}

// stop ends the checkpointer once its checkpoint under way, if any, is
// done. The writer must not call afterCommit any more.
func (k *checkpointer) stop() {
	close(k.kick)
	<-k.done
}
