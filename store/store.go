// Package store opens the MongoDB deployment that crawlcache keeps its cache,
// frontier, runs and items in: a server named by a mongodb:// URI, or the
// embedded MongoDB-wire server (FerretDB, SQLite handler) in a local data
// directory.
//
// It is the storage contract (collection.go): other packages keep their
// documents through *Collection handles, each declaring the methods it uses
// in an interface of its own. It is the only package that knows about
// FerretDB or SQLite and the only one that imports mongo-driver's client
// packages; packages must not branch on "embedded" for anything but
// messages (a handle's Direct and TTLIndexes say what differs).
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// DefaultDataDir is where the embedded server keeps its files when neither a
// URI nor a data directory is given.
const DefaultDataDir = "crawlcache-data"

// Options says which store to open. The zero value opens the embedded server
// in DefaultDataDir.
type Options struct {
	// URI of a MongoDB deployment (mongodb:// or mongodb+srv://). If empty,
	// the embedded server is used.
	URI string

	// DataDir is the embedded server's directory. If empty, DefaultDataDir.
	// Ignored when URI is set.
	DataDir string

	// Logger receives the embedded server's own log at WARN and above, and
	// store notices. If nil, slog.Default() is used.
	Logger *slog.Logger

	// ConnectTimeout bounds the first round trip to the server. If zero, 10s.
	ConnectTimeout time.Duration

	// Command names the crawlcache command opening the store, recorded in
	// the data directory while this process serves it.
	Command string

	// Migrations are the schema steps of the packages that use the store,
	// run by Open after the store's own (schema.go). If nil, only the
	// store's own are known.
	Migrations []Migration

	// OnCommand, if set, is called with every command the client sends to
	// the server (tests and the bench count round trips and scans with
	// it). It is called concurrently from the requests' goroutines. The
	// operations the embedded implementation does in the files send none.
	OnCommand func(Command)

	// ReadOnly is for commands that only read (see ServerOptions.ReadOnly):
	// a data directory that does not exist is an error wrapping
	// ErrNoDataDir and is not created, and one that cannot be written is
	// served read-only. Ignored when URI is set.
	ReadOnly bool
}

// Store is an open connection to the deployment. It is safe for concurrent
// use; close it once, when the program is done with it.
type Store struct {
	// client is the connected driver client; other packages keep their
	// documents through Collection.
	client *mongo.Client

	// URI is the connection string in use (for the embedded server, the
	// loopback address it listens on).
	URI string

	// Embedded reports whether this process (or another crawlcache process
	// on the same data directory) runs the server.
	Embedded bool

	// DataDir is the embedded server's directory ("" for a URI).
	DataDir string

	// ReadOnly reports that this process serves DataDir read-only (it
	// cannot be written): every write fails.
	ReadOnly bool

	caps   Capabilities
	log    *slog.Logger // Options.Logger; nil: slog.Default()
	server *Server      // non-nil when this process owns the embedded server
	direct *Direct      // non-nil: the embedded implementation (collection.go)
	ids    *idIndexer   // the server's _id indexer, with direct
	// updates serializes updates without AtomicUpdates (updatelock.go)
	// when this process does not run the embedded server.
	updates updateLocks
}

// Capabilities are the features of the server that change how crawlcache
// works with it.
type Capabilities struct {
	// TTLIndexes is true when the server deletes expired documents by a TTL
	// index (MongoDB). FerretDB v1 answers NotImplemented (code 238); the
	// cache then enforces TTL with its own sweeper.
	TTLIndexes bool

	// FilterPushdown is true when filters other than _id equality use
	// indexes. FerretDB's SQLite handler pushes down only _id equality, so
	// every other find scans the collection.
	FilterPushdown bool

	// AtomicUpdates is true when concurrent updates of one document never
	// lose one another's changes (MongoDB). FerretDB v1 reads the document,
	// then rewrites it, so two concurrent $inc may count once: the store
	// then serializes the updates of each collection (updatelock.go).
	AtomicUpdates bool
}

// ErrUnreachable is wrapped by Open when no server answered.
var ErrUnreachable = errors.New("store unreachable")

// Open connects to the store Options describe and checks that it answers.
// For the embedded server it starts the server in-process, or, when another
// crawlcache process already serves the data directory, connects to that
// process. It returns an error wrapping ErrUnreachable when the server does
// not answer, naming what was tried. It then brings the store to this
// binary's schema version (schema.go): an error wrapping ErrSchemaTooNew
// when a newer crawlcache wrote it.
func Open(ctx context.Context, opts Options) (*Store, error) {
	steps, err := knownMigrations(opts.Migrations)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	s, err := openStore(ctx, opts)
	if err != nil {
		return nil, err
	}
	s.log = opts.Logger
	if err := s.migrate(ctx, steps, started); err != nil {
		_ = s.Close(context.Background())
		return nil, err
	}
	return s, nil
}

