package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// The embedded store keeps one SQLite file per MongoDB database in its data
// directory ("<db>.sqlite", with "-wal" and "-shm" beside it while in use).
// This file reads those files for the `db` maintenance commands: check,
// recover, compact, and the sizes `cache stats` shows. None of it goes
// through the server.

const sqliteExt = ferretFileExt

// DataFile is one database file of a data directory.
type DataFile struct {
	// Name is the file name, e.g. "http_cache.sqlite"; Database is the
	// MongoDB database it holds ("http_cache").
	Name, Database string
	// Path is the file's path.
	Path string
	// Size is the file's size in bytes; WALSize the size of its -wal file
	// (writes not yet copied into the file), 0 when there is none.
	Size, WALSize int64
}

// DataFiles lists the database files of the data directory dir, by name.
// It returns an error wrapping ErrNoDataDir when dir does not exist.
func DataFiles(dir string) ([]DataFile, error) {
	if err := checkDataDir(dir); err != nil {
		return nil, err
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*"+sqliteExt))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var files []DataFile
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("data file %s: %w", p, err)
		}
		f := DataFile{Name: filepath.Base(p), Path: p, Size: fi.Size()}
		f.Database = strings.TrimSuffix(f.Name, sqliteExt)
		if wi, err := os.Stat(p + "-wal"); err == nil {
			f.WALSize = wi.Size()
		}
		files = append(files, f)
	}
	return files, nil
}

// openSnapshot opens f for reading without changing it: immutable when no
// -wal file holds writes, otherwise a private copy of the file and its
// -wal (SQLite then applies the WAL to the copy). close removes the copy.
func openSnapshot(f DataFile) (db *sql.DB, close func(), err error) {
	if f.WALSize == 0 {
		db, err := sql.Open("sqlite", "file:"+f.Path+"?mode=ro&immutable=1")
		if err != nil {
			return nil, nil, err
		}
		db.SetMaxOpenConns(1)
		return db, func() { db.Close() }, nil
	}
	tmp, err := os.MkdirTemp("", "crawlcache-snapshot-")
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: %w", f.Name, err)
	}
	cleanup := func() { os.RemoveAll(tmp) }
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(f.Path+suffix, filepath.Join(tmp, f.Name+suffix)); err != nil {
			cleanup()
			if suffix == "-wal" && errors.Is(err, fs.ErrNotExist) {
				// The last connection of a store that was closing
				// checkpointed the WAL into the file and removed it after
				// DataFiles saw it: the file alone now holds every write.
				f.WALSize = 0
				return openSnapshot(f)
			}
			return nil, nil, fmt.Errorf("snapshot %s: %w", f.Name, err)
		}
	}
	db, err = sql.Open("sqlite", "file:"+filepath.Join(tmp, f.Name))
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	db.SetMaxOpenConns(1)
	return db, func() { db.Close(); cleanup() }, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// FileCheck is the verdict of Check on one database file.
type FileCheck struct {
	DataFile
	// OK is true when SQLite's integrity check found nothing wrong.
	OK bool
	// Problems are what the check reported (at most 20 lines), or why the
	// file could not be read at all.
	Problems []string
}

// Check runs SQLite's integrity check on every database file of the data
// directory dir (a full check: every page, every index entry) and returns
// one verdict per file. It reads the files without changing them.
// It returns a *BusyError when a process serves the directory: stop it
// first (its files change under the check).
func Check(ctx context.Context, dir string) ([]FileCheck, error) {
	if err := checkDataDir(dir); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir, false)
	if err != nil {
		return nil, err
	}
	defer unlock(lock)
	return check(ctx, dir, "integrity_check")
}

func check(ctx context.Context, dir, pragma string) ([]FileCheck, error) {
	files, err := DataFiles(dir)
	if err != nil {
		return nil, err
	}
	out := make([]FileCheck, 0, len(files))
	for _, f := range files {
		out = append(out, checkFile(ctx, f, pragma))
	}
	return out, nil
}

