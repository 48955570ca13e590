package frontier

import (
	"errors"
	"testing"
)

// TestLogCursorMergesInIDOrder: the log read alongside the entries gives
// each entry its latest record, skips records of entries that do not
// exist, and says when the store's order is not _id order (the load then
// reads the whole log first instead).
func TestLogCursorMergesInIDOrder(t *testing.T) {
	cursor := func(recs ...logRec) *logCursor {
		ch := make(chan []logRec, len(recs))
		for _, r := range recs {
			ch <- []logRec{r}
		}
		close(ch)
		return &logCursor{ch: ch}
	}
	rec := func(entry string, seq int64, st State) logRec { return logRec{Entry: entry, Seq: seq, State: st} }

	c := cursor(rec("r-a", 1, Leased), rec("r-a", 2, Done), rec("r-b", 1, Leased), rec("r-c", 1, Leased), rec("r-c", 3, Pending), rec("r-c", 2, Leased))
	for _, tc := range []struct {
		entry string
		found bool
		seq   int64
		state State
	}{
		{"r-a", true, 2, Done},
		{"r-bb", false, 0, ""}, // r-b has records but no entry: skipped
		{"r-c", true, 3, Pending},
		{"r-d", false, 0, ""},
	} {
		l, found, err := c.latest(tc.entry)
		if err != nil || found != tc.found || l.Seq != tc.seq || l.State != tc.state {
			t.Errorf("latest(%s) = seq %d %q, found %v, %v; want seq %d %q, found %v", tc.entry, l.Seq, l.State, found, err, tc.seq, tc.state, tc.found)
		}
	}

	c = cursor(rec("r-b", 1, Done), rec("r-a", 1, Done))
	if _, _, err := c.latest("r-c"); !errors.Is(err, errUnordered) {
		t.Errorf("latest over a log out of _id order: err = %v, want errUnordered", err)
	}
}
