package commands

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/store"
)

// cacheCommand is `crawlcache cache`: TTL and inspection of the HTTP
// response cache.
func cacheCommand() *cli.Command {
	// Flags keep state once applied: every command gets its own.
	jsonFlag := func() cli.Flag {
		return &cli.BoolFlag{Name: "json", Usage: "print JSON instead of text", EnvVars: []string{"CRAWLCACHE_JSON"}}
	}
	return &cli.Command{
		Name:  "cache",
		Usage: "inspect and maintain the HTTP response cache (TTL, stats, ls, show, purge, clear)",
		Description: "The cache lives in the database --db (default http_cache): collection responses (one document\n" +
			"per cached response), revalidations (304s), redirects and settings.",
		Subcommands: []*cli.Command{
			{
				Name:  "ttl",
				Usage: "set, show or remove the time to live of cached entries",
				Description: "The TTL counts from validated_at: the last time the origin sent the entry or confirmed it\n" +
					"with a 304. On MongoDB it is the TTL index ttl_idx; on the embedded store, which has no TTL\n" +
					"indexes, a sweeper deletes expired entries at the start of every crawl and on\n" +
					"`cache purge --expired`.",
				Subcommands: []*cli.Command{
					{
						Name:      "set",
						Usage:     "set the TTL (e.g. 168h, 7d, 90m; 0 or none removes it)",
						ArgsUsage: "DURATION",
						Description: "Without --overwrite a different TTL that is already set stays, and you are told so;\n" +
							"with --overwrite it is replaced.",
						Flags:  cacheFlags(&cli.BoolFlag{Name: "overwrite", Usage: "replace a different TTL that is already set", EnvVars: []string{"CRAWLCACHE_TTL_OVERWRITE"}}),
						Action: runTTLSet,
					},
					{
						Name:   "show",
						Usage:  "show the TTL and the mechanism that enforces it (TTL index or sweeper)",
						Flags:  cacheFlags(jsonFlag()),
						Action: runTTLShow,
					},
					{
						Name:   "remove",
						Usage:  "remove the TTL: entries are kept until purged",
						Flags:  cacheFlags(),
						Action: runTTLRemove,
					},
				},
			},
			{
				Name:   "stats",
				Usage:  "count entries, sizes, stale and expired entries and statuses, and show the TTL",
				Flags:  cacheFlags(jsonFlag()),
				Action: runCacheStats,
			},
			{
				Name:  "ls",
				Usage: "list cached entries (without bodies), ordered by URL",
				Description: "STATE is fresh, stale (past expires: revalidated or refetched on next use) or expired\n" +
					"(older than the TTL: deleted by the next sweep). GLOB: '*' is any run of characters,\n" +
					"'?' one; the scheme is optional and a bare host matches all its pages, e.g.\n" +
					"--match 'example.org/news/*', --match '*.pdf', --match example.org.",
				Flags: cacheFlags(jsonFlag(),
					&cli.BoolFlag{Name: "expired", Usage: "only entries older than the TTL", EnvVars: []string{"CRAWLCACHE_LS_EXPIRED"}},
					&cli.BoolFlag{Name: "stale", Usage: "only entries past their expires", EnvVars: []string{"CRAWLCACHE_LS_STALE"}},
					&cli.StringFlag{Name: "match", Usage: "only entries whose URL matches `GLOB`", EnvVars: []string{"CRAWLCACHE_LS_MATCH"}},
					&cli.IntFlag{Name: "limit", Usage: "list at most `N` entries (0: all)", EnvVars: []string{"CRAWLCACHE_LS_LIMIT"}},
				),
				Action: runCacheLs,
			},
			{
				Name:      "show",
				Usage:     "show a cached response: metadata, status, headers and body",
				ArgsUsage: "URL",
				Description: "Finds the entry a plain GET of URL uses. Text bodies are printed; a binary body is\n" +
					"summarised on a terminal and written as is when output is redirected.",
				Flags: cacheFlags(jsonFlag(),
					&cli.BoolFlag{Name: "headers-only", Usage: "leave the body out", EnvVars: []string{"CRAWLCACHE_SHOW_HEADERS_ONLY"}},
				),
				Action: runCacheShow,
			},
			{
				Name:  "purge",
				Usage: "delete selected entries: --expired, --stale, --older-than D, --match GLOB (combined with AND)",
				Description: "--expired deletes entries older than the TTL (a sweep, on any store). --older-than counts\n" +
					"from validated_at, like the TTL. Revalidations and redirects of deleted entries go too.",
				Flags: cacheFlags(jsonFlag(),
					&cli.BoolFlag{Name: "expired", Usage: "entries older than the TTL", EnvVars: []string{"CRAWLCACHE_PURGE_EXPIRED"}},
					&cli.BoolFlag{Name: "stale", Usage: "entries past their expires", EnvVars: []string{"CRAWLCACHE_PURGE_STALE"}},
					&cli.StringFlag{Name: "older-than", Usage: "entries not validated for `DURATION` (e.g. 720h, 30d)", EnvVars: []string{"CRAWLCACHE_PURGE_OLDER_THAN"}},
					&cli.StringFlag{Name: "match", Usage: "entries whose URL matches `GLOB` (see `cache ls --help`)", EnvVars: []string{"CRAWLCACHE_PURGE_MATCH"}},
				),
				Action: runCachePurge,
			},
			{
				Name:  "clear",
				Usage: "delete every cached entry, revalidation and redirect (the TTL setting stays)",
				Flags: cacheFlags(jsonFlag(),
					&cli.BoolFlag{Name: "yes", Usage: "confirm: really delete everything", EnvVars: []string{"CRAWLCACHE_CLEAR_YES"}},
				),
				Action: runCacheClear,
			},
		},
	}
}

