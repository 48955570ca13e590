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
// before its COMMIT returns. Direct's one write connection per file
// commits the groups that every fetch goroutine of a crawl waits on, so
// such a checkpoint stalled the whole crawl for the length of its fsyncs:
// in a warm replay of make bench's incremental site, the process's CPU fell
// to nothing for 20–40 ms a few times a second. The write connection now
// only notes the log's length after each commit (a WAL hook, which also
// turns SQLite's own automatic checkpoint off on it), and a goroutine with
// a connection of its own checkpoints (PASSIVE: it waits for no reader and
// no writer) while the writes go on. A checkpoint is as safe on any
// connection of the file: WAL's own rules decide what it may copy, and it
// syncs as the connection's synchronous setting (the server's) says.
//
// When the log reaches walHardFrames anyway (the checkpointer cannot keep
// up, or could not open its connection), the writer checkpoints itself
// after its commit, as SQLite would have, so the log stays bounded.

// walCheckpointFrames is the log length (in pages) at which the
// checkpointer is woken: SQLite's default wal_autocheckpoint.
var walCheckpointFrames = 1000

// walHardFrames is the log length at which the writer checkpoints itself.
var walHardFrames = 16 * walCheckpointFrames

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
}

func startCheckpointer(uri string) *checkpointer {
	k := &checkpointer{uri: uri, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go k.loop()
	return k
}

// loop checkpoints on each kick until stop. Its connection is opened at
// the first kick; an error is kept for stop's caller and the next kick
// tries again (the writer's hard limit bounds the log meanwhile).
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
// commit: it wakes the checkpointer once the log is long enough, and
// checkpoints on c itself once it is too long.
func (k *checkpointer) afterCommit(c *rawConn) {
	switch n := c.walFrames(); {
	case n >= walHardFrames:
		if c.checkpoint() == nil {
			k.inline.Add(1)
		}
	case n >= walCheckpointFrames:
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
