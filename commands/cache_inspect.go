package commands

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/parses"
	"crawlcache/proxy"
	"crawlcache/store"
)

// statsJSON is the JSON form of `cache stats`.
type statsJSON struct {
	Database        string           `json:"database"`
	Entries         int64            `json:"entries"`
	TotalSize       int64            `json:"total_size"`
	Stale           int64            `json:"stale"`
	Expired         int64            `json:"expired"`
	Revalidations   int64            `json:"revalidations"`
	Redirects       int64            `json:"redirects"`
	TTL             ttlJSON          `json:"ttl"`
	OldestValidated *time.Time       `json:"oldest_validated,omitempty"`
	NewestValidated *time.Time       `json:"newest_validated,omitempty"`
	ByStatus        map[string]int64 `json:"by_status"`
	// Counters are the cumulative counters of long-running cache users
	// (the proxy), by name.
	Counters map[string]proxy.Counters `json:"counters,omitempty"`
	// Files are the embedded store's database files (absent for a store
	// reached by URI).
	Files []fileJSON `json:"files,omitempty"`
}

// fileJSON is one database file of the embedded store.
type fileJSON struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	WALSize int64  `json:"wal_size"`
}

func runCacheStats(c *cli.Context) error {
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, s *store.Store) error {
		st, err := a.Stats(ctx)
		if err != nil {
			return err
		}
		counters, err := proxy.ReadCounters(ctx, s, c.String("db"))
		if err != nil {
			return err
		}
		var files []store.DataFile
		if s.Embedded {
			if files, err = store.DataFiles(s.DataDir); err != nil {
				return err
			}
		}
		statuses := make([]int, 0, len(st.ByStatus))
		for code := range st.ByStatus {
			statuses = append(statuses, code)
		}
		slices.Sort(statuses)
		if c.Bool("json") {
			j := statsJSON{
				Database: st.Database, Entries: st.Count, TotalSize: st.TotalSize, Stale: st.Stale, Expired: st.Expired,
				Revalidations: st.Revalidations, Redirects: st.Redirects, TTL: toTTLJSON(st.TTL), ByStatus: map[string]int64{},
				Counters: counters,
			}
			for _, f := range files {
				j.Files = append(j.Files, fileJSON{Name: f.Name, Size: f.Size, WALSize: f.WALSize})
			}
			if st.Count > 0 {
				oldest, newest := st.Oldest.UTC(), st.Newest.UTC()
				j.OldestValidated, j.NewestValidated = &oldest, &newest
			}
			for _, code := range statuses {
				j.ByStatus[strconv.Itoa(code)] = st.ByStatus[code]
			}
			return writeJSON(c.App.Writer, j)
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "database\t%s on %s\n", st.Database, s.Describe())
		fmt.Fprintf(tw, "entries\t%d\n", st.Count)
		fmt.Fprintf(tw, "body size\t%s\n", fmtSize(st.TotalSize))
		fmt.Fprintf(tw, "stale\t%d\tpast expires: revalidated or fetched again on next use\n", st.Stale)
		if st.TTL.Set {
			by := "the next sweep"
			if st.TTL.Mechanism == cache.MechanismIndex {
				by = "MongoDB within a minute or so"
			}
			fmt.Fprintf(tw, "expired\t%d\tolder than the TTL: deleted by %s\n", st.Expired, by)
			fmt.Fprintf(tw, "ttl\t%s on %s, enforced by the %s\n", fmtDuration(st.TTL.TTL), st.TTL.Field, st.TTL.Mechanism)
		} else {
			fmt.Fprintf(tw, "expired\t0\tno TTL is set\n")
			fmt.Fprintf(tw, "ttl\tnone\n")
		}
		if st.Count > 0 {
			now := time.Now()
			fmt.Fprintf(tw, "oldest validated\t%s (%s)\n", fmtTime(st.Oldest), fmtAge(st.Oldest, now))
			fmt.Fprintf(tw, "newest validated\t%s (%s)\n", fmtTime(st.Newest), fmtAge(st.Newest, now))
		}
		fmt.Fprintf(tw, "revalidations\t%d\n", st.Revalidations)
		fmt.Fprintf(tw, "redirects\t%d\n", st.Redirects)
		if len(statuses) > 0 {
			fmt.Fprintf(tw, "\nSTATUS\tENTRIES\n")
			for _, code := range statuses {
				fmt.Fprintf(tw, "%d\t%d\n", code, st.ByStatus[code])
			}
		}
		if len(files) > 0 {
			fmt.Fprintf(tw, "\nFILE\tSIZE\tWAL\n")
			for _, f := range files {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, fmtSize(f.Size), fmtSize(f.WALSize))
			}
		}
		if len(counters) > 0 {
			fmt.Fprintf(tw, "\nCOUNTERS\tHITS\tMISSES\tREVALIDATED\tSTALE\tDOWNLOADED\tSAVED\n")
			for _, name := range slices.Sorted(maps.Keys(counters)) {
				k := counters[name]
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", name, k.Hits, k.Misses, k.Revalidated, k.Stale, fmtSize(k.NetworkBytes), fmtSize(k.SavedBytes))
			}
		}
		return tw.Flush()
	})
}