// cacheFlags are the store flags, --db and extra.
func cacheFlags(extra ...cli.Flag) []cli.Flag {
	flags := append(storeFlags(), &cli.StringFlag{
		Name:    "db",
		Value:   cache.DefaultDatabase,
		Usage:   "database of the cache",
		EnvVars: []string{"CRAWLCACHE_CACHE_DB"},
	})
	return append(flags, extra...)
}

// withAdmin opens the store and runs fn with an Admin over --db.
func withAdmin(c *cli.Context, fn func(ctx context.Context, a *cache.Admin, s *store.Store) error) error {
	return withStore(c, func(ctx context.Context, s *store.Store) error {
		return fn(ctx, cache.NewAdmin(s.Database(c.String("db")), s.Capabilities().TTLIndexes, time.Now), s)
	})
}

// cacheArgs returns the positional arguments and applies flags written
// after them ("ttl set 168h --overwrite"): urfave/cli v2 stops parsing
// flags at the first argument.
func cacheArgs(c *cli.Context) ([]string, error) {
	var pos []string
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			pos = append(pos, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		fi := slices.IndexFunc(c.Command.Flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), name) })
		if fi < 0 {
			return nil, cli.Exit(fmt.Sprintf("%s: unknown flag %s (see --help)", commandPath(c), arg), 2)
		}
		if _, isBool := c.Command.Flags[fi].(*cli.BoolFlag); isBool && !hasValue {
			value, hasValue = "true", true
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, cli.Exit(fmt.Sprintf("%s: flag %s needs a value", commandPath(c), arg), 2)
			}
			i++
			value = args[i]
		}
		if err := c.Set(name, value); err != nil {
			return nil, cli.Exit(fmt.Sprintf("%s: %s: %v", commandPath(c), arg, err), 2)
		}
	}
	return pos, nil
}

