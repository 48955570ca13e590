package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"crawlcache/cache"
	"crawlcache/store"
	"crawlcache/warc"
)

// cacheExportCommand is `crawlcache cache export`.
func cacheExportCommand(jsonFlag func() cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write cached responses to a WARC/1.1 file (request and response records, one gzip member each)",
		Description: "Writes a warcinfo record, then for each selected entry (in URL order) its response record\n" +
			"(status line, headers, exact body, payload digest) and the request record that produced it,\n" +
			"credentials REDACTED as in the cache. The file is written beside FILE and renamed into place\n" +
			"when complete. --since takes a time (2026-12-01, 2026-12-01T10:00:00Z) or a duration ago (24h, 7d).",
		Flags: cacheFlags(jsonFlag(),
			&cli.StringFlag{Name: "format", Value: "warc", Usage: "output format: warc", EnvVars: []string{"CRAWLCACHE_EXPORT_FORMAT"}},
			&cli.StringFlag{Name: "out", Usage: "write to `FILE` (e.g. crawl.warc.gz)", EnvVars: []string{"CRAWLCACHE_EXPORT_OUT"}},
			&cli.StringFlag{Name: "match", Usage: "only entries whose URL matches `GLOB` (see `cache ls --help`)", EnvVars: []string{"CRAWLCACHE_EXPORT_MATCH"}},
			&cli.StringFlag{Name: "since", Usage: "only entries validated at or after `TIME` (a date, an RFC 3339 time, or a duration ago)", EnvVars: []string{"CRAWLCACHE_EXPORT_SINCE"}},
		),
		Action: runCacheExport,
	}
}

// cacheImportCommand is `crawlcache cache import`.
func cacheImportCommand(jsonFlag func() cli.Flag) *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "load WARC files (1.0 or 1.1, gzipped or not) into the cache",
		ArgsUsage: "FILE...",
		Description: "Stores every HTTP response to a GET as the entry a plain GET of its URL uses, as fetched at its\n" +
			"WARC-Date, validators from its headers. Other records (warcinfo, metadata, revisit, dns:, ...),\n" +
			"responses to requests with credentials, truncated bodies and copies older than the cached one\n" +
			"are skipped and counted. FILE - reads standard input.",
		Flags:  cacheFlags(jsonFlag()),
		Action: runCacheImport,
	}
}

// parseSince reads --since: an RFC 3339 time, a date (UTC midnight), or a
// duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if d, err := parseCacheDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("want a date (2026-12-01), an RFC 3339 time (2026-12-01T10:00:00Z) or a duration ago (24h, 7d), got %q", s)
}

func runCacheExport(c *cli.Context) error {
	if f := c.String("format"); f != "warc" {
		return cli.Exit(fmt.Sprintf("cache export --format %s: the only format is warc", f), 2)
	}
	out := c.String("out")
	if out == "" || c.Args().Len() > 0 {
		return cli.Exit("usage: crawlcache cache export --format warc --out FILE [--match GLOB] [--since TIME]", 2)
	}
	if err := checkMatch(c); err != nil {
		return err
	}
	opts := cache.ExportOptions{Match: c.String("match")}
	if s := c.String("since"); s != "" {
		t, err := parseSince(s, time.Now())
		if err != nil {
			return cli.Exit("cache export --since: "+err.Error(), 2)
		}
		opts.Since = t
	}
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, _ *store.Store) error {
		st, size, err := exportWARC(ctx, a, out, opts)
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("cache export interrupted after %d responses: %s not written: %w", st.Exported, out, ctx.Err())
		}
		if err != nil {
			return fmt.Errorf("cache export: %w", err)
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, map[string]any{"file": out, "responses": st.Exported, "records": 1 + 2*st.Exported, "bytes": size, "skipped": st.Skipped})
		}
		fmt.Fprintf(c.App.Writer, "exported %s to %s (%d WARC records, %s)\n", responses(int64(st.Exported)), out, 1+2*st.Exported, fmtSize(size))
		if st.Skipped > 0 {
			fmt.Fprintf(c.App.Writer, "skipped %d entries that do not decode or were deleted during the export\n", st.Skipped)
		}
		return nil
	})
}