// entryJSON is the JSON form of one listed entry.
type entryJSON struct {
	Key         string     `json:"key"`
	URL         string     `json:"url"`
	Method      string     `json:"method"`
	Status      int        `json:"status"`
	ContentType string     `json:"content_type,omitempty"`
	Size        int64      `json:"size"`
	CreatedAt   time.Time  `json:"created_at"`
	ValidatedAt time.Time  `json:"validated_at"`
	Expires     *time.Time `json:"expires"`
	Revalidated bool       `json:"revalidated"`
	Stale       bool       `json:"stale"`
	Expired     bool       `json:"expired"`
	// Credential is set for an entry fetched with credentials: whom it is
	// served to (bound_to token or job, and a fingerprint), never the
	// credential itself.
	Credential *cache.CredentialInfo `json:"credential,omitempty"`
}

func toEntryJSON(e cache.EntrySummary) entryJSON {
	j := entryJSON{
		Key: e.Key, URL: e.URL, Method: e.Method, Status: e.Status, ContentType: e.ContentType, Size: e.Size,
		CreatedAt: e.CreatedAt.UTC(), ValidatedAt: e.ValidatedAt.UTC(),
		Revalidated: e.Revalidated, Stale: e.Stale, Expired: e.Expired, Credential: e.Credential,
	}
	if e.Expires != nil {
		t := e.Expires.UTC()
		j.Expires = &t
	}
	return j
}

func entryState(e cache.EntrySummary) string {
	switch {
	case e.Expired:
		return "expired"
	case e.Stale:
		return "stale"
	}
	return "fresh"
}

func runCacheLs(c *cli.Context) error {
	if c.Int("limit") < 0 {
		return cli.Exit("cache ls: --limit must be 0 (all) or more", 2)
	}
	if err := checkMatch(c); err != nil {
		return err
	}
	opts := cache.ListOptions{Expired: c.Bool("expired"), Stale: c.Bool("stale"), Match: c.String("match"), Limit: c.Int("limit")}
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, _ *store.Store) error {
		entries, err := a.List(ctx, opts)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			out := make([]entryJSON, 0, len(entries))
			for _, e := range entries {
				out = append(out, toEntryJSON(e))
			}
			return writeJSON(c.App.Writer, out)
		}
		if len(entries) == 0 {
			fmt.Fprintln(c.App.Writer, "no cached entries match")
			return nil
		}
		now := time.Now()
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATUS\tSIZE\tSTATE\tVALIDATED\tEXPIRES\tURL")
		for _, e := range entries {
			expires := "never"
			if e.Expires != nil {
				expires = fmtAge(*e.Expires, now)
			}
			u := e.URL
			if e.Method != http.MethodGet {
				u = e.Method + " " + u
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Status, fmtSize(e.Size), entryState(e), fmtAge(e.ValidatedAt, now), expires, u)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(entries) == 1 {
			fmt.Fprintln(c.App.Writer, "1 entry")
		} else {
			fmt.Fprintf(c.App.Writer, "%d entries\n", len(entries))
		}
		return nil
	})
}