// commandPath is the command's full name, e.g. "cache ttl set"
// (Command.FullName lacks the parents of nested subcommands).
func commandPath(c *cli.Context) string {
	var names []string
	for _, ctx := range c.Lineage() {
		if ctx.Command != nil && ctx.Command.Name != "" && ctx.Command.Name != c.App.Name {
			names = append([]string{ctx.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}

// oneArg returns the single positional argument, or a usage error naming it.
func oneArg(c *cli.Context, what string) (string, error) {
	pos, err := cacheArgs(c)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", cli.Exit(fmt.Sprintf("usage: crawlcache %s [flags] %s (got %d arguments; see --help)", commandPath(c), what, len(pos)), 2)
	}
	return pos[0], nil
}

// parseCacheDuration reads a Go duration ("168h", "90m") or whole days
// ("7d"). "none", "off" and "0" are zero.
func parseCacheDuration(s string) (time.Duration, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "off", "0", "never":
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration: use e.g. 168h, 7d, 90m or none", s)
	}
	return d, nil
}

// shortDuration writes 168h0m0s as "168h" and 1h30m0s as "1h30m".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// fmtDuration is shortDuration with whole days added: "168h (7d)".
func fmtDuration(d time.Duration) string {
	s := shortDuration(d)
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		s += fmt.Sprintf(" (%dd)", d/(24*time.Hour))
	}
	return s
}

// fmtSize writes a byte count for people.
func fmtSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i])
}

// fmtAge writes how long before now t was ("3h ago") or how long until it
// is ("in 5m").
func fmtAge(t, now time.Time) string {
	d := now.Sub(t)
	suffix, prefix := " ago", ""
	if d < 0 {
		d, suffix, prefix = -d, "", "in "
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		s = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return prefix + s + suffix
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// mechanismText explains how a TTL is enforced.
func mechanismText(mechanism string) string {
	if mechanism == cache.MechanismIndex {
		return "MongoDB TTL index " + cache.TTLIndexName + " (the server deletes expired entries, checking about once a minute)"
	}
	return "sweeper (this store has no TTL indexes: crawlcache deletes expired entries at the start of every crawl and on `cache purge --expired`)"
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ttlJSON is the JSON form of a TTL, for `ttl show --json` and stats.
type ttlJSON struct {
	Set              bool       `json:"set"`
	TTL              string     `json:"ttl,omitempty"`
	TTLSeconds       int64      `json:"ttl_seconds,omitempty"`
	Field            string     `json:"field"`
	Mechanism        string     `json:"mechanism"`
	LastSweep        *time.Time `json:"last_sweep,omitempty"`
	LastSweepDeleted *int64     `json:"last_sweep_deleted,omitempty"`
}

func toTTLJSON(info cache.TTLInfo) ttlJSON {
	j := ttlJSON{Set: info.Set, Field: info.Field, Mechanism: info.Mechanism}
	if info.Set {
		j.TTL, j.TTLSeconds = shortDuration(info.TTL), int64(info.TTL/time.Second)
	}
	if !info.LastSweep.IsZero() {
		t, n := info.LastSweep.UTC(), info.LastSweepDeleted
		j.LastSweep, j.LastSweepDeleted = &t, &n
	}
	return j
}

func runTTLSet(c *cli.Context) error {
	arg, err := oneArg(c, "DURATION")
	if err != nil {
		return err
	}
	d, err := parseCacheDuration(arg)
	if err != nil {
		return cli.Exit("cache ttl set: "+err.Error(), 2)
	}
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, _ *store.Store) error {
		before, err := a.TTL(ctx)
		if err != nil {
			return err
		}
		info, err := a.SetTTL(ctx, d, c.Bool("overwrite"))
		if errors.Is(err, cache.ErrInvalidTTL) {
			return cli.Exit(fmt.Sprintf("cache ttl set %s: the TTL must be between 1s and 68 years (or none to remove it)", arg), 2)
		}
		if err != nil {
			return err
		}
		w := c.App.Writer
		switch {
		case !info.Set:
			fmt.Fprintln(w, "TTL removed: cached entries are kept until purged.")
		case info.Kept:
			fmt.Fprintf(w, "TTL unchanged: it is already %s, not %s. Run again with --overwrite to replace it.\n",
				fmtDuration(info.TTL), fmtDuration(info.Requested))
		case before.Set && before.TTL == info.TTL:
			fmt.Fprintf(w, "TTL is already %s; enforced by the %s.\n", fmtDuration(info.TTL), mechanismText(info.Mechanism))
		default:
			fmt.Fprintf(w, "TTL set to %s: an entry is deleted %s after the origin last sent or confirmed it (validated_at).\n",
				fmtDuration(info.TTL), fmtDuration(info.TTL))
			fmt.Fprintf(w, "Enforced by the %s.\n", mechanismText(info.Mechanism))
		}
		return nil
	})
}

func runTTLShow(c *cli.Context) error {
	if _, err := cacheArgs(c); err != nil {
		return err
	}
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, _ *store.Store) error {
		info, err := a.TTL(ctx)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, toTTLJSON(info))
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		if info.Set {
			fmt.Fprintf(tw, "ttl\t%s\n", fmtDuration(info.TTL))
		} else {
			fmt.Fprintf(tw, "ttl\tnone (entries are kept until purged; set one with `crawlcache cache ttl set 168h`)\n")
		}
		fmt.Fprintf(tw, "counts from\t%s (last fetch or 304)\n", info.Field)
		if info.Set {
			fmt.Fprintf(tw, "mechanism\t%s\n", mechanismText(info.Mechanism))
		} else {
			fmt.Fprintf(tw, "mechanism\t%s (when set)\n", info.Mechanism)
		}
		if !info.LastSweep.IsZero() {
			fmt.Fprintf(tw, "last sweep\t%s (%s), deleted %d\n", fmtTime(info.LastSweep), fmtAge(info.LastSweep, time.Now()), info.LastSweepDeleted)
		}
		return tw.Flush()
	})
}