// exportWARC writes the selected entries to a temporary file beside out
// and renames it to out once complete, so out is never half-written.
func exportWARC(ctx context.Context, a *cache.Admin, out string, opts cache.ExportOptions) (cache.ExportStats, int64, error) {
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.tmp")
	if err != nil {
		return cache.ExportStats{}, 0, err
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	fields := [][2]string{{"operator", "crawlcache cache export"}}
	if opts.Match != "" {
		fields = append(fields, [2]string{"crawlcache-match", opts.Match})
	}
	if !opts.Since.IsZero() {
		fields = append(fields, [2]string{"crawlcache-since", opts.Since.UTC().Format(time.RFC3339)})
	}
	w, err := warc.NewWriter(f, warc.Info{Filename: filepath.Base(out), Software: "crawlcache " + Version, Fields: fields})
	if err != nil {
		return cache.ExportStats{}, 0, err
	}
	st, err := a.Export(ctx, opts, w.Write)
	if err != nil {
		return st, 0, err
	}
	size, _ := f.Seek(0, io.SeekCurrent)
	if err := f.Chmod(0o644); err != nil { // CreateTemp's 0600 is for the file being written
		return st, 0, err
	}
	if err := f.Sync(); err != nil {
		return st, 0, err
	}
	if err := f.Close(); err != nil {
		return st, 0, err
	}
	if err := os.Rename(f.Name(), out); err != nil {
		os.Remove(f.Name())
		return st, 0, err
	}
	done = true
	return st, size, nil
}

func runCacheImport(c *cli.Context) error {
	files := c.Args().Slice()
	if len(files) == 0 {
		return cli.Exit("usage: crawlcache cache import FILE... (WARC files, gzipped or not; - for standard input)", 2)
	}
	return withAdmin(c, func(ctx context.Context, a *cache.Admin, _ *store.Store) error {
		var total warc.ImportStats
		var failed []string
		type fileJSON struct {
			File     string         `json:"file"`
			Records  int            `json:"records"`
			Imported int            `json:"imported"`
			Skipped  map[string]int `json:"skipped"`
			Error    string         `json:"error,omitempty"`
		}
		var out []fileJSON
		for _, name := range files {
			st, err := importFile(ctx, a, name)
			total.Add(st)
			fj := fileJSON{File: name, Records: st.Records, Imported: st.Imported, Skipped: st.Skipped}
			if err != nil {
				if ctx.Err() != nil || !isFileError(err) {
					return fmt.Errorf("cache import %s: %w", name, err)
				}
				failed = append(failed, name)
				fj.Error = err.Error()
				fmt.Fprintf(c.App.ErrWriter, "crawlcache: cache import %s: %v\n", name, err)
			}
			out = append(out, fj)
			if !c.Bool("json") {
				fmt.Fprintf(c.App.Writer, "%s: %d records, imported %d%s\n", name, st.Records, st.Imported, skippedText(st.Skipped))
			}
		}
		if c.Bool("json") {
			if err := writeJSON(c.App.Writer, out); err != nil {
				return err
			}
		} else if len(files) > 1 {
			fmt.Fprintf(c.App.Writer, "total: %d records, imported %d%s\n", total.Records, total.Imported, skippedText(total.Skipped))
		}
		if len(failed) > 0 {
			return cli.Exit(fmt.Sprintf("cache import: %d of %d files could not be read whole: %s", len(failed), len(files), strings.Join(failed, ", ")), 1)
		}
		return nil
	})
}

// fileError marks a problem with an input file (missing, not WARC, cut
// short) rather than with the store: the other files are still imported.
type fileError struct{ err error }

func (e fileError) Error() string { return e.err.Error() }
func (e fileError) Unwrap() error { return e.err }

func isFileError(err error) bool {
	var fe fileError
	return errors.As(err, &fe)
}

// importFile imports one file (- is standard input).
func importFile(ctx context.Context, a *cache.Admin, name string) (warc.ImportStats, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return warc.ImportStats{}, fileError{err}
		}
		defer f.Close()
		r = f
	}
	st, err := warc.Import(ctx, a, r)
	if errors.Is(err, warc.ErrFormat) {
		err = fileError{err}
	}
	return st, err
}

// skippedText lists skip counts as ", skipped N (reason), ...".
func skippedText(skipped map[string]int) string {
	if len(skipped) == 0 {
		return ""
	}
	reasons := make([]string, 0, len(skipped))
	for r := range skipped {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	var b strings.Builder
	for _, r := range reasons {
		fmt.Fprintf(&b, "; skipped %d: %s", skipped[r], r)
	}
	return b.String()
}
