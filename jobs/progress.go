package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Snapshot is a run's progress at one moment, as this process sees it.
type Snapshot struct {
	// Job and RunID name the run.
	Job, RunID string
	Counters
	// Queue is the number of URLs waiting in the frontier.
	Queue int64
	// Elapsed is the time since this process started the run (this
	// session: a resumed run's earlier sessions and the time between them
	// are not in it).
	Elapsed time.Duration
	// QueueUnknown is true while a resume still reads the run's frontier:
	// Queue is then a lower bound, and no ETA is shown.
	QueueUnknown bool
}

// Rate is pages per second over Elapsed (0 before any time passed).
func (s Snapshot) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Pages) / s.Elapsed.Seconds()
}

// Reporter shows a run's progress: on a terminal, one live line rewritten
// in place with \r (at most every LiveInterval); otherwise a log line every
// LogInterval. It is safe for concurrent use.
type Reporter struct {
	// W receives the live line (usually os.Stderr). Nil disables it.
	W io.Writer
	// Live selects the rewritten line; otherwise Logger gets plain lines.
	Live bool
	// Logger receives the plain lines. If nil, slog.Default().
	Logger *slog.Logger
	// LiveInterval and LogInterval throttle output; 250ms and 10s if zero.
	LiveInterval, LogInterval time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time

	mu     sync.Mutex
	last   time.Time
	shown  bool
	width  int
	recent []Snapshot // the last RecentWindow of updates, for the current rate
}

// RecentWindow is the span over which the live line's rate (and its ETA)
// is measured: recent enough to follow a crawl that moves from cache hits
// to downloads, long enough not to jump with every page.
const RecentWindow = 10 * time.Second

// recentRate is pages per second over the last RecentWindow of updates
// ending with s, or over the whole session while it is shorter.
func (r *Reporter) recentRate(s Snapshot) float64 {
	r.recent = append(r.recent, s)
	drop := 0
	for drop < len(r.recent)-1 && s.Elapsed-r.recent[drop+1].Elapsed >= RecentWindow {
		drop++
	}
	r.recent = r.recent[drop:]
	first := r.recent[0]
	if span := s.Elapsed - first.Elapsed; span >= RecentWindow/2 {
		return float64(s.Pages-first.Pages) / span.Seconds()
	}
	return s.Rate()
}

// Update shows s if enough time passed since the last output.
func (r *Reporter) Update(s Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	t := now()
	every := r.LogInterval
	if every == 0 {
		every = 10 * time.Second
	}
	if r.Live {
		every = r.LiveInterval
		if every == 0 {
			every = 250 * time.Millisecond
		}
	}
	rate := r.recentRate(s)
	if !r.last.IsZero() && t.Sub(r.last) < every {
		return
	}
	if r.last.IsZero() && !r.Live {
		// The first plain line waits a full interval: short runs print
		// only their summary.
		r.last = t
		return
	}
	r.last = t
	if r.Live {
		if r.W == nil {
			return
		}
		line := ProgressLine(s, rate)
		pad := ""
		if n := r.width - len(line); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		r.width = len(line)
		fmt.Fprintf(r.W, "\r%s%s", line, pad)
		r.shown = true
		return
	}
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	attrs := []any{"elapsed", s.Elapsed.Round(time.Second), "pages", s.Pages, "pages_per_s", fmt.Sprintf("%.1f", rate), "hits", s.Hits,
		"revalidated", s.Revalidated, "misses", s.Misses, "queue", s.Queue, "errors", s.Errors, "items", s.Items}
	if eta, ok := s.ETA(rate); ok {
		attrs = append(attrs, "eta", eta.Round(time.Second))
	}
	log.Info("progress", attrs...)
}

// Say writes msg on a line of its own at once, clearing the live line
// first (the next Update draws it again).
func (r *Reporter) Say(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.W == nil {
		return
	}
	if r.shown {
		fmt.Fprintf(r.W, "\r%s\r", strings.Repeat(" ", r.width))
		r.shown = false
	}
	fmt.Fprintln(r.W, msg)
}

// Done clears the live line, so the summary starts on a clean line.
func (r *Reporter) Done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shown && r.W != nil {
		fmt.Fprintf(r.W, "\r%s\r", strings.Repeat(" ", r.width))
		r.shown = false
	}
}

// ETA is how long the URLs waiting take at rate pages per second; false
// when that is not known (the frontier is still being read, nothing is
// waiting, or no page was done yet). Links found later add to it.
func (s Snapshot) ETA(rate float64) (time.Duration, bool) {
	if s.QueueUnknown || s.Queue <= 0 || rate <= 0 {
		return 0, false
	}
	return time.Duration(float64(s.Queue) / rate * float64(time.Second)), true
}

