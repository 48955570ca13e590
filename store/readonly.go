package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNoDataDir is wrapped by Open and StartServer when a read-only opening
// names a data directory that does not exist: a command that only reads
// has nothing to show, and must not create an empty store to say so.
var ErrNoDataDir = errors.New("data directory does not exist")

// readOnlyFS reports whether err says the file system or the directory
// refuses writes (a read-only mount, or permissions).
func readOnlyFS(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)
}

// checkDataDir returns an error wrapping ErrNoDataDir when dir does not
// exist, and an error when it is not a directory.
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s (nothing to read; run a job first, or point --data-dir at an existing data directory or --store at a server)", ErrNoDataDir, dir)
	case err != nil:
		return fmt.Errorf("data directory %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	return nil
}

// readOnlySQLiteURL is FerretDB's SQLite URL for a data directory that
// cannot be written. SQLite opens a WAL database read-only only when its
// -wal and -shm files exist, or when told the file is immutable. After a
// clean stop there is no -wal file, and immutable is exact; a non-empty
// -wal file (its writer was killed) holds commits that immutable would
// ignore, so then the -shm must be there and SQLite reads both.
func readOnlySQLiteURL(abs string) (string, error) {
	wals, _ := filepath.Glob(filepath.Join(abs, "*.sqlite-wal"))
	for _, wal := range wals {
		fi, err := os.Stat(wal)
		if err != nil || fi.Size() == 0 {
			continue
		}
		shm := wal[:len(wal)-len("-wal")] + "-shm"
		if _, err := os.Stat(shm); err != nil {
			return "", fmt.Errorf("data directory %s is read-only and %s holds writes not yet in %s, which SQLite cannot read without %s: copy the directory somewhere writable and point --data-dir at the copy",
				abs, filepath.Base(wal), filepath.Base(wal[:len(wal)-len("-wal")]), filepath.Base(shm))
		}
		return "file:" + abs + "/?mode=ro", nil
	}
	return "file:" + abs + "/?mode=ro&immutable=1", nil
}

// startReadOnly serves the read-only directory abs. lock, if the directory
// has a lock file, is taken shared: a process that still holds it
// exclusively (the directory was made read-only under it) is reported as a
// *BusyError, to be reached by its URI.
func startReadOnly(abs, listen string, lock *os.File, logger *slog.Logger) (*Server, error) {
	if lock != nil {
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
			lock.Close()
			if owner, rerr := readOwner(abs); rerr == nil {
				return nil, &BusyError{Dir: abs, Owner: owner}
			}
			return nil, fmt.Errorf("lock read-only data directory %s: %w", abs, err)
		}
	}
	sqliteURL, err := readOnlySQLiteURL(abs)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	s, _, err := serve(abs, listen, sqliteURL, lock, logger)
	if err != nil {
		return nil, err
	}
	s.readOnly = true
	logger.Debug("data directory is read-only; serving it read-only", "dir", abs)
	return s, nil
}
