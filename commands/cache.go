package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"crawlcache/cache"
	"crawlcache/configs"
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
		Usage: "inspect and maintain the HTTP response cache (TTL, stats, ls, show, purge, export, import, clear)",
		Description: "The cache lives in the database --db (default http_cache): collection responses (one document\n" +
			"per cached response), revalidations (304s), redirects and settings.",
		Subcommands: []*cli.Command{
			cacheTTLCommand(jsonFlag),
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
				Description: "Finds the entry a plain GET of URL uses; a URL without a scheme (127.0.0.1:8090/x) is http://.\n" +
					"On a terminal, a binary body or one holding control bytes is summarised unless --raw.",
				Flags: cacheFlags(jsonFlag(),
					&cli.BoolFlag{Name: "headers-only", Usage: "leave the body out", EnvVars: []string{"CRAWLCACHE_SHOW_HEADERS_ONLY"}},
					&cli.BoolFlag{Name: "raw", Usage: "print the body as stored, even binary or control bytes on a terminal", EnvVars: []string{"CRAWLCACHE_SHOW_RAW"}},
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
			cacheExportCommand(jsonFlag),
			cacheImportCommand(jsonFlag),
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

// cacheTTLCommand is `cache ttl` and its subcommands.
func cacheTTLCommand(jsonFlag func() cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "ttl",
		Usage: "set, show or remove the time to live of cached entries",
		Description: "The TTL counts from validated_at: the last time the origin sent the entry or confirmed it\n" +
			"with a 304. On MongoDB it is the TTL index ttl_idx; on the embedded store, which has no TTL\n" +
			"indexes, a sweeper deletes expired entries in `crawlcache schedule` (beside the runs) and on\n" +
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
		return fn(ctx, cache.NewAdmin(s, c.String("db"), time.Now), s)
	})
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
	pos := c.Args().Slice()
	if len(pos) != 1 {
		return "", cli.Exit(fmt.Sprintf("usage: crawlcache %s [flags] %s (got %d arguments; see --help)", commandPath(c), what, len(pos)), 2)
	}
	return pos[0], nil
}

// parseCacheDuration reads a duration as job files do (configs.ParseDuration:
// "168h", "90m", "7d", "1d12h"). "none", "off" and "0" are zero.
func parseCacheDuration(s string) (time.Duration, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "off", "0", "never":
		return 0, nil
	}
	d, err := configs.ParseDuration(s)
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
	return "sweeper (this store has no TTL indexes: crawlcache deletes expired entries in `crawlcache schedule` (beside the runs, when due) and on `cache purge --expired`; a run never sweeps)"
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
	NextSweep        *time.Time `json:"next_sweep,omitempty"`
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
	if !info.NextSweep.IsZero() {
		t := info.NextSweep.UTC()
		j.NextSweep = &t
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
			return cli.Exit(fmt.Sprintf("TTL unchanged: it is already %s, not %s. Run again with --overwrite to replace it.",
				fmtDuration(info.TTL), fmtDuration(info.Requested)), 1)
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
		if !info.NextSweep.IsZero() {
			fmt.Fprintf(tw, "next sweep\t%s (%s): nothing expires before then, so sweeps until then do nothing\n", fmtTime(info.NextSweep), fmtAge(info.NextSweep, time.Now()))
		}
		return tw.Flush()
	})
}

func runTTLRemove(c *cli.Context) error {
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, _ *store.Store) error {
		if err := a.RemoveTTL(ctx); err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer, "TTL removed: cached entries are kept until purged.")
		return nil
	})
}
