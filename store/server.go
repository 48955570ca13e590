package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// ServerOptions configures an embedded MongoDB-wire server.
type ServerOptions struct {
	// DataDir holds the SQLite files, the lock and the owner file. Created if
	// missing.
	DataDir string

	// Listen is the TCP address. If empty, 127.0.0.1 with a free port. It
	// must be a loopback address: the server has no authentication.
	Listen string

	// Command names the crawlcache command that owns the server ("run",
	// "db serve", ...), so that a second process can say who holds the
	// directory. If empty, "crawlcache".
	Command string

	// Logger receives the server's own messages at ERROR level only (it
	// logs every failed command at WARN). If nil, slog.Default().
	Logger *slog.Logger

	// ReadOnly is for commands that only read. DataDir must exist (else an
	// error wrapping ErrNoDataDir, and nothing is created). When the
	// directory cannot be written (a read-only mount or permissions), the
	// server opens its files read-only, writes no lock or owner file and
	// leaves the _id indexes as they are; every write through it fails.
	// A writable directory is opened as usual.
	ReadOnly bool

	// NoQueryFront serves Listen with FerretDB itself, without the query
	// front (front.go) that answers queries on the cache's page summaries
	// from indexes: every query then decodes every document, as FerretDB
	// does. For comparisons; the front is on by default.
	NoQueryFront bool
}

// Owner is the content of the owner file of a served data directory.
type Owner struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	URI     string    `json:"uri"`
	Started time.Time `json:"started"`
}

// BusyError is returned by StartServer when another process holds the data
// directory.
type BusyError struct {
	Dir   string
	Owner Owner
}

// Error says which data directory is in use and by whom.
func (e *BusyError) Error() string {
	return fmt.Sprintf("data directory %s is in use by crawlcache %s (pid %d)", e.Dir, e.Owner.Command, e.Owner.PID)
}

// Server is an embedded FerretDB server running in this process. It holds an
// exclusive lock on its data directory until Close.
type Server struct {
	uri  string // the public address: the query front's, or FerretDB's when read-only
	lock *os.File
	// backendURI is FerretDB's own address behind the front ("" without
	// a front).
	backendURI string
	front      *front
	cancel     context.CancelFunc
	done       chan struct{}
	once       sync.Once
	dir        string
	ids        *idIndexer // nil when read-only or not direct
	// direct: selfCheck passed, the store may read and write the files
	// itself (ferret.go).
	direct bool
	// readOnly: the files are open read-only (ServerOptions.ReadOnly on a
	// directory that cannot be written).
	readOnly bool
	// updates serializes the updates of this process's store and of the
	// query front's clients where FerretDB does not (updatelock.go).
	updates updateLocks
}

// newServerMu serializes ferretdb.New, which sets FerretDB's global version
// info: two embedded servers starting at once in one process race.
var newServerMu sync.Mutex

const (
	lockFile  = "crawlcache.lock"
	ownerFile = "crawlcache.owner.json"
)