// showJSON is the JSON form of `cache show`.
type showJSON struct {
	Key          string                `json:"key"`
	URL          string                `json:"url"`
	Method       string                `json:"method"`
	Status       int                   `json:"status"`
	Proto        string                `json:"proto,omitempty"`
	Headers      map[string][]string   `json:"headers"`
	ContentType  string                `json:"content_type,omitempty"`
	Size         int64                 `json:"size"`
	CreatedAt    time.Time             `json:"created_at"`
	ValidatedAt  time.Time             `json:"validated_at"`
	Expires      *time.Time            `json:"expires"`
	Revalidated  bool                  `json:"revalidated"`
	ETag         string                `json:"etag,omitempty"`
	LastModified string                `json:"last_modified,omitempty"`
	Credential   *cache.CredentialInfo `json:"credential,omitempty"`
	Request      cache.RequestInfo     `json:"request"`
	Body         *string               `json:"body,omitempty"`
	BodyBase64   *string               `json:"body_base64,omitempty"`
	// IntervalSeconds is the learned revisit interval (expire_after:
	// adaptive) and NextDue the time the page falls due (Expires);
	// both absent for entries without one.
	IntervalSeconds int64      `json:"interval_seconds,omitempty"`
	NextDue         *time.Time `json:"next_due,omitempty"`
	// BodySHA256 is the hex SHA-256 of the body as served, the hash
	// parse results and change records compare; BodySHA256Stored says
	// whether the store holds it (false: an earlier release's entry not
	// yet confirmed by a 304, hashed here).
	BodySHA256       string `json:"body_sha256"`
	BodySHA256Stored bool   `json:"body_sha256_stored"`
}

func runCacheShow(c *cli.Context) error {
	rawURL, err := oneArg(c, "URL")
	if err != nil {
		return err
	}
	rawURL, hint := showURL(rawURL)
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, _ *store.Store) error {
		entry, rev, err := a.Show(ctx, rawURL)
		if errors.Is(err, cache.ErrNotFound) {
			return cli.Exit(fmt.Sprintf("cache show: %s is not in the cache (database %s)%s; list what is with `crawlcache cache ls --match GLOB`", rawURL, c.String("db"), hint), 1)
		}
		if err != nil {
			return err
		}
		resp, err := cache.DecodeResponse(entry, rev, nil)
		if err != nil {
			return fmt.Errorf("cache show %s: the stored entry %s cannot be replayed (it will be fetched again on next use): %w", rawURL, entry.ID, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("read stored body of %s: %w", entry.ID, err)
		}
		validated, expires, revalidated, interval := entry.ValidatedAt, entry.Expires, false, entry.IntervalSeconds
		if rev != nil && rev.ValidatedAt.After(entry.ValidatedAt) {
			validated, expires, revalidated, interval = rev.ValidatedAt, rev.Expires, true, rev.IntervalSeconds
		}
		sha, shaStored := cache.StoredSHA256(entry, rev), true
		if sha == "" {
			sha, shaStored = parses.BodyHash(body), false // the crawler's own fallback
		}
		_, binary := entry.Body.(bson.Binary)
		if entry.BodyEncoding != "" { // stored compressed: binary whatever it holds
			binary = !cache.StoredAsText(body, resp.Header)
		}
		if c.Bool("json") {
			j := showJSON{
				Key: entry.ID, URL: entry.URL, Method: entry.Method, Status: entry.Status, Proto: entry.Proto,
				Headers: resp.Header, ContentType: entry.ContentType, Size: entry.Size,
				CreatedAt: entry.CreatedAt.UTC(), ValidatedAt: validated.UTC(), Revalidated: revalidated,
				ETag: entry.ETag, LastModified: resp.Header.Get("Last-Modified"), Request: entry.Request,
				Credential: cache.CredentialOf(entry), IntervalSeconds: interval,
				BodySHA256: sha, BodySHA256Stored: shaStored,
			}
			if interval > 0 && expires != nil {
				due := expires.UTC()
				j.NextDue = &due
			}
			return writeShowJSON(c, j, expires, body, binary)
		}

		w, now := c.App.Writer, time.Now()
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "url\t%s\n", entry.URL)
		fmt.Fprintf(tw, "key\t%s\n", entry.ID)
		fmt.Fprintf(tw, "method\t%s\n", entry.Method)
		fmt.Fprintf(tw, "size\t%d bytes\n", entry.Size)
		shaNote := ""
		if !shaStored {
			shaNote = " (computed now: not stored with this entry; an earlier release's entry gets it at its next 304)"
		}
		fmt.Fprintf(tw, "body hash\tsha256:%s%s\n", sha, shaNote)
		fmt.Fprintf(tw, "credential\t%s\n", describeCredential(cache.CredentialOf(entry)))
		fmt.Fprintf(tw, "created\t%s (%s)\n", fmtTime(entry.CreatedAt), fmtAge(entry.CreatedAt, now))
		how := "fetched"
		if revalidated {
			how = "confirmed by a 304"
		}
		fmt.Fprintf(tw, "validated\t%s (%s, %s)\n", fmtTime(validated), fmtAge(validated, now), how)
		if expires == nil {
			fmt.Fprintf(tw, "expires\tnever\n")
		} else {
			state := "fresh"
			if !now.Before(*expires) {
				state = "stale: fetched again on next use"
				if entry.ETag != "" || resp.Header.Get("Last-Modified") != "" {
					state = "stale: revalidated on next use"
				}
			}
			fmt.Fprintf(tw, "expires\t%s (%s, %s)\n", fmtTime(*expires), fmtAge(*expires, now), state)
		}
		showInterval(tw, interval, expires, now)
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "\n%s %s\n", resp.Proto, resp.Status)
		names := make([]string, 0, len(resp.Header))
		for name := range resp.Header {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			for _, v := range resp.Header[name] {
				fmt.Fprintf(w, "%s: %s\n", name, v)
			}
		}
		if c.Bool("headers-only") || len(body) == 0 {
			return nil
		}
		fmt.Fprintln(w)
		return writeBody(w, body, binary, resp.Header.Get("Content-Type"), isTerminal(w) && !c.Bool("raw"))
	})
}

