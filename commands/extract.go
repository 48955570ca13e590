package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/jobs"
	"crawlcache/pipeline"
	"crawlcache/store"
)

func extractCommand() *cli.Command {
	return &cli.Command{
		Name:      "extract",
		Usage:     "show what a job's follow and extract rules do on one page (items, links followed, links skipped and why)",
		ArgsUsage: "JOB.yaml URL",
		Description: "Like `scrapy parse`: runs the job's rules on the cached copy of the page, fresh or not\n" +
			"(fetched once through the cache, and stored, when it is not cached yet), with the crawler's and\n" +
			"the pipeline's own code, so what it shows is what a run does with that page. Nothing is written\n" +
			"but the cache. A URL without a scheme is http://. Exit status: 0 the page was handled, 1 a run would\n" +
			"mark it failed or skip it (robots.txt, an error status, too large), or the store failed, 2 bad arguments.",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object (url, status, served, items, follow, skip) on standard output"},
			&cli.IntFlag{Name: "depth", Usage: "link depth of the page in a run (0: a seed); with max_depth, decides whether its links are followed"},
		}, storeFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return cli.Exit("usage: crawlcache extract JOB.yaml URL", exitUsage)
			}
			if c.Int("depth") < 0 {
				return cli.Exit("extract: --depth must be >= 0", exitUsage)
			}
			job, err := configs.Load(c.Args().Get(0))
			if err != nil {
				return cli.Exit(err.Error(), exitFailed)
			}
			rawURL, _ := showURL(c.Args().Get(1))
			return withStore(c, func(ctx context.Context, s *store.Store) error {
				r := &jobs.Runner{Store: s}
				x, err := r.Extract(ctx, job, rawURL, c.Int("depth"))
				if err != nil {
					return cli.Exit(fmt.Sprintf("extract: %v", err), exitFailed)
				}
				if c.Bool("json") {
					err = writeExtractionJSON(c.App.Writer, x)
				} else {
					err = writeExtraction(c.App.Writer, job, x)
				}
				if err != nil {
					return err
				}
				if x.Failure != nil {
					return cli.Exit(fmt.Sprintf("extract: a run would not handle %s: %s", termSafe(x.URL), termSafe(x.Failure.Error())), exitFailed)
				}
				return nil
			})
		},
	}
}

// servedText says how the page was read, for the text output.
func servedText(x *jobs.Extraction) string {
	switch x.Served {
	case pipeline.ServedHit:
		return "from the cache (fresh)"
	case pipeline.ServedStale:
		return "from the cache (past its freshness; not revalidated)"
	case pipeline.ServedRevalidated:
		return "revalidated (304)"
	case pipeline.ServedMiss:
		return "downloaded now, and cached"
	}
	return "not fetched"
}