// ProgressLine formats s as the live progress line, with rate (pages per
// second) and the ETA it gives:
//
//	1m05s  pages 724  11.1/s  ETA 23s  items 630  hits 0 / 304s 0 / misses 724  errors 0  queue 251
func ProgressLine(s Snapshot, rate float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  pages %d  %.1f/s", clock(s.Elapsed), s.Pages, rate)
	if eta, ok := s.ETA(rate); ok {
		fmt.Fprintf(&b, "  ETA %s", clock(eta))
	}
	fmt.Fprintf(&b, "  items %d  hits %d / 304s %d / misses %d  errors %d  queue %d",
		s.Items, s.Hits, s.Revalidated, s.Misses, s.Errors, s.Queue)
	if s.QueueUnknown {
		b.WriteString("+ (reading the frontier)")
	}
	return b.String()
}

// clock formats d for the live line: 42s, 3m05s, 2h03m, 3d04h.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// WriteSummary writes the end-of-run summary table of r to w.
func WriteSummary(w io.Writer, r *Run) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c := r.Counters
	el := r.Elapsed().Round(time.Millisecond)
	active := r.Active().Round(time.Millisecond)
	rate := 0.0
	if active > 0 {
		rate = float64(c.Pages) / active.Seconds()
	}
	if active < el { // resumed: the rate leaves the time between sessions out
		fmt.Fprintf(tw, "run\t%s\t%s in %s (crawling %s, idle %s between sessions)\n", r.ID, r.Status, el, active, (el - active).Round(time.Second))
	} else {
		fmt.Fprintf(tw, "run\t%s\t%s in %s\n", r.ID, r.Status, el)
	}
	fmt.Fprintf(tw, "pages\t%d\t%.1f/s\n", c.Pages, rate)
	fmt.Fprintf(tw, "cache\thits %d\trevalidated (304) %d, misses %d, stale %d\n", c.Hits, c.Revalidated, c.Misses, c.Stale)
	fmt.Fprintf(tw, "items\t%d\t\n", c.Items)
	fmt.Fprintf(tw, "parsed\t%d\t%d pages from a stored parse\n", c.Parsed, c.Reused)
	fmt.Fprintf(tw, "change\tnew %d\tchanged %d, unchanged %d, gone %d\n", c.New, c.Changed, c.Unchanged, c.Gone)
	errs := ""
	if c.Errors > 0 {
		errs = fmt.Sprintf("%s (%.1f%% of %d URLs)", countList(r.Breakdown.ErrorKinds, " "), 100*c.ErrorRatio(), c.Pages+c.Errors)
	}
	fmt.Fprintf(tw, "errors\t%d\t%s\n", c.Errors, errs)
	if len(r.Breakdown.Statuses) > 0 {
		fmt.Fprintf(tw, "status\t%s\t\n", countList(r.Breakdown.Statuses, " ×"))
	}
	fmt.Fprintf(tw, "robots\t%d blocked\tretries %d\n", c.Robots, c.Retries)
	fmt.Fprintf(tw, "bytes\t%s downloaded\t%s served from cache\n", HumanBytes(c.NetworkBytes), HumanBytes(c.SavedBytes))
	_ = tw.Flush()
	if r.Error != "" {
		fmt.Fprintf(w, "error   %s\n", r.Error)
	}
}

// countList formats counts as "a<sep>1, b<sep>2", keys in order.
func countList(counts map[string]int64, sep string) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s%s%d", k, sep, counts[k])
	}
	return strings.Join(parts, ", ")
}

// HumanBytes formats n bytes with a binary unit (B, KiB, MiB, GiB).
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 2; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMG"[exp])
}

// LogHandler wraps h so that, in live mode, the progress line is cleared
// before each log record is written (the next Update draws it again below
// the record). Use it for the logger writing to the same terminal.
func (r *Reporter) LogHandler(h slog.Handler) slog.Handler {
	if !r.Live {
		return h
	}
	return clearingHandler{Handler: h, r: r}
}

type clearingHandler struct {
	slog.Handler
	r *Reporter
}

func (h clearingHandler) Handle(ctx context.Context, rec slog.Record) error {
	h.r.Done()
	h.r.mu.Lock()
	h.r.last = time.Time{} // redraw at the next update
	h.r.mu.Unlock()
	return h.Handler.Handle(ctx, rec)
}

func (h clearingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return clearingHandler{Handler: h.Handler.WithAttrs(as), r: h.r}
}

func (h clearingHandler) WithGroup(name string) slog.Handler {
	return clearingHandler{Handler: h.Handler.WithGroup(name), r: h.r}
}