func runTTLRemove(c *cli.Context) error {
	if _, err := cacheArgs(c); err != nil {
		return err
	}
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, _ *store.Store) error {
		if err := a.RemoveTTL(ctx); err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer, "TTL removed: cached entries are kept until purged.")
		return nil
	})
}

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
}

func runCacheStats(c *cli.Context) error {
	if _, err := cacheArgs(c); err != nil {
		return err
	}
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, s *store.Store) error {
		st, err := a.Stats(ctx)
		if err != nil {
			return err
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
		fmt.Fprintf(tw, "body size\t%s (%d bytes)\n", fmtSize(st.TotalSize), st.TotalSize)
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
}

func toEntryJSON(e cache.EntrySummary) entryJSON {
	j := entryJSON{
		Key: e.Key, URL: e.URL, Method: e.Method, Status: e.Status, ContentType: e.ContentType, Size: e.Size,
		CreatedAt: e.CreatedAt.UTC(), ValidatedAt: e.ValidatedAt.UTC(),
		Revalidated: e.Revalidated, Stale: e.Stale, Expired: e.Expired,
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
	if _, err := cacheArgs(c); err != nil {
		return err
	}
	if c.Int("limit") < 0 {
		return cli.Exit("cache ls: --limit must be 0 (all) or more", 2)
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
		fmt.Fprintf(c.App.Writer, "%d entries\n", len(entries))
		return nil
	})
}

// showJSON is the JSON form of `cache show`.
type showJSON struct {
	Key          string              `json:"key"`
	URL          string              `json:"url"`
	Method       string              `json:"method"`
	Status       int                 `json:"status"`
	Proto        string              `json:"proto,omitempty"`
	Headers      map[string][]string `json:"headers"`
	ContentType  string              `json:"content_type,omitempty"`
	Size         int64               `json:"size"`
	CreatedAt    time.Time           `json:"created_at"`
	ValidatedAt  time.Time           `json:"validated_at"`
	Expires      *time.Time          `json:"expires"`
	Revalidated  bool                `json:"revalidated"`
	ETag         string              `json:"etag,omitempty"`
	LastModified string              `json:"last_modified,omitempty"`
	Request      cache.RequestInfo   `json:"request"`
	Body         *string             `json:"body,omitempty"`
	BodyBase64   *string             `json:"body_base64,omitempty"`
}

func runCacheShow(c *cli.Context) error {
	rawURL, err := oneArg(c, "URL")
	if err != nil {
		return err
	}
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, _ *store.Store) error {
		doc, rev, err := a.Show(ctx, rawURL)
		if errors.Is(err, cache.ErrNotFound) {
			return cli.Exit(fmt.Sprintf("cache show: %s is not in the cache (database %s); list what is with `crawlcache cache ls --match GLOB`", rawURL, c.String("db")), 1)
		}
		if err != nil {
			return err
		}
		resp, err := cache.DecodeResponse(doc, rev, nil)
		if err != nil {
			return fmt.Errorf("cache show %s: the stored entry %s cannot be replayed (it will be fetched again on next use): %w", rawURL, doc.ID, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("read stored body of %s: %w", doc.ID, err)
		}
		validated, expires, revalidated := doc.ValidatedAt, doc.Expires, false
		if rev != nil && rev.ValidatedAt.After(doc.ValidatedAt) {
			validated, expires, revalidated = rev.ValidatedAt, rev.Expires, true
		}
		_, binary := doc.Body.(bson.Binary)
		if c.Bool("json") {
			j := showJSON{
				Key: doc.ID, URL: doc.URL, Method: doc.Method, Status: doc.Status, Proto: doc.Proto,
				Headers: resp.Header, ContentType: doc.ContentType, Size: doc.Size,
				CreatedAt: doc.CreatedAt.UTC(), ValidatedAt: validated.UTC(), Revalidated: revalidated,
				ETag: doc.ETag, LastModified: doc.LastModified, Request: doc.Request,
			}
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

		w, now := c.App.Writer, time.Now()
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "url\t%s\n", doc.URL)
		fmt.Fprintf(tw, "key\t%s\n", doc.ID)
		fmt.Fprintf(tw, "method\t%s\n", doc.Method)
		fmt.Fprintf(tw, "size\t%d bytes\n", doc.Size)
		fmt.Fprintf(tw, "created\t%s (%s)\n", fmtTime(doc.CreatedAt), fmtAge(doc.CreatedAt, now))
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
				state = "stale: revalidated on next use"
			}
			fmt.Fprintf(tw, "expires\t%s (%s, %s)\n", fmtTime(*expires), fmtAge(*expires, now), state)
		}
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
		if binary && isTerminal(w) {
			fmt.Fprintf(w, "[binary body: %d bytes of %s, not shown on a terminal; redirect the output to a file, or use --json for base64]\n",
				len(body), cmp.Or(resp.Header.Get("Content-Type"), "unknown type"))
			return nil
		}
		if _, err := w.Write(body); err != nil {
			return err
		}
		if !binary && !strings.HasSuffix(string(body), "\n") {
			fmt.Fprintln(w)
		}
		return nil
	})
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
	if _, err := cacheArgs(c); err != nil {
		return err
	}
	opts := cache.PurgeOptions{Expired: c.Bool("expired"), Stale: c.Bool("stale"), Match: c.String("match")}
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
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, _ *store.Store) error {
		if opts.Expired {
			info, err := a.TTL(ctx)
			if err != nil {
				return err
			}
			if !info.Set && !c.Bool("json") {
				fmt.Fprintln(c.App.Writer, "No TTL is set, so nothing is expired: set one with `crawlcache cache ttl set 168h`, or use --older-than.")
			}
		}
		n, err := a.Purge(ctx, opts)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, map[string]int64{"deleted": n})
		}
		fmt.Fprintf(c.App.Writer, "deleted %d cached responses (and their revalidations and redirects)\n", n)
		return nil
	})
}

func runCacheClear(c *cli.Context) error {
	if _, err := cacheArgs(c); err != nil {
		return err
	}
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
		fmt.Fprintf(c.App.Writer, "deleted %d cached responses from %s\n", n, c.String("db"))
		return nil
	})
}
