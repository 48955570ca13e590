package jobs

import "go.mongodb.org/mongo-driver/v2/bson"

// Counters are what a run (or one of its workers) did. Their bson and JSON
// names are a contract with scripts (`run --json`) and Compass users.
type Counters struct {
	Pages        int64 `bson:"pages" json:"pages"`
	Hits         int64 `bson:"hits" json:"hits"`
	Misses       int64 `bson:"misses" json:"misses"`
	Revalidated  int64 `bson:"revalidated" json:"revalidated"`
	Stale        int64 `bson:"stale" json:"stale"`
	Errors       int64 `bson:"errors" json:"errors"`
	Items        int64 `bson:"items" json:"items"`
	NetworkBytes int64 `bson:"network_bytes" json:"network_bytes"`
	SavedBytes   int64 `bson:"saved_bytes" json:"saved_bytes"`
	// Robots counts URLs not fetched because robots.txt disallows them
	// (not errors).
	Robots int64 `bson:"robots_blocked" json:"robots_blocked"`
	// Retries counts requests sent again after a transient failure.
	Retries int64 `bson:"retries" json:"retries"`
	// Parsed counts HTML pages parsed in the run; Reused those whose links
	// and items came from a stored parse of the same body instead.
	Parsed int64 `bson:"parsed" json:"parsed"`
	Reused int64 `bson:"reused" json:"reused"`
	// New, Changed, Unchanged and Gone classify the run's pages against
	// the job's previous runs (package changes); when the run completes
	// they are set from its change records.
	New       int64 `bson:"new" json:"new"`
	Changed   int64 `bson:"changed" json:"changed"`
	Unchanged int64 `bson:"unchanged" json:"unchanged"`
	Gone      int64 `bson:"gone" json:"gone"`
}

// ErrorRatio is the share of the URLs that failed for good among those
// fetched or failed: Errors / (Pages + Errors); 0 when there are none.
func (c Counters) ErrorRatio() float64 {
	if c.Errors <= 0 {
		return 0
	}
	return float64(c.Errors) / float64(c.Pages+c.Errors)
}

// Sub returns c minus o, field by field.
func (c Counters) Sub(o Counters) Counters {
	return Counters{
		Pages: c.Pages - o.Pages, Hits: c.Hits - o.Hits, Misses: c.Misses - o.Misses,
		Revalidated: c.Revalidated - o.Revalidated, Stale: c.Stale - o.Stale,
		Errors: c.Errors - o.Errors, Items: c.Items - o.Items,
		NetworkBytes: c.NetworkBytes - o.NetworkBytes, SavedBytes: c.SavedBytes - o.SavedBytes,
		Robots: c.Robots - o.Robots, Retries: c.Retries - o.Retries,
		Parsed: c.Parsed - o.Parsed, Reused: c.Reused - o.Reused,
		New: c.New - o.New, Changed: c.Changed - o.Changed, Unchanged: c.Unchanged - o.Unchanged, Gone: c.Gone - o.Gone,
	}
}

// Add returns c plus o, field by field.
func (c Counters) Add(o Counters) Counters {
	return Counters{
		Pages: c.Pages + o.Pages, Hits: c.Hits + o.Hits, Misses: c.Misses + o.Misses,
		Revalidated: c.Revalidated + o.Revalidated, Stale: c.Stale + o.Stale,
		Errors: c.Errors + o.Errors, Items: c.Items + o.Items,
		NetworkBytes: c.NetworkBytes + o.NetworkBytes, SavedBytes: c.SavedBytes + o.SavedBytes,
		Robots: c.Robots + o.Robots, Retries: c.Retries + o.Retries,
		Parsed: c.Parsed + o.Parsed, Reused: c.Reused + o.Reused,
		New: c.New + o.New, Changed: c.Changed + o.Changed, Unchanged: c.Unchanged + o.Unchanged, Gone: c.Gone + o.Gone,
	}
}

func incCounters(d Counters) bson.D {
	var out bson.D
	add := func(k string, v int64) {
		if v != 0 {
			out = append(out, bson.E{Key: "counters." + k, Value: v})
		}
	}
	add("pages", d.Pages)
	add("hits", d.Hits)
	add("misses", d.Misses)
	add("revalidated", d.Revalidated)
	add("stale", d.Stale)
	add("errors", d.Errors)
	add("items", d.Items)
	add("network_bytes", d.NetworkBytes)
	add("saved_bytes", d.SavedBytes)
	add("robots_blocked", d.Robots)
	add("retries", d.Retries)
	add("parsed", d.Parsed)
	add("reused", d.Reused)
	add("new", d.New)
	add("changed", d.Changed)
	add("unchanged", d.Unchanged)
	add("gone", d.Gone)
	return out
}