// writeExtraction prints x for a person: the page, its items (one JSON
// object per line), the links a run follows and those it skips, with why.
func writeExtraction(w io.Writer, job *configs.Job, x *jobs.Extraction) error {
	var b strings.Builder
	fmt.Fprintf(&b, "page     %s\n", termSafe(x.URL))
	if x.FinalURL != x.URL {
		fmt.Fprintf(&b, "final    %s\n", termSafe(x.FinalURL))
	}
	if x.Status == 0 {
		fmt.Fprintf(&b, "status   none: not fetched; depth %d\n", x.Depth)
	} else {
		fmt.Fprintf(&b, "status   %d, %s; depth %d\n", x.Status, servedText(x), x.Depth)
	}
	switch {
	case x.Failure != nil:
		fmt.Fprintf(&b, "failure  %s\n", termSafe(x.Failure.Error()))
	case x.Page == nil:
		fmt.Fprintf(&b, "note     status %d is an answer: a run marks the page done, with no items and no links\n", x.Status)
	}
	if x.ExtractErr != nil {
		fmt.Fprintf(&b, "extract  %s\n", termSafe(x.ExtractErr.Error()))
	}
	note := ""
	if len(job.Outputs) == 0 {
		note = " (the job has no outputs: a run writes none)"
	}
	fmt.Fprintf(&b, "items    %d%s\n", len(x.Items), note)
	for _, it := range x.Items {
		fmt.Fprintf(&b, "  %s\n", itemJSON(it))
	}
	follow, skip := splitLinks(x.Links)
	fmt.Fprintf(&b, "follow   %d links\n", len(follow))
	for _, l := range follow {
		fmt.Fprintf(&b, "  %s\n", termSafe(l.URL))
	}
	fmt.Fprintf(&b, "skip     %d links\n", len(skip))
	width, dups := 0, 0
	for _, l := range skip {
		width = max(width, len(l.Skip))
		if l.Skip == crawler.SkipDuplicate {
			dups++
		}
	}
	if dups > 0 {
		fmt.Fprintf(&b, "  %-*s  %d links listed earlier on the page (--json lists them)\n", width, crawler.SkipDuplicate, dups)
	}
	for _, l := range skip {
		if l.Skip == crawler.SkipDuplicate {
			continue
		}
		rule := ""
		if l.Rule != "" {
			rule = "  (" + termSafe(l.Rule) + ")"
		}
		fmt.Fprintf(&b, "  %-*s  %s%s\n", width, l.Skip, termSafe(l.URL), rule)
	}
	if job.MaxPages > 0 {
		fmt.Fprintf(&b, "note     max_pages %d is not judged here: it depends on what the run's frontier already holds\n", job.MaxPages)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func splitLinks(links []crawler.LinkVerdict) (follow, skip []crawler.LinkVerdict) {
	for _, l := range links {
		if l.Skip == "" {
			follow = append(follow, l)
		} else {
			skip = append(skip, l)
		}
	}
	return follow, skip
}

// extractionJSON is the --json output of extract.
type extractionJSON struct {
	URL        string            `json:"url"`
	FinalURL   string            `json:"final_url"`
	Status     int               `json:"status"`
	Served     string            `json:"served"`
	Depth      int               `json:"depth"`
	Failure    string            `json:"failure,omitempty"`
	ExtractErr string            `json:"extract_error,omitempty"`
	Items      []json.RawMessage `json:"items"`
	Follow     []linkJSON        `json:"follow"`
	Skip       []linkJSON        `json:"skip"`
}

type linkJSON struct {
	URL    string `json:"url"`
	Depth  int    `json:"depth"`
	Reason string `json:"reason,omitempty"`
	Rule   string `json:"rule,omitempty"`
}

func writeExtractionJSON(w io.Writer, x *jobs.Extraction) error {
	out := extractionJSON{
		URL: x.URL, FinalURL: x.FinalURL, Status: x.Status, Served: x.Served, Depth: x.Depth,
		Items: []json.RawMessage{}, Follow: []linkJSON{}, Skip: []linkJSON{},
	}
	if x.Failure != nil {
		out.Failure = x.Failure.Error()
	}
	if x.ExtractErr != nil {
		out.ExtractErr = x.ExtractErr.Error()
	}
	for _, it := range x.Items {
		out.Items = append(out.Items, json.RawMessage(itemJSON(it)))
	}
	for _, l := range x.Links {
		j := linkJSON{URL: l.URL, Depth: l.Depth, Reason: l.Skip, Rule: l.Rule}
		if l.Skip == "" {
			out.Follow = append(out.Follow, j)
		} else {
			out.Skip = append(out.Skip, j)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// itemJSON is an item as one JSON object: its index, then its fields in
// the job's order. Control characters are escaped, so a hostile page
// cannot send a terminal escape sequences through it.
func itemJSON(it pipeline.Item) string {
	var b bytes.Buffer
	b.WriteString(`{"index":`)
	fmt.Fprint(&b, it.Index)
	for _, kv := range it.Fields {
		b.WriteByte(',')
		b.Write(jsonValue(kv.Key))
		b.WriteByte(':')
		b.Write(jsonValue(kv.Value))
	}
	b.WriteByte('}')
	return escapeC1(b.String())
}

func jsonValue(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte("null")
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// escapeC1 escapes DEL and the C1 control characters, which JSON leaves
// as they are and some terminals obey (U+009B is a CSI), as \u00XX.
func escapeC1(s string) string {
	if !strings.ContainsFunc(s, isC1) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isC1(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isC1(r rune) bool { return r >= 0x7f && r <= 0x9f }

// termSafe is s, or s quoted with its control characters escaped when it
// has any (a link or an error message taken from a hostile page).
func termSafe(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || isC1(r) }) {
		return fmt.Sprintf("%+q", s)
	}
	return s
}
