// Package changes says what changed between runs of a job: each page a run
// reaches is classified new, changed, unchanged, gone or error against what
// the job saw of it before, and recorded.
//
// Two collections, both read and written by _id only:
//
//   - page_states (crawlcache.page_states): one small document per job and URL, the
//     page's last known state (status, body hash, the hash compared when
//     parts are ignored) and its history, at most MaxVersions versions,
//     none older than the history's retention;
//   - page_changes (crawlcache.page_changes): one document per run and
//     page, `_id` "<run id>/<url hash>", so a run's records are one _id
//     prefix: listed by `crawlcache runs changes`, and compared with the
//     previous run's to find the pages no longer reached.
//
// `gone` is found from the job's own records only: a page that answers
// 404 or 410 where it answered 2xx before, or one the previous completed
// run of the job reached and this run did not. Nothing scans other jobs'
// data or the cache.
//
// The package does not fetch or parse pages; the crawler tells it what it
// got (Observe) and the runner closes the run (Finish).
package changes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// Kinds of change, the values of Record.Kind.
const (
	KindNew       = "new"
	KindChanged   = "changed"
	KindUnchanged = "unchanged"
	KindGone      = "gone"
	KindError     = "error"
)

// Kinds lists every kind, in the order summaries show them.
var Kinds = []string{KindNew, KindChanged, KindUnchanged, KindGone, KindError}

// Collections of the package, in the crawlcache database.
const (
	PagesCollection   = "page_states"
	RecordsCollection = "page_changes"
)

// MaxVersions is how many versions of a page its history keeps (the
// newest); KeepRuns how many completed runs of a job keep their per-page
// change records (older runs' are deleted when a run completes).
const (
	MaxVersions = 10
	KeepRuns    = 30
)

// Collection is what the package needs from a collection: documents by
// _id and scans of an _id prefix. Get returns an error wrapping
// store.ErrNotFound when nothing has the _id.
type Collection interface {
	Get(ctx context.Context, id string) (bson.Raw, error)
	// Insert returns an error wrapping store.ErrDuplicateID when a
	// document with doc's _id is stored already.
	Insert(ctx context.Context, doc any) error
	Upsert(ctx context.Context, id string, doc any) error
	Delete(ctx context.Context, id string) error
	ScanIDPrefix(ctx context.Context, prefix string, fn func(bson.Raw) error) error
}

var _ Collection = (*store.Collection)(nil)

// State is what the job last knew of a page.
type State struct {
	Status int `bson:"status"`
	// BodyHash is the SHA-256 (hex) of the body; CompareHash the hash of
	// the body with the ignored parts removed (BodyHash when none are).
	BodyHash    string `bson:"body_hash,omitempty"`
	CompareHash string `bson:"compare_hash,omitempty"`
	// Gone is set once the page was found gone.
	Gone bool `bson:"gone,omitempty"`
}

// Version is one entry of a page's history: a run in which it was new,
// changed or gone.
type Version struct {
	Run      string    `bson:"run_id"`
	At       time.Time `bson:"at"`
	Kind     string    `bson:"kind"`
	Status   int       `bson:"status"`
	BodyHash string    `bson:"body_hash,omitempty"`
}

// Page is the document of one page of one job in PagesCollection.
type Page struct {
	ID    string `bson:"_id"`
	Job   string `bson:"job"`
	URL   string `bson:"url"`
	State `bson:",inline"`
	// Run is the run that last wrote the document, and Prev the state
	// before it: a page seen twice by one run (a resume after a crash) is
	// compared with what the run started from.
	Run         string    `bson:"run_id"`
	Prev        *State    `bson:"prev,omitempty"`
	FirstSeen   time.Time `bson:"first_seen"`
	LastChanged time.Time `bson:"last_changed"`
	Versions    []Version `bson:"versions"`
}

// Record is one page of one run in RecordsCollection.
type Record struct {
	ID     string `bson:"_id" json:"-"`
	Run    string `bson:"run_id" json:"run_id"`
	Job    string `bson:"job" json:"job"`
	URL    string `bson:"url" json:"url"`
	Kind   string `bson:"kind" json:"kind"`
	Status int    `bson:"status,omitempty" json:"status,omitempty"`
	// BodyHash is the body's hash in this run, PrevHash the one before
	// (for changed pages).
	BodyHash string    `bson:"body_hash,omitempty" json:"body_hash,omitempty"`
	PrevHash string    `bson:"prev_hash,omitempty" json:"prev_hash,omitempty"`
	At       time.Time `bson:"at" json:"at"`
	Error    string    `bson:"error,omitempty" json:"error,omitempty"`
	// ErrorKind and Parse are the Observation's. Counted is set on every
	// record Observe writes (not on the gone records of pages no longer
	// reached, nor on records of earlier releases, which lack them).
	ErrorKind string `bson:"error_kind,omitempty" json:"-"`
	Parse     string `bson:"parse,omitempty" json:"-"`
	Counted   bool   `bson:"counted,omitempty" json:"-"`
}

// Values of Observation.Parse and Record.Parse.
const (
	ParseParsed = "parsed"
	ParseReused = "reused"
)

// jobRuns is the document "<job>/#runs" in PagesCollection: the job's last
// completed runs, oldest first, whose records are kept.
type jobRuns struct {
	ID   string   `bson:"_id"`
	Runs []string `bson:"runs"`
	// StatesSweptAt is when a completing run last swept the job's page
	// states (sweepStates); zero when none did (documents of earlier
	// releases lack it).
	StatesSweptAt time.Time `bson:"states_swept_at,omitempty"`
}

// urlHash names a URL in _ids.
func urlHash(u string) string {
	sum := sha256.Sum256([]byte(u))
	return hex.EncodeToString(sum[:12])
}

// PageID is the _id of the page document of url for job.
func PageID(job, url string) string { return job + "/" + urlHash(url) }

// RecordID is the _id of the record of url in run.
func RecordID(run, url string) string { return run + "/" + urlHash(url) }

func runsID(job string) string { return job + "/#runs" }

// Counts are a run's pages by kind.
type Counts struct {
	New, Changed, Unchanged, Gone, Error int64
}

// add counts one page of kind k.
func (c *Counts) add(k string) {
	switch k {
	case KindNew:
		c.New++
	case KindChanged:
		c.Changed++
	case KindUnchanged:
		c.Unchanged++
	case KindGone:
		c.Gone++
	case KindError:
		c.Error++
	}
}