// showURL adds http:// to a URL written without a scheme, as --match
// makes the scheme optional, and returns the hint to give if nothing is
// found there.
func showURL(raw string) (url, hint string) {
	if strings.Contains(raw, "://") {
		return raw, ""
	}
	return "http://" + raw, "; without a scheme http:// is assumed: write https:// for an https page"
}

// writeBody prints a stored body. safe asks for nothing a terminal would
// interpret: a binary body, or text holding control bytes other than tab,
// newline and carriage return (an escape sequence can rewrite the screen or
// the window title), is summarised instead.
func writeBody(w io.Writer, body []byte, binary bool, contentType string, safe bool) error {
	if safe && (binary || hasControlBytes(body)) {
		what := "body holding terminal control bytes"
		if binary {
			what = "binary body"
		}
		_, err := fmt.Fprintf(w, "[%s: %d bytes of %s, not shown on a terminal; use --raw to print it as stored, --json for an escaped copy, or redirect the output to a file]\n",
			what, len(body), cmp.Or(contentType, "unknown type"))
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	if !binary && !bytes.HasSuffix(body, []byte("\n")) {
		_, err := fmt.Fprintln(w)
		return err
	}
	return nil
}

// hasControlBytes reports whether b holds C0 or C1 control characters
// other than tab, newline and carriage return, or DEL, or is not UTF-8.
func hasControlBytes(b []byte) bool {
	if !utf8.Valid(b) {
		return true
	}
	for _, r := range string(b) {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || (r >= 0x7f && r <= 0x9f) {
			return true
		}
	}
	return false
}

// checkMatch refuses a --match pattern that job files refuse in
// urls_expire_after (an unclosed '[' or a trailing '\\'), instead of
// letting it match nothing.
func checkMatch(c *cli.Context) error {
	m := c.String("match")
	if m == "" {
		return nil
	}
	if _, err := path.Match(m, ""); err != nil || strings.TrimSpace(m) == "" {
		return cli.Exit(fmt.Sprintf("%s --match %q: invalid glob pattern (an unclosed '[' or a trailing '\\'): '*' matches any run of characters and '?' one", commandPath(c), m), 2)
	}
	return nil
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func runCachePurge(c *cli.Context) error {
	opts := cache.PurgeOptions{Expired: c.Bool("expired"), Stale: c.Bool("stale"), Match: c.String("match")}
	if err := checkMatch(c); err != nil {
		return err
	}
	if s := c.String("older-than"); s != "" {
		d, err := parseCacheDuration(s)
		if err != nil || d <= 0 {
			return cli.Exit(fmt.Sprintf("cache purge --older-than %s: want a duration above zero, e.g. 720h or 30d", s), 2)
		}
		opts.OlderThan = d
	}
	if !opts.Expired && !opts.Stale && opts.OlderThan == 0 && opts.Match == "" {
		return cli.Exit("cache purge: say what to delete: --expired (older than the TTL), --stale (past expires), "+
			"--older-than DURATION or --match GLOB; given together they combine. "+
			"To delete everything, use `crawlcache cache clear --yes`.", 2)
	}
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, s *store.Store) error {
		var ttl time.Duration
		if opts.Expired {
			info, err := a.TTL(ctx)
			if err != nil {
				return err
			}
			if !info.Set && !c.Bool("json") {
				fmt.Fprintln(c.App.Writer, "No TTL is set, so nothing is expired: set one with `crawlcache cache ttl set 168h`, or use --older-than.")
			}
			ttl = info.TTL
		}
		n, err := a.Purge(ctx, opts)
		if err != nil {
			return err
		}
		// The parse records of the jobs' cache (the default database) that
		// are older than the TTL and whose page is no longer cached.
		var swept int64
		if ttl > 0 && c.String("db") == cache.DefaultDatabase {
			if swept, err = sweepParses(ctx, s, a, ttl); err != nil {
				return err
			}
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, map[string]int64{"deleted": n, "parses_deleted": swept})
		}
		fmt.Fprintf(c.App.Writer, "deleted %s (and their revalidations and redirects)\n", responses(n))
		if swept > 0 {
			fmt.Fprintf(c.App.Writer, "deleted %d parse records older than the TTL (pages no longer cached, or rules no longer used)\n", swept)
		}
		return nil
	})
}

