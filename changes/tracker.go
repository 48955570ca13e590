package changes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// Options configures a Tracker.
type Options struct {
	// Pages and Records are the collections (PagesCollection and
	// RecordsCollection of the crawlcache database). Required.
	Pages, Records Collection
	// Job and Run name the job and the run. Required.
	Job, Run string
	// Strip, if set, removes the parts of a body that must not count as a
	// change (timestamps, nonces) before comparing; it is called only for
	// a body the job has not seen (new, or whose hash differs from the one
	// it knows), so an unchanged page costs no call.
	Strip func(body []byte) []byte
	// Retention, if positive, drops versions of a page's history older
	// than this (the cache's TTL: the bodies they name are gone).
	Retention time.Duration
	// Now is the clock; if nil, time.Now.
	Now func() time.Time
}

// Tracker classifies the pages of one run. It is safe for concurrent use.
type Tracker struct {
	opts Options
	mu   sync.Mutex
	seen Counts
}

// New returns the Tracker of one run.
func New(opts Options) (*Tracker, error) {
	if opts.Pages == nil || opts.Records == nil || opts.Job == "" || opts.Run == "" {
		return nil, errors.New("changes: pages, records, job and run are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Tracker{opts: opts}, nil
}

// Observation is what a run got for one page.
type Observation struct {
	URL    string
	Status int
	// Body and BodyHash (hex SHA-256 of Body, computed when empty) for a
	// 2xx page.
	Body     []byte
	BodyHash string
	// Err, if set, is why the page failed (the page is an error).
	Err error
	// ErrorKind is how the crawler counts Err (its kind of failure); Parse
	// is "parsed" or "reused" for an HTML page whose links and items were
	// found by a parse or taken from a stored one (ParseParsed,
	// ParseReused). The record keeps them, and Status for a failed page
	// that got a response, so that the run's summary is counted from its
	// records (Summary).
	ErrorKind, Parse string
	// State, if set, is the read of the job's state of URL (StateRef),
	// already done with other reads (store.GetAll); Observe reads it
	// otherwise.
	State *store.Lookup
}

// Seen returns the pages classified so far by this process, by kind.
func (t *Tracker) Seen() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seen
}

// Observe classifies one page, records it for the run and updates the
// job's state of it, and returns its kind. An error is the store's; the
// page is then not recorded.
func (t *Tracker) Observe(ctx context.Context, o Observation) (string, error) {
	now := t.opts.Now().UTC()
	rec := Record{ID: RecordID(t.opts.Run, o.URL), Run: t.opts.Run, Job: t.opts.Job, URL: o.URL, Status: o.Status, At: now,
		ErrorKind: o.ErrorKind, Parse: o.Parse, Counted: true}
	if o.Err != nil {
		rec.Kind, rec.Error = KindError, o.Err.Error()
		return t.record(ctx, rec)
	}
	page, err := t.page(ctx, o.URL, o.State)
	if err != nil {
		return "", err
	}
	base := page.baseline(t.opts.Run)
	cur := State{Status: o.Status}
	if ok2xx(o.Status) {
		cur.BodyHash = o.BodyHash
		if cur.BodyHash == "" {
			cur.BodyHash = hashOf(o.Body)
		}
		switch {
		case base != nil && base.BodyHash == cur.BodyHash:
			cur.CompareHash = base.CompareHash // the very body the job knows
		case t.opts.Strip != nil:
			cur.CompareHash = hashOf(t.opts.Strip(o.Body))
		default:
			cur.CompareHash = cur.BodyHash
		}
	}
	rec.Kind = classify(base, cur)
	rec.BodyHash = cur.BodyHash
	if base != nil && rec.Kind == KindChanged {
		rec.PrevHash = base.BodyHash
	}
	if rec.Kind == KindGone {
		cur = State{Status: o.Status, Gone: true, BodyHash: base.BodyHash, CompareHash: base.CompareHash}
	}
	if base == nil || *base != cur || page.Run == t.opts.Run {
		if err := t.savePage(ctx, page, base, cur, rec); err != nil {
			return "", err
		}
	}
	return t.record(ctx, rec)
}

func ok2xx(status int) bool { return status >= 200 && status < 300 }

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// classify compares the page now (cur) with what the job knew (base, nil
// when it never saw the page).
func classify(base *State, cur State) string {
	switch {
	case base == nil:
		return KindNew
	case !ok2xx(cur.Status) && (cur.Status == 404 || cur.Status == 410):
		if ok2xx(base.Status) && !base.Gone {
			return KindGone
		}
		if base.Status == cur.Status || base.Gone {
			return KindUnchanged
		}
		return KindChanged
	case base.Gone, base.Status != cur.Status, base.CompareHash != cur.CompareHash:
		return KindChanged
	}
	return KindUnchanged
}

// KnowsBody reports whether Observe can classify a 2xx body of hash
// bodyHash from the hash alone (Observation.Body nil): always without
// Strip; with it, only when the job's baseline of url is that very body
// (Strip needs the body of any other). state is the done read of
// StateRef(url); a failed or missing read answers false.
func (t *Tracker) KnowsBody(url string, state *store.Lookup, bodyHash string) bool {
	if t.opts.Strip == nil {
		return true
	}
	if state == nil || state.Err != nil {
		return false
	}
	p, err := t.page(context.Background(), url, state)
	if err != nil {
		return false
	}
	base := p.baseline(t.opts.Run)
	return base != nil && base.BodyHash == bodyHash
}

// StateRef is the read of the job's state of url, for a caller that
// reads it with other documents (store.GetAll) and passes it to Observe
// (Observation.State).
func (t *Tracker) StateRef(url string) store.Lookup {
	return store.Lookup{Coll: t.opts.Pages, ID: PageID(t.opts.Job, url)}
}

// page returns the job's document of url from the read done, made now
// when done is nil; a new one when there is none.
func (t *Tracker) page(ctx context.Context, url string, done *store.Lookup) (*Page, error) {
	l := t.StateRef(url)
	if done != nil && done.ID == l.ID {
		l = *done
	} else {
		l.Raw, l.Err = t.opts.Pages.Get(ctx, l.ID)
	}
	id := l.ID
	if errors.Is(l.Err, store.ErrNotFound) {
		return &Page{ID: id, Job: t.opts.Job, URL: url}, nil
	}
	if l.Err != nil {
		return nil, fmt.Errorf("read page state %s: %w", id, l.Err)
	}
	var p Page
	if err := bson.Unmarshal(l.Raw, &p); err != nil {
		// An unreadable state is a page seen for the first time.
		return &Page{ID: id, Job: t.opts.Job, URL: url}, nil
	}
	return &p, nil
}

// baseline is the state the run compares with: the page's state, or the
// one before the run when the run already wrote it; nil when the job had
// never seen it.
func (p *Page) baseline(run string) *State {
	switch {
	case p.Run == "" && p.FirstSeen.IsZero():
		return nil
	case p.Run == run:
		return p.Prev
	}
	s := p.State
	return &s
}

// savePage writes the page's new state and, for a new, changed or gone
// page, a version of its history.
func (t *Tracker) savePage(ctx context.Context, p *Page, base *State, cur State, rec Record) error {
	if p.Run != t.opts.Run {
		p.Prev = base
	}
	p.Run, p.State = t.opts.Run, cur
	if p.FirstSeen.IsZero() {
		p.FirstSeen = rec.At
	}
	if rec.Kind != KindUnchanged {
		p.LastChanged = rec.At
		v := Version{Run: t.opts.Run, At: rec.At, Kind: rec.Kind, Status: cur.Status, BodyHash: cur.BodyHash}
		if n := len(p.Versions); n > 0 && p.Versions[n-1].Run == t.opts.Run {
			p.Versions[n-1] = v // the same run seen again
		} else {
			p.Versions = append(p.Versions, v)
		}
	}
	p.Versions = t.trim(p.Versions, rec.At)
	if p.Versions == nil {
		p.Versions = []Version{}
	}
	if err := t.opts.Pages.Upsert(ctx, p.ID, p); err != nil {
		return fmt.Errorf("write page state %s: %w", p.ID, err)
	}
	return nil
}

// trim keeps the newest MaxVersions versions, none older than Retention.
func (t *Tracker) trim(vs []Version, now time.Time) []Version {
	if len(vs) > MaxVersions {
		vs = vs[len(vs)-MaxVersions:]
	}
	if t.opts.Retention > 0 {
		for len(vs) > 0 && now.Sub(vs[0].At) > t.opts.Retention {
			vs = vs[1:]
		}
	}
	return vs
}

// record writes the run's record of a page and counts it. A run records
// a page once, but for a resumed run that met it before its interruption:
// the record is inserted (one statement on the embedded store, where an
// upsert first looks for the document), and replaced when it exists.
func (t *Tracker) record(ctx context.Context, rec Record) (string, error) {
	err := t.opts.Records.Insert(ctx, rec)
	if errors.Is(err, store.ErrDuplicateID) {
		err = t.opts.Records.Upsert(ctx, rec.ID, rec)
	}
	if err != nil {
		return "", fmt.Errorf("record change of %s: %w", rec.URL, err)
	}
	t.mu.Lock()
	t.seen.add(rec.Kind)
	t.mu.Unlock()
	return rec.Kind, nil
}
