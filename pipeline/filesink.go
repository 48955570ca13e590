package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// fileFormat is what differs between the JSONL and CSV sinks.
type fileFormat interface {
	// header is written at the start of a new file (nil for none).
	header() []byte
	// encode appends one record for it, ending with a newline.
	encode(buf *bytes.Buffer, it Item) error
	// scan reads a partial file back: the IDs of its complete records and
	// the length of the prefix they occupy. Whatever follows (a record torn
	// by a crash) is to be dropped. An error means the file is not one this
	// sink wrote (for example a CSV header with other columns).
	scan(data []byte) (ids []string, good int64, err error)
	// firstRun returns the run_id of the first record in the start of a
	// file, or "" when there is none.
	firstRun(head []byte) string
}

// fileSink writes items to <path>.<runID>.partial while the run goes on,
// and renames it to path on Commit. Every Write is flushed and fsynced
// before it returns. Item IDs already in the file are kept in memory (about
// 100 bytes per item, for the run) so no item is written twice.
type fileSink struct {
	path   string
	format fileFormat

	mu      sync.Mutex
	f       *os.File
	partial string
	seen    map[string]struct{}
	buf     bytes.Buffer
	err     error // sticky: the file is in an unknown state
	// committed: Open found this run's output already committed at path
	// (its partial file renamed): writes and Commit leave it alone.
	committed bool
}

var (
	_ Sink     = (*fileSink)(nil)
	_ Finisher = (*fileSink)(nil)
)

// partialPath is where run runID's output for path grows until Commit.
func partialPath(path, runID string) string {
	return path + "." + runID + ".partial"
}

func (s *fileSink) Open(ctx context.Context, runID string, resume bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		return fmt.Errorf("open %s: already open", s.path)
	}
	if runID == "" || strings.ContainsAny(runID, `/\`) || runID == "." || runID == ".." {
		return fmt.Errorf("open %s: run id %q cannot be part of a file name", s.path, runID)
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("open %s: %w", s.path, err)
	}
	s.partial = partialPath(s.path, runID)
	s.seen = make(map[string]struct{})
	s.err = nil
	s.committed = false
	if resume {
		done, err := s.committedBy(runID)
		if err != nil {
			return fmt.Errorf("resume %s: %w", s.path, err)
		}
		if done {
			// A resume must never replace a committed output with what
			// the (drained) run would write again.
			s.committed = true
			return nil
		}
	}
	flags := os.O_RDWR | os.O_CREATE
	if !resume {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(s.partial, flags, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.path, err)
	}
	if err := s.recover(f); err != nil {
		f.Close()
		return fmt.Errorf("resume %s: %w", s.partial, err)
	}
	s.f = f
	return nil
}

// recover reads back what an interrupted run left in f, cuts a torn last
// record, remembers the IDs and positions f at the end, writing the header
// if the file is empty.
func (s *fileSink) recover(f *os.File) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	ids, good, err := s.format.scan(data)
	if err != nil {
		return err
	}
	for _, id := range ids {
		s.seen[id] = struct{}{}
	}
	if good != int64(len(data)) {
		if err := f.Truncate(good); err != nil {
			return err
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		return err
	}
	if good == 0 {
		if h := s.format.header(); h != nil {
			if _, err := f.Write(h); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *fileSink) Write(ctx context.Context, items []Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed {
		return nil // every item of the run is in the committed file
	}
	if s.f == nil {
		return fmt.Errorf("write items to %s: %w", s.path, ErrNotOpen)
	}
	if s.err != nil {
		return s.err
	}
	s.buf.Reset()
	var added []string
	for _, it := range items {
		if _, ok := s.seen[it.ID]; ok {
			continue
		}
		if err := s.format.encode(&s.buf, it); err != nil {
			return fmt.Errorf("write item %s to %s: %w", it.ID, s.path, err)
		}
		s.seen[it.ID] = struct{}{}
		added = append(added, it.ID)
	}
	if len(added) == 0 {
		return nil
	}
	_, err := s.f.Write(s.buf.Bytes())
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		// Part of the batch may be on disk: a resume reads the file back,
		// so forget the batch and refuse further writes.
		for _, id := range added {
			delete(s.seen, id)
		}
		s.err = fmt.Errorf("write %d items to %s: %w", len(added), s.partial, err)
		return s.err
	}
	return nil
}

func (s *fileSink) Commit(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed {
		s.committed = false
		return nil
	}
	if s.f == nil {
		return fmt.Errorf("commit %s: %w", s.path, ErrNotOpen)
	}
	if s.err != nil {
		return s.err
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err == nil {
		err = os.Rename(s.partial, s.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(s.path))
	}
	if err != nil {
		return fmt.Errorf("commit %s: %w", s.path, err)
	}
	s.seen = nil
	return nil
}

// committedBy reports whether run runID's output was already committed:
// its partial file is gone and the file at path holds the run's records
// (the rename of Commit happened, and the process stopped before anyone
// recorded it). An empty output cannot be told apart and reports false.
func (s *fileSink) committedBy(runID string) (bool, error) {
	if _, err := os.Stat(s.partial); !errors.Is(err, fs.ErrNotExist) {
		return false, nil // there is a partial file to resume (or Open reports why not)
	}
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, 64<<10)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	return s.format.firstRun(head[:n]) == runID, nil
}

// Finish completes the Commit of run runID after the process that began it
// stopped (a failure or a crash between the steps of committing the run's
// outputs): it renames the partial file into place when it is still
// there, and does nothing when the rename already happened. The sink
// need not be open. It returns an error wrapping ErrOutputMissing when
// neither file exists.
func (s *fileSink) Finish(ctx context.Context, runID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	partial := partialPath(s.path, runID)
	f, err := os.OpenFile(partial, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(s.path); err != nil {
			return fmt.Errorf("finish the commit of %s: neither it nor %s exists: %w", s.path, partial, ErrOutputMissing)
		}
		return nil // renamed before the process stopped
	}
	if err != nil {
		return fmt.Errorf("finish the commit of %s: %w", s.path, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(partial, s.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(s.path))
	}
	if err != nil {
		return fmt.Errorf("commit %s: %w", s.path, err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.committed = false
	if s.f == nil {
		return nil
	}
	err := s.f.Close() // every Write already synced
	s.f = nil
	s.seen = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", s.partial, err)
	}
	return nil
}

// completeLines calls fn with each newline-terminated line of data and the
// offset just after it, until fn returns false. It returns that offset of
// the last accepted line; a final line without a newline is never accepted.
func completeLines(data []byte, fn func(line []byte) bool) int64 {
	var good int64
	for {
		i := bytes.IndexByte(data[good:], '\n')
		if i < 0 || !fn(data[good:good+int64(i)]) {
			return good
		}
		good += int64(i) + 1
	}
}
