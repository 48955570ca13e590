package frontier

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// insertBatch is how many entries one insertMany carries.
const insertBatch = 500

// run is this process's memory of one run: every URL hash it has seen (so
// known URLs are not sent again), a FIFO of entries it believes claimable,
// and entries leased by others, to try again when their leases end.
type run struct {
	id      string
	seen    map[hash16]struct{}
	queue   itemQueue
	watch   []watchItem
	reclaim map[string]bool // workers whose leases count as expired

	lastScan     time.Time
	lastScanCost time.Duration
	scanning     bool
	registered   bool // this Frontier is in WorkersCollection for the run
	// uncertain is set when a write's outcome is unknown (an error) or
	// another writer showed up (a lost insert): memory may be incomplete,
	// so Drained must scan.
	uncertain bool
	// scans has one set per scan in progress: the entries this process
	// changed since it started, whose state the scan must not override.
	scans []*scanSet
	// redact, if set, is applied to the url written in log records.
	redact func(string) string
	// loading is set while StartLoadRun scans the entries in the
	// background; addedWhileLoading are the entries Add inserted
	// meanwhile (already queued: the scan may see them too).
	loading           bool
	addedWhileLoading map[hash16]struct{}
}

// RedactLog makes the log records of runID written by this Frontier carry
// redact(url) instead of the entry's URL (which the crawler uses to keep
// secret query parameters out of frontier_log). The entries themselves are
// written as added. redact must be safe for concurrent use.
func (f *Frontier) RedactLog(runID string, redact func(string) string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runLocked(runID).redact = redact
}

// logURL is u as the log records of runID show it.
func (f *Frontier) logURL(runID, u string) string {
	f.mu.Lock()
	var redact func(string) string
	if r := f.runs[runID]; r != nil {
		redact = r.redact
	}
	f.mu.Unlock()
	if redact == nil {
		return u
	}
	return redact(u)
}

// scanSet is the entries changed here while a scan runs.
type scanSet struct{ touched map[hash16]struct{} }

// markUncertain records that this process's memory of runID may be
// incomplete. f.mu must be held.
func (f *Frontier) markUncertainLocked(runID string) {
	f.runLocked(runID).uncertain = true
}

// touchLocked records that this process changed the state of entry h of
// runID. f.mu must be held.
func (f *Frontier) touchLocked(runID string, h hash16) {
	if r := f.runs[runID]; r != nil {
		for _, sc := range r.scans {
			sc.touched[h] = struct{}{}
		}
	}
}

// qitem is an entry believed claimable, with what a claim returns. It is
// kept small (48 bytes and the URL): a run may queue millions. The host is
// read from the URL when claimed; the parent and the time it was added are
// only in the stored entry.
type qitem struct {
	h        hash16
	seq      int64 // sequence number of its current state
	attempts int32
	depth    int32
	url      string
}

// watchItem is an entry leased by another worker until until.
type watchItem struct {
	qitem
	until time.Time
}

func (r *run) push(it qitem)      { r.queue.push(it) }
func (r *run) pushFront(it qitem) { r.queue.pushFront(it) }
func (r *run) pop() (qitem, bool) { return r.queue.pop() }
func (r *run) queued() int        { return r.queue.len() }

// popExpired removes and returns a watched entry whose lease has ended.
func (r *run) popExpired(now time.Time) (qitem, bool) {
	for i, w := range r.watch {
		if !w.until.After(now) {
			r.watch = slices.Delete(r.watch, i, i+1)
			return w.qitem, true
		}
	}
	return qitem{}, false
}

// runLocked returns the state of runID, creating it. f.mu must be held.
func (f *Frontier) runLocked(runID string) *run {
	r := f.runs[runID]
	if r == nil {
		// Scanning is for work of other workers: not before they could
		// have added any.
		r = &run{id: runID, seen: make(map[hash16]struct{}), lastScan: f.now()}
		f.runs[runID] = r
	}
	return r
}