func openStore(ctx context.Context, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	timeout := opts.ConnectTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	if opts.URI != "" {
		if !strings.HasPrefix(opts.URI, "mongodb://") && !strings.HasPrefix(opts.URI, "mongodb+srv://") {
			return nil, fmt.Errorf("store URI %q: must start with mongodb:// or mongodb+srv://", redactURI(opts.URI))
		}
		client, err := connect(ctx, opts.URI, timeout, monitorOf(opts))
		if err != nil {
			return nil, err
		}
		s := &Store{client: client, URI: opts.URI}
		s.caps = probe(ctx, client)
		return s, nil
	}

	dir := opts.DataDir
	if dir == "" {
		dir = DefaultDataDir
	}
	srv, err := StartServer(ctx, ServerOptions{DataDir: dir, Logger: logger, Command: opts.Command, ReadOnly: opts.ReadOnly})
	var busy *BusyError
	switch {
	case errors.As(err, &busy):
		if busy.Owner.Command != "db serve" {
			return nil, fmt.Errorf("data directory %s is in use by crawlcache %s (pid %d, since %s); wait for it to finish, or run `crawlcache db serve --data-dir %s` once and point every command at it with --store %s",
				dir, busy.Owner.Command, busy.Owner.PID, busy.Owner.Started.Format(time.RFC3339), dir, "mongodb://127.0.0.1:27017/")
		}
		logger.Info("data directory is served by another crawlcache process; connecting to it", "dir", dir, "uri", busy.Owner.URI, "pid", busy.Owner.PID)
		client, err := connect(ctx, busy.Owner.URI, timeout, monitorOf(opts))
		if err != nil {
			return nil, fmt.Errorf("data directory %s is served by pid %d at %s: %w", dir, busy.Owner.PID, busy.Owner.URI, err)
		}
		return &Store{client: client, URI: busy.Owner.URI, Embedded: true, DataDir: dir, caps: probe(ctx, client)}, nil
	case err != nil:
		return nil, err
	}
	client, err := connect(ctx, srv.clientURI(), timeout, monitorOf(opts))
	if err != nil {
		srv.Close()
		return nil, err
	}
	if srv.readOnly { // no direct access, no probe: both write
		return &Store{client: client, URI: srv.URI(), Embedded: true, DataDir: dir, ReadOnly: true, server: srv}, nil
	}
	s := &Store{client: client, URI: srv.URI(), Embedded: true, DataDir: dir, caps: probe(ctx, client), server: srv}
	if srv.direct {
		s.direct = newDirect(srv.dir)
		s.ids = srv.ids
	}
	return s, nil
}

// Capabilities reports what the server supports, probed once at Open.
func (s *Store) Capabilities() Capabilities { return s.caps }

// Describe is a one-line description of the store for logs and messages.
func (s *Store) Describe() string {
	if s.Embedded {
		return fmt.Sprintf("embedded store in %s (%s)", s.DataDir, s.URI)
	}
	return "MongoDB at " + redactURI(s.URI)
}

// Close disconnects and, if this process owns the embedded server, stops it
// and releases the data directory.
func (s *Store) Close(ctx context.Context) error {
	if s.direct != nil {
		s.direct.close()
		s.direct.w.close()
	}
	err := s.client.Disconnect(ctx)
	if s.server != nil {
		s.server.Close()
	}
	return err
}

func connect(ctx context.Context, uri string, timeout time.Duration, monitor *event.CommandMonitor) (*mongo.Client, error) {
	opts, wait, err := clientOptions(uri, timeout)
	if err != nil {
		return nil, err
	}
	if monitor != nil {
		opts.SetMonitor(monitor)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w: %v", redactURI(uri), ErrUnreachable, err)
	}
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := client.Ping(pctx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("connect to %s (waited %s): %w: %v", redactURI(uri), wait, ErrUnreachable, err)
	}
	return client, nil
}

// clientOptions are the driver options for uri. The options the URI sets
// win: crawlcache's defaults (timeout for server selection and for
// connecting, the application name) apply only where the URI is silent,
// so that `--store 'mongodb://host/?serverSelectionTimeoutMS=1000'` gives
// up after one second. wait is how long the first ping may take: the
// URI's serverSelectionTimeoutMS when it sets one, else timeout.
func clientOptions(uri string, timeout time.Duration) (opts *options.ClientOptions, wait time.Duration, err error) {
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		return nil, 0, fmt.Errorf("store URI %s: %v", redactURI(uri), redactErr(err, uri))
	}
	opts = options.Client().ApplyURI(uri)
	wait = timeout
	if cs.ServerSelectionTimeoutSet {
		wait = cs.ServerSelectionTimeout
	} else {
		opts.SetServerSelectionTimeout(timeout)
	}
	if !cs.ConnectTimeoutSet {
		opts.SetConnectTimeout(timeout)
	}
	if cs.AppName == "" {
		opts.SetAppName("crawlcache")
	}
	return opts, wait, nil
}

// redactErr is err's message with any password of uri hidden.
func redactErr(err error, uri string) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(uri, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pass, hasPass := strings.Cut(rest[:at], ":"); hasPass && pass != "" {
				msg = strings.ReplaceAll(msg, pass, "xxxxx")
			}
		}
	}
	return msg
}

// probe asks the server what it can do. It creates and drops a TTL index on
// a scratch collection: the only reliable test, since FerretDB reports a
// MongoDB version that has TTL indexes.
func probe(ctx context.Context, client *mongo.Client) Capabilities {
	var caps Capabilities
	var hello bson.M
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&hello); err == nil {
		if _, ferret := hello["ferretdbVersion"]; !ferret {
			caps.FilterPushdown = true
			caps.AtomicUpdates = true
		}
	}
	coll := client.Database("crawlcache").Collection("_probe")
	name, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "t", Value: 1}},
		Options: options.Index().SetName("probe_ttl").SetExpireAfterSeconds(3600),
	})
	if err == nil {
		caps.TTLIndexes = true
		_ = coll.Indexes().DropOne(ctx, name)
	}
	_ = coll.Drop(ctx)
	return caps
}

// IsNotImplemented reports whether err is the server's NotImplemented (238)
// or CommandNotFound (59) answer.
func IsNotImplemented(err error) bool {
	var se mongo.ServerError
	if errors.As(err, &se) {
		return se.HasErrorCode(238) || se.HasErrorCode(59)
	}
	return false
}

// redactURI hides the password in a connection string.
func redactURI(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return uri
	}
	userinfo := rest[:at]
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		userinfo = user + ":xxxxx"
	}
	return scheme + "://" + userinfo + rest[at:]
}