func checkFile(ctx context.Context, f DataFile, pragma string) FileCheck {
	fc := FileCheck{DataFile: f}
	db, closeDB, err := openSnapshot(f)
	if err != nil {
		fc.Problems = []string{err.Error()}
		return fc
	}
	defer closeDB()
	rows, err := db.QueryContext(ctx, "PRAGMA "+pragma+"(20)")
	if err != nil {
		fc.Problems = []string{err.Error()}
		return fc
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			fc.Problems = append(fc.Problems, err.Error())
			break
		}
		for _, l := range strings.Split(line, "\n") {
			if l != "ok" && l != "*** in database main ***" && len(fc.Problems) < 20 {
				fc.Problems = append(fc.Problems, l)
			}
		}
	}
	if err := rows.Err(); err != nil {
		fc.Problems = append(fc.Problems, err.Error())
	}
	fc.OK = len(fc.Problems) == 0
	return fc
}

// IsCorrupt reports whether err is SQLite's answer for a damaged file
// (SQLITE_CORRUPT, 11, "database disk image is malformed", or
// SQLITE_NOTADB, 26, "file is not a database"), as the driver or the
// embedded server passes it on.
func IsCorrupt(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "database disk image is malformed") || strings.Contains(msg, "file is not a database")
}

// CorruptError is a damaged embedded store, as DiagnoseCorrupt reports it.
type CorruptError struct {
	// Dir is the data directory.
	Dir string
	// Files are the damaged files found by a quick check (empty when the
	// check found none: then Err is the only clue).
	Files []string
	// Err is the error that showed the damage.
	Err error
}

// Error names the damaged file and the way out.
func (e *CorruptError) Error() string {
	what := "a file of the embedded store in " + e.Dir
	if len(e.Files) > 0 {
		what = strings.Join(e.Files, ", ")
	}
	cause := "SQLite: file is not a database"
	if strings.Contains(e.Err.Error(), "database disk image is malformed") {
		cause = "SQLite: database disk image is malformed"
	}
	return fmt.Sprintf("%s is damaged (%s). Nothing was changed. See what is damaged with `crawlcache db check --data-dir %s`; "+
		"copy what can still be read into a new data directory with `crawlcache db recover --data-dir %s --out NEW_DIR` and use --data-dir NEW_DIR from then on",
		what, cause, e.Dir, e.Dir)
}

// Unwrap returns the error that showed the damage.
func (e *CorruptError) Unwrap() error { return e.Err }

// DiagnoseCorrupt returns err unchanged unless it says a file of the
// embedded store in dir is damaged (IsCorrupt); then it returns a
// *CorruptError naming the damaged files (found with SQLite's quick check)
// and the way out.
func DiagnoseCorrupt(ctx context.Context, dir string, err error) error {
	var ce *CorruptError
	if dir == "" || !IsCorrupt(err) || errors.As(err, &ce) {
		return err
	}
	ce = &CorruptError{Dir: dir, Err: err}
	if checks, cerr := check(ctx, dir, "quick_check"); cerr == nil {
		for _, c := range checks {
			if !c.OK {
				ce.Files = append(ce.Files, c.Path)
			}
		}
	}
	return ce
}

// lockDir takes the data directory's lock, as a server would, for
// maintenance: shared for reading the files (check, recover: no server can
// start meanwhile), exclusive for rewriting them (compact). It creates no
// file for a shared lock. It returns a *BusyError naming the owner when a
// process serves the directory. Closing the returned file (nil when there
// is no lock file) releases the lock.
func lockDir(dir string, exclusive bool) (*os.File, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(abs, lockFile)
	var lock *os.File
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
		lock, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	} else if lock, err = os.Open(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil && exclusive && readOnlyFS(err) {
		return nil, fmt.Errorf("data directory %s cannot be written (%v): this command rewrites its files", abs, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lock data directory %s: %w", abs, err)
	}
	if err := syscall.Flock(int(lock.Fd()), how|syscall.LOCK_NB); err != nil {
		lock.Close()
		if owner, rerr := readOwner(abs); rerr == nil {
			return nil, fmt.Errorf("%w: stop it first (this command works on the files directly)", &BusyError{Dir: abs, Owner: owner})
		}
		return nil, fmt.Errorf("data directory %s is locked by another process: stop it and retry", abs)
	}
	return lock, nil
}

// unlock releases a lock taken by lockDir.
func unlock(lock *os.File) {
	if lock != nil {
		lock.Close()
	}
}