// Queued returns how many entries of runID this process believes claimable
// or waits on, for progress lines. It does no I/O.
func (f *Frontier) Queued(runID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.runs[runID]; r != nil {
		return r.queued() + len(r.watch)
	}
	return 0
}

// Forget drops this process's memory of runID (seen set and queue), for a
// long-lived worker whose run has finished. Held leases are kept.
func (f *Frontier) Forget(runID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.runs, runID)
}

// Add inserts links as pending entries of runID and returns how many were
// new. It is idempotent: a URL already in the run (in this process's memory
// or in the store) is skipped, and duplicate-key errors from the server are
// not errors. New entries join the end of this process's queue.
func (f *Frontier) Add(ctx context.Context, runID string, links []Link) (int, error) {
	if err := f.register(ctx, runID); err != nil {
		return 0, err
	}
	now := f.now().UTC().Truncate(time.Millisecond)
	f.mu.Lock()
	r := f.runLocked(runID)
	var cands []qitem
	var candLink []int // index in links of each candidate
	batchSeen := make(map[hash16]struct{}, len(links))
	for i, l := range links {
		h := urlHash(l.URL)
		if _, ok := r.seen[h]; ok {
			continue
		}
		if _, ok := batchSeen[h]; ok {
			continue
		}
		batchSeen[h] = struct{}{}
		candLink = append(candLink, i)
		cands = append(cands, qitem{h: h, depth: int32(l.Depth), url: l.URL})
	}
	f.mu.Unlock()

	added := 0
	for start := 0; start < len(cands); start += insertBatch {
		batch := cands[start:min(start+insertBatch, len(cands))]
		docs := make([]any, len(batch))
		for i, c := range batch {
			l := links[candLink[start+i]]
			d := bson.D{
				{Key: "_id", Value: entryID(runID, c.h)},
				{Key: "run_id", Value: runID},
				{Key: "url", Value: c.url},
				{Key: "host", Value: l.Host},
				{Key: "depth", Value: c.depth},
			}
			if l.Parent != "" {
				d = append(d, bson.E{Key: "parent", Value: l.Parent})
			}
			docs[i] = append(d, bson.E{Key: "added_at", Value: now})
		}
		failed, err := f.entries.InsertMany(ctx, docs)
		if err != nil {
			return added, fmt.Errorf("add %d links to run %s: %w", len(batch), runID, err)
		}
		f.mu.Lock()
		for i, c := range batch {
			r.seen[c.h] = struct{}{}
			if !failed[i] {
				r.push(c)
				added++
				if r.loading {
					r.addedWhileLoading[c.h] = struct{}{}
				}
			}
		}
		f.mu.Unlock()
	}
	return added, nil
}

// LoadRun reads runID from the store to restore this process's memory of it
// after a restart: the seen set, the queue of pending entries and of leased
// entries whose lease has expired (by depth, then insertion order), and the
// entries still leased by others, claimed once their leases expire. Leases
// held by the workers named in reclaim count as expired at once: pass the
// worker names of a process known to be dead (for example on resume on the
// same machine), so that its in-flight pages need not wait for the lease.
// LoadRun returns the run's counts. It scans the run's entries and log
// (only the run's documents, see Counts).
func (f *Frontier) LoadRun(ctx context.Context, runID string, reclaim ...string) (Counts, error) {
	if err := f.register(ctx, runID); err != nil {
		return Counts{}, err
	}
	f.mu.Lock()
	r := f.runLocked(runID)
	if r.reclaim == nil {
		r.reclaim = make(map[string]bool)
	}
	for _, w := range reclaim {
		r.reclaim[w] = true
	}
	f.mu.Unlock()
	c, err := f.refresh(ctx, runID, true)
	if err != nil {
		return c, fmt.Errorf("load frontier of run %s: %w", runID, err)
	}
	return c, nil
}