// StartServer starts an embedded server on opts.DataDir. It returns a
// *BusyError when another live process holds the directory, and an error
// naming the address when the listen address is not loopback or is taken.
func StartServer(ctx context.Context, opts ServerOptions) (*Server, error) {
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if err := checkLoopback(listen); err != nil {
		return nil, err
	}
	if opts.ReadOnly {
		if err := checkDataDir(opts.DataDir); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	abs, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", opts.DataDir, err)
	}
	readOnly := false
	lockMode := syscall.LOCK_EX
	lock, err := os.OpenFile(filepath.Join(abs, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil && opts.ReadOnly && readOnlyFS(err) {
		// A directory nobody can write: no writer can hold it either, but a
		// lock file left there still tells of one (a remount).
		readOnly, lockMode = true, syscall.LOCK_SH
		lock, err = os.Open(filepath.Join(abs, lockFile))
		if errors.Is(err, os.ErrNotExist) {
			lock, err = nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open lock in data directory %s: %w", abs, err)
	}
	if readOnly {
		return startReadOnly(abs, listen, lock, opts.Logger)
	}
	if err := syscall.Flock(int(lock.Fd()), lockMode|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			owner, rerr := readOwner(abs)
			if rerr != nil {
				return nil, fmt.Errorf("data directory %s is locked by another process, which has not said who it is (%v); stop it and retry", abs, rerr)
			}
			return nil, &BusyError{Dir: abs, Owner: owner}
		}
		return nil, fmt.Errorf("lock data directory %s: %w", abs, err)
	}

	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	// FerretDB listens on an internal port; the query front (front.go)
	// serves listen.
	internal := "127.0.0.1:0"
	if opts.NoQueryFront {
		internal = listen
	}
	s, runCtx, err := serve(abs, internal, "file:"+abs+"/?_pragma=synchronous("+sqliteSyncMode()+")", lock, logger)
	if err != nil {
		return nil, err
	}

	if err := selfCheck(ctx, abs); err != nil {
		// One line: everything works, through the server, slower.
		logger.Warn("embedded store: files left to FerretDB, every read and write goes through the server (slower)", "dir", abs, "reason", err)
	} else {
		s.direct = true
		s.ids = newIDIndexer(abs)
		if err := s.ids.ensure(ctx); err != nil {
			logger.Warn("index _id of existing collections; lookups will scan", "dir", abs, "err", err)
		}
		var reported sync.Once
		go s.ids.run(runCtx, 250*time.Millisecond, func(err error) {
			reported.Do(func() { logger.Warn("index _id of new collections; lookups will scan", "dir", abs, "err", err) })
		})
	}

	if opts.NoQueryFront {
		// FerretDB serves listen itself.
	} else if err := s.startFront(listen, logger); err != nil {
		s.Close()
		return nil, fmt.Errorf("start embedded store on %s in %s: %w", listen, abs, err)
	}

	command := opts.Command
	if command == "" {
		command = "crawlcache"
	}
	owner := Owner{PID: os.Getpid(), Command: command, URI: s.uri, Started: time.Now().UTC()}
	if err := writeOwner(abs, owner); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// serve starts FerretDB on the SQLite files sqliteURL names and returns the
// running Server (holding lock) and the context that stops it.
func serve(abs, listen, sqliteURL string, lock *os.File, logger *slog.Logger) (*Server, context.Context, error) {
	var fdb *ferretdb.FerretDB
	var err error
	// Opening the files can meet SQLITE_BUSY for a moment after another
	// store on the same directory closed (its last connection still
	// checkpointing the WAL): FerretDB's first statement then fails without
	// waiting in the busy handler. Try again for a few seconds.
	for wait := 25 * time.Millisecond; ; wait *= 2 {
		newServerMu.Lock() // ferretdb.New writes package globals
		fdb, err = ferretdb.New(&ferretdb.Config{
			Listener:  ferretdb.ListenerConfig{TCP: listen},
			Handler:   "sqlite",
			SQLiteURL: sqliteURL,
			Logger:    slog.New(levelHandler{min: slog.LevelError, Handler: logger.Handler()}),
		})
		newServerMu.Unlock()
		if err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") || wait > 2*time.Second {
			break
		}
		logger.Debug("embedded store: files busy at start, trying again", "dir", abs, "in", wait)
		time.Sleep(wait)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, nil, fmt.Errorf("start embedded store on %s in %s: %w", listen, abs, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Server{lock: lock, cancel: cancel, done: make(chan struct{}), dir: abs}
	go func() {
		defer close(s.done)
		_ = fdb.Run(runCtx)
	}()
	s.uri = fdb.MongoDBURI()
	return s, runCtx, nil
}

// startFront serves listen with the query front, which answers what it
// can of the front collections when the direct path is on and forwards
// everything else to FerretDB.
func (s *Server) startFront(listen string, logger *slog.Logger) error {
	u, err := url.Parse(s.uri)
	if err != nil {
		return fmt.Errorf("server address %s: %w", s.uri, err)
	}
	var files *frontFiles
	if s.direct {
		files = &frontFiles{dir: s.dir, dbs: map[string]*frontFile{}}
	}
	f, err := startFront(listen, u.Host, files, &s.updates, logger)
	if err != nil {
		return err
	}
	s.front, s.backendURI, s.uri = f, s.uri, f.uri()
	return nil
}

// URI is the mongodb:// connection string of the server.
func (s *Server) URI() string { return s.uri }

// clientURI is the address this process's own client uses: FerretDB's,
// without the query front's hop.
func (s *Server) clientURI() string {
	if s.backendURI != "" {
		return s.backendURI
	}
	return s.uri
}

// Close stops the server, waits for it to close its files and releases the
// data directory. It is safe to call more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		if s.front != nil {
			s.front.close()
		}
		s.cancel()
		<-s.done
		if s.ids != nil {
			s.ids.close()
		}
		if !s.readOnly {
			_ = os.Remove(filepath.Join(s.dir, ownerFile))
		}
		if s.lock != nil {
			_ = s.lock.Close() // releases the flock
		}
	})
}

// Done is closed when the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

func readOwner(dir string) (Owner, error) {
	var o Owner
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return o, err
	}
	err = json.Unmarshal(b, &o)
	return o, err
}

func writeOwner(dir string, o Owner) error {
	b, _ := json.MarshalIndent(o, "", "  ")
	tmp := filepath.Join(dir, ownerFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write owner file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ownerFile)); err != nil {
		return fmt.Errorf("write owner file: %w", err)
	}
	return nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w (want host:port, e.g. 127.0.0.1:27017)", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen address %q: the embedded store has no authentication and listens on loopback only (127.0.0.1, ::1 or localhost)", addr)
	}
	return nil
}

// levelHandler drops records below min.
type levelHandler struct {
	min slog.Level
	slog.Handler
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{h.min, h.Handler.WithAttrs(as)}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.min, h.Handler.WithGroup(name)}
}

// sqliteSyncMode is the embedded server's synchronous setting. WAL with
// synchronous=NORMAL: a commit is durable against a crash of the process
// (kill -9), and fsyncs happen at checkpoints instead of on every write,
// which made every insert wait for the disk (a cold crawl ran 2× slower).
// A power cut may lose the last commits; the database stays consistent.
// CRAWLCACHE_SQLITE_SYNC=full restores fsync per commit.
func sqliteSyncMode() string {
	if v := os.Getenv("CRAWLCACHE_SQLITE_SYNC"); v == "full" || v == "extra" {
		return v
	}
	return "normal"
}
