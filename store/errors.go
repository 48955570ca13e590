package store

import (
	"errors"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsFull reports whether err says that the store's disk is full: SQLite's
// SQLITE_FULL on the embedded store, read directly or through FerretDB
// (whose error carries SQLite's message), or MongoDB's OutOfDiskSpace
// (14031). Nothing written before the error is lost: the write that got it
// did not happen, and a run stopped by it resumes once there is room.
func IsFull(err error) bool {
	if err == nil {
		return false
	}
	if code, ok := sqliteCode(err); ok && code&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	var me mongo.ServerError
	if errors.As(err, &me) && me.HasErrorCode(14031) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "database or disk is full") || strings.Contains(msg, "No space left on device")
}

// sqliteCode returns the SQLite result code err carries, from
// modernc.org/sqlite's driver or from Direct's own connections
// (rawconn.go).
func sqliteCode(err error) (int, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code(), true
	}
	var re *sqliteError
	if errors.As(err, &re) {
		return re.code, true
	}
	return 0, false
}

// IsUnavailable reports whether err says that the store did not answer: it
// wraps ErrUnreachable, or the driver could not select a server, lost or
// could not open a connection, or timed out waiting for a reply. Errors
// the server returned (a duplicate key, a bad query) are not, and neither is
// a cancelled context: the caller stopped, the store did not.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnreachable) || mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
		return true
	}
	var sse topology.ServerSelectionError
	var ce topology.ConnectionError
	var wqe topology.WaitQueueTimeoutError
	// Not any net.Error: *fs.PathError is one too.
	return errors.As(err, &sse) || errors.As(err, &ce) || errors.As(err, &wqe)
}

// IsNamespaceNotFound reports MongoDB's NamespaceNotFound (26): the
// collection does not exist (yet).
func IsNamespaceNotFound(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(26)
}

// IsIndexNotFound reports MongoDB's IndexNotFound (27).
func IsIndexNotFound(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(27)
}

// isNamespaceExists reports MongoDB's NamespaceExists (48): the collection
// is there already.
func isNamespaceExists(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(48)
}