// logRec is a document of the log collection, as scans read it.
type logRec struct {
	Entry      string    `bson:"entry"`
	Seq        int64     `bson:"seq"`
	State      State     `bson:"state"`
	Worker     string    `bson:"worker"`
	LeaseUntil time.Time `bson:"lease_until"`
	Attempts   int32     `bson:"attempts"`
	// URL and Depth are set on records written since depth was recorded,
	// when the URL is the entry's own (not redacted).
	URL   string `bson:"url"`
	Depth *int32 `bson:"depth"`
}

// refresh scans runID's entries and log, merges what is claimable into the
// local queue and returns the counts. Unless force, it does nothing (and
// returns errSkipped) when a scan ran recently (see Options.ScanInterval).
// It reads only the run's documents (scanRun).
func (f *Frontier) refresh(ctx context.Context, runID string, force bool) (Counts, error) {
	now := f.now()
	f.mu.Lock()
	r := f.runLocked(runID)
	if !force && !f.scanDueLocked(r, now) {
		f.mu.Unlock()
		return Counts{}, errSkipped
	}
	r.scanning = true
	sc := &scanSet{touched: make(map[hash16]struct{})}
	r.scans = append(r.scans, sc)
	reclaim := maps.Clone(r.reclaim)
	f.mu.Unlock()
	start := time.Now()
	defer func() {
		f.mu.Lock()
		r.scans = slices.DeleteFunc(r.scans, func(x *scanSet) bool { return x == sc })
		r.scanning = false
		r.lastScan = now
		r.lastScanCost = time.Since(start)
		f.mu.Unlock()
	}()
	found, err := f.scanState(ctx, runID, reclaim, now)
	if err != nil {
		return found.counts, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mergeScanLocked(r, found, sc.touched)
	return found.counts, nil
}

// scanResult is what one scan of a run found.
type scanResult struct {
	counts Counts
	ready  []qitem     // claimable now, by depth
	watch  []watchItem // leased by live workers
	seen   map[hash16]struct{}
}

// scanState reads runID's log, then its entries, and sorts them by where
// they go (see place).
func (f *Frontier) scanState(ctx context.Context, runID string, reclaim map[string]bool, now time.Time) (scanResult, error) {
	res := scanResult{seen: make(map[hash16]struct{})}
	// Log first: an entry added after this point is new anyway, and a
	// state written after it only makes a queued item stale (a stale claim
	// loses its insert and is dropped).
	latest, err := f.scanLog(ctx, runID)
	if err != nil {
		return res, err
	}
	res.counts, err = f.readEntries(ctx, runID, latest, reclaim, now, func(it qitem, p placement, until time.Time) error {
		res.seen[it.h] = struct{}{}
		switch p {
		case placeReady:
			res.ready = append(res.ready, it)
		case placeWatch:
			res.watch = append(res.watch, watchItem{it, until})
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	slices.SortStableFunc(res.ready, func(a, b qitem) int { return int(a.depth - b.depth) })
	return res, nil
}

// mergeScanLocked replaces r's queue and watch list by what a scan found.
// The scan saw the entries queued here in a state at least as recent: its
// view replaces theirs. Entries added, released or otherwise changed here
// since the scan started (touched) keep their place after it. What this
// process holds stays out. f.mu must be held.
func (f *Frontier) mergeScanLocked(r *run, found scanResult, touched map[hash16]struct{}) {
	for h := range found.seen {
		r.seen[h] = struct{}{}
	}
	var newer []qitem
	r.queue.each(func(it qitem) {
		if _, scanned := found.seen[it.h]; !scanned {
			newer = append(newer, it)
		}
	})
	r.queue.each(func(it qitem) {
		_, scanned := found.seen[it.h]
		if _, changed := touched[it.h]; changed && scanned {
			newer = append(newer, it) // requeued here during the scan
		}
	})
	mine := func(h hash16) bool {
		_, ok := f.held[entryID(r.id, h)]
		return ok
	}
	keep := func(h hash16) bool {
		_, changed := touched[h]
		return !mine(h) && !changed
	}
	r.queue.reset()
	for _, it := range found.ready {
		if keep(it.h) {
			r.push(it)
		}
	}
	for _, it := range newer {
		if !mine(it.h) {
			r.push(it)
		}
	}
	var oldWatch []watchItem
	for _, w := range r.watch {
		if _, changed := touched[w.h]; changed {
			oldWatch = append(oldWatch, w)
		}
	}
	r.watch = r.watch[:0]
	for _, w := range found.watch {
		if keep(w.h) {
			r.watch = append(r.watch, w)
		}
	}
	r.watch = append(r.watch, oldWatch...)
}

// scanLog reads the latest log record of every entry of runID: only the
// run's records (scanRun), in one read transaction on the embedded store.
func (f *Frontier) scanLog(ctx context.Context, runID string) (map[string]logRec, error) {
	latest := make(map[string]logRec)
	err := f.scanRun(ctx, f.log, runID, func(doc bson.Raw) error {
		var l logRec
		if err := bson.Unmarshal(doc, &l); err != nil {
			return fmt.Errorf("decode %s: %w", doc, err)
		}
		if old, ok := latest[l.Entry]; !ok || l.Seq > old.Seq {
			latest[l.Entry] = l
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan log: %w", err)
	}
	return latest, nil
}

// readEntries reads runID's entries (scanRun) and calls fn, stopping at its
// first error, with each one made by ID, where it goes by its latest
// record in latest (see place; an entry without one is pending) and, for
// placeWatch, when its lease ends. It returns the run's counts.
func (f *Frontier) readEntries(ctx context.Context, runID string, latest map[string]logRec, reclaim map[string]bool, now time.Time, fn func(it qitem, p placement, until time.Time) error) (Counts, error) {
	var c Counts
	err := f.scanRun(ctx, f.entries, runID, func(doc bson.Raw) error {
		var e entryDoc
		if err := bson.Unmarshal(doc, &e); err != nil {
			return fmt.Errorf("decode %s: %w", doc, err)
		}
		_, h, ok := splitID(e.ID)
		if !ok {
			return nil // not made by ID; leave it alone
		}
		l, ok := latest[e.ID]
		if !ok {
			l.State = Pending
		}
		it := qitem{h: h, seq: l.Seq, attempts: l.Attempts, depth: e.Depth, url: e.URL}
		return fn(it, place(&c, l, reclaim, now), l.LeaseUntil)
	})
	if err != nil {
		return c, fmt.Errorf("scan entries: %w", err)
	}
	return c, nil
}

// entryDoc is a document of the entries collection, as scans read it.
type entryDoc struct {
	ID    string `bson:"_id"`
	URL   string `bson:"url"`
	Depth int32  `bson:"depth"`
}

// errSkipped is refresh's answer when it did not scan.
var errSkipped = errors.New("scan skipped")

// scanTimeout bounds a background scan.
const scanTimeout = 10 * time.Minute

// refreshInBackground starts a rate-limited scan of runID unless one is
// running or ran recently. Its errors are logged: the next Drained or Counts
// reports a store that stays unreachable.
func (f *Frontier) refreshInBackground(runID string) {
	f.mu.Lock()
	r := f.runLocked(runID)
	if !f.scanDueLocked(r, f.now()) {
		f.mu.Unlock()
		return
	}
	r.scanning = true // reserved: no second background scan meanwhile
	f.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), scanTimeout)
		defer cancel()
		// Alone, this Frontier already knows everything a scan would find.
		alone, err := f.alone(ctx, runID)
		f.mu.Lock()
		r.scanning = false
		if err == nil && alone {
			r.lastScan = f.now()
		}
		f.mu.Unlock()
		if err == nil && alone {
			return
		}
		if _, err := f.refresh(ctx, runID, true); err != nil {
			f.logger.Warn("background frontier scan failed", "run", runID, "err", err)
		}
	}()
}

func (f *Frontier) scanDueLocked(r *run, now time.Time) bool {
	gap := max(f.scanInterval, 20*r.lastScanCost)
	return !r.scanning && (r.lastScan.IsZero() || now.Sub(r.lastScan) >= gap)
}
