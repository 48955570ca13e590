package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
)

// Compaction is what Compact did to one database file.
type Compaction struct {
	// Name is the file name.
	Name string
	// Before and After are the bytes of the file and its -wal file.
	Before, After int64
}

// Compact rewrites every database file of the data directory dir to the
// space its data needs (SQLite VACUUM, after copying the WAL into the
// file): SQLite never gives back the pages of deleted documents, so a
// directory only grows while a cache is purged and refilled. It takes the
// directory's lock for the whole time, and returns a *BusyError (no file
// changed) when another process serves it. It needs free disk space for a
// copy of the largest file.
func Compact(ctx context.Context, dir string) ([]Compaction, error) {
	files, err := DataFiles(dir)
	if err != nil {
		return nil, err
	}
	lock, err := lockDir(dir, true)
	if err != nil {
		return nil, err
	}
	defer unlock(lock)
	var out []Compaction
	for _, f := range files {
		c := Compaction{Name: f.Name, Before: f.Size + f.WALSize}
		if err := vacuum(ctx, f.Path); err != nil {
			return out, DiagnoseCorrupt(ctx, dir, fmt.Errorf("compact %s: %w", f.Path, err))
		}
		if fi, err := os.Stat(f.Path); err == nil {
			c.After = fi.Size()
		}
		if wi, err := os.Stat(f.Path + "-wal"); err == nil {
			c.After += wi.Size()
		}
		out = append(out, c)
	}
	return out, nil
}

func vacuum(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA wal_checkpoint(TRUNCATE)", "VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}