func runCacheClear(c *cli.Context) error {
	if !c.Bool("yes") {
		return cli.Exit(fmt.Sprintf("cache clear deletes every cached response, revalidation and redirect in database %s "+
			"(the TTL setting stays); run it again with --yes to confirm", c.String("db")), 2)
	}
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, _ *store.Store) error {
		n, err := a.Clear(ctx)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, map[string]int64{"deleted": n})
		}
		fmt.Fprintf(c.App.Writer, "deleted %s from %s\n", responses(n), c.String("db"))
		return nil
	})
}

// responses writes "1 cached response" or "n cached responses".
func responses(n int64) string {
	if n == 1 {
		return "1 cached response"
	}
	return fmt.Sprintf("%d cached responses", n)
}

// describeCredential says whom an entry is served to, without the
// credential (which is never stored).
func describeCredential(c *cache.CredentialInfo) string {
	if c == nil {
		return "none: fetched without credentials, served to requests without them"
	}
	headers := strings.Join(c.Headers, " and ")
	switch c.BoundTo {
	case cache.BoundToToken:
		return fmt.Sprintf("bound to the %s it was fetched with (id %s): served only to requests carrying the same", headers, c.ID)
	case cache.BoundToJob:
		return fmt.Sprintf("bound to its job (id %s; fetched with %s): served only to that job's requests with credentials", c.ID, headers)
	}
	return fmt.Sprintf("fetched with %s by an earlier release, not bound: served to no one, replaced on the next fetch", headers)
}

// showInterval writes the learned revisit interval of an entry under
// expire_after: adaptive, and when it falls due; nothing for other entries.
func showInterval(w io.Writer, seconds int64, due *time.Time, now time.Time) {
	if seconds <= 0 || due == nil {
		return
	}
	iv := time.Duration(seconds) * time.Second
	fmt.Fprintf(w, "interval\t%s, learned (expire_after: adaptive)\n", cache.FormatInterval(iv))
	fmt.Fprintf(w, "next due\t%s (%s; a run that starts up to %s before counts it due)\n",
		fmtTime(*due), fmtAge(*due, now), cache.FormatInterval(cache.Tolerance(iv)))
}

// writeShowJSON completes j with the expiry and, unless --headers-only, the
// body (base64 when binary), and writes it.
func writeShowJSON(c *cli.Context, j showJSON, expires *time.Time, body []byte, binary bool) error {
	if expires != nil {
		t := expires.UTC()
		j.Expires = &t
	}
	if !c.Bool("headers-only") {
		s := string(body)
		if binary {
			s = base64.StdEncoding.EncodeToString(body)
			j.BodyBase64 = &s
		} else {
			j.Body = &s
		}
	}
	return writeJSON(c.App.Writer, j)
}
