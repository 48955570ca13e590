package jobs

import (
	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/changes"
)

// Tally is what a run's durable state says it did, for the counters that
// workers' progress reports can miss (a worker killed with kill -9 loses its
// last unreported seconds) or count twice (a page fetched, not acknowledged,
// fetched again by the resume). A nil field is unknown: the run keeps the
// sum the workers reported.
type Tally struct {
	// Pages is the number of frontier entries acknowledged done.
	Pages *int64 `bson:"pages,omitempty"`
	// Errors is the number of URLs that failed for good.
	Errors *int64 `bson:"errors,omitempty"`
	// Items is the number of items the run's mongodb output holds.
	Items *int64 `bson:"items,omitempty"`
	// Cache, when set, replaces the cache counters (hits, misses,
	// revalidated, stale and bytes); see cacheTally.
	Cache *Counters `bson:"cache,omitempty"`
	// Changes, when set, replaces new, changed, unchanged and gone: the
	// run's change records, counted when it completed.
	Changes *changes.Counts `bson:"changes,omitempty"`
	// Parses, when set, replaces parsed and reused, and Breakdown the
	// errors by kind and the responses by status: counted from the run's
	// change records too.
	Parses    *ParseCounts `bson:"parses,omitempty"`
	Breakdown *Breakdown   `bson:"breakdown,omitempty"`
}

// ParseCounts are a run's HTML pages parsed, and reused from a stored
// parse (Counters.Parsed and Counters.Reused).
type ParseCounts struct {
	Parsed int64 `bson:"parsed"`
	Reused int64 `bson:"reused"`
}

// cacheTally returns the cache counters to record for a run whose own
// counters are reported and whose workers' own totals are workers, or nil
// when the run's counters already account for them. Workers add their
// progress to the run's counters by increment, and on a server whose
// updates are not atomic (the embedded store: an update reads the document
// and writes it back) concurrent workers can lose each other's increments;
// each worker's own totals are absolute, so their sum is the floor. A
// field is never lowered.
func cacheTally(reported Counters, workers map[string]Worker) *Counters {
	var sum Counters
	for _, w := range workers {
		sum = sum.Add(w.Counters)
	}
	out := reported
	out.Hits = max(reported.Hits, sum.Hits)
	out.Misses = max(reported.Misses, sum.Misses)
	out.Revalidated = max(reported.Revalidated, sum.Revalidated)
	out.Stale = max(reported.Stale, sum.Stale)
	out.NetworkBytes = max(reported.NetworkBytes, sum.NetworkBytes)
	out.SavedBytes = max(reported.SavedBytes, sum.SavedBytes)
	if out == reported {
		return nil
	}
	return &out
}

// set returns the $set fields of the run record that t knows.
func (t Tally) set() bson.D {
	var out bson.D
	add := func(k string, v *int64) {
		if v != nil {
			out = append(out, bson.E{Key: "counters." + k, Value: *v})
		}
	}
	add("pages", t.Pages)
	add("errors", t.Errors)
	add("items", t.Items)
	if c := t.Cache; c != nil {
		add("hits", &c.Hits)
		add("misses", &c.Misses)
		add("revalidated", &c.Revalidated)
		add("stale", &c.Stale)
		add("network_bytes", &c.NetworkBytes)
		add("saved_bytes", &c.SavedBytes)
	}
	if c := t.Changes; c != nil {
		add("new", &c.New)
		add("changed", &c.Changed)
		add("unchanged", &c.Unchanged)
		add("gone", &c.Gone)
	}
	if p := t.Parses; p != nil {
		add("parsed", &p.Parsed)
		add("reused", &p.Reused)
	}
	if b := t.Breakdown; b != nil {
		out = append(out, bson.E{Key: "error_kinds", Value: sanitizeKeys(b.ErrorKinds)},
			bson.E{Key: "statuses", Value: sanitizeKeys(b.Statuses)})
	}
	return out
}

// sanitizeKeys returns m with its keys usable as field names.
func sanitizeKeys(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[sanitizeKey(k)] += v
	}
	return out
}

// setSummary sets parsed, reused and the breakdown from the run's change
// records (a page once, however many sessions fetched it), unless some
// record lacks them (written by an earlier release).
func (t *Tally) setSummary(s changes.Summary) {
	if !s.Complete {
		return
	}
	t.Parses = &ParseCounts{Parsed: s.Parsed, Reused: s.Reused}
	t.Breakdown = &Breakdown{ErrorKinds: s.ErrorKinds, Statuses: s.Statuses}
}
