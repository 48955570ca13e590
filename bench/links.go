package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"crawlcache/cache"
	"crawlcache/crawler"
	"crawlcache/store"
)

// linkSite serves the million-link scenarios: /hubs links to hubs pages
// of perHub links each, /big is one page of big links; every other page
// is a leaf without links.
type linkSite struct {
	hubs, perHub int
	bigPage      []byte
	leaves       atomic.Int64 // leaf pages served
}

func newLinkSite(hubs, perHub, big int) *linkSite {
	var b strings.Builder
	b.WriteString("<html><head><title>big</title></head><body>\n")
	for i := range big {
		fmt.Fprintf(&b, "<a href=\"/b/%d\">%d</a>\n", i, i)
	}
	b.WriteString("</body></html>\n")
	return &linkSite{hubs: hubs, perHub: perHub, bigPage: []byte(b.String())}
}

func (s *linkSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	p := r.URL.Path
	switch {
	case p == "/robots.txt":
		http.NotFound(w, r)
	case p == "/big":
		w.Write(s.bigPage)
	case p == "/hubs":
		var b strings.Builder
		for i := range s.hubs {
			fmt.Fprintf(&b, "<a href=\"/h/%d\">hub</a>\n", i)
		}
		w.Write([]byte(b.String()))
	case strings.HasPrefix(p, "/h/"):
		var b strings.Builder
		for i := range s.perHub {
			fmt.Fprintf(&b, "<a href=\"/l%s/%d\">leaf</a>\n", p[2:], i)
		}
		w.Write([]byte(b.String()))
	default:
		s.leaves.Add(1)
		w.Write([]byte("<html><body>leaf</body></html>"))
	}
}

// childLine is a progress line of an interruptible child, or its last one.
type childLine struct {
	Pages, Queue int64
	Final        bool    `json:",omitempty"`
	PeakRSSKB    int64   `json:",omitempty"`
	Seconds      float64 `json:",omitempty"`
}

// interruptibleChild crawls until SIGINT (or the end), printing progress
// lines, then its peak RSS.
func interruptibleChild(ctx context.Context, s *store.Store, spec childSpec) error {
	sctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	if spec.MemProfile != "" {
		stopWatch := memWatch(spec.MemProfile)
		defer func() { fmt.Fprintf(os.Stderr, "\n  memory at peak (%s): %s\n", spec.MemProfile, stopWatch()) }()
	}
	spec.Crawl.Progress = func(p crawler.Progress) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(childLine{Pages: p.Pages, Queue: p.Queue})
	}
	p, d, err := crawlcacheCrawl(sctx, s, spec.Crawl)
	if err != nil && !errors.Is(err, crawler.ErrInterrupted) {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return enc.Encode(childLine{Final: true, Pages: p.Pages, Queue: p.Queue, PeakRSSKB: peakRSS(), Seconds: d.Seconds()})
}

// childRun is what the parent saw of one interruptible child.
type childRun struct {
	last       childLine
	stopToExit time.Duration // SIGINT to exit
	firstFetch time.Duration // start to the first leaf the origin served; -1 if none
	firstPage  time.Duration // start to the first progress line with a page; -1 if none
	ran        time.Duration // start to SIGINT
}

// runInterruptible starts a child crawl and sends it SIGINT once stop
// says so (or the first leaf is served, with stopAtFirstFetch).
func runInterruptible(spec childSpec, site *linkSite, stop func(childLine) bool, stopAtFirstFetch bool, limit time.Duration) (childRun, error) {
	var res childRun
	res.firstFetch, res.firstPage = -1, -1
	cmd, err := spawn(spec)
	if err != nil {
		return res, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	leaves0 := site.leaves.Load()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	var once sync.Once
	var sent time.Time
	interrupt := func() {
		once.Do(func() {
			sent = time.Now()
			res.ran = sent.Sub(start)
			_ = cmd.Process.Signal(os.Interrupt)
		})
	}
	done := make(chan struct{})
	go func() { // the origin's view: when did this child fetch again?
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if res.firstFetch < 0 && site.leaves.Load() > leaves0 {
				res.firstFetch = time.Since(start)
				if stopAtFirstFetch {
					interrupt()
				}
			}
		}
	}()
	timer := time.AfterFunc(limit, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var l childLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		res.last = l
		if res.firstPage < 0 && l.Pages > 0 {
			res.firstPage = time.Since(start)
		}
		if !l.Final && stop != nil && stop(l) {
			interrupt()
		}
	}
	err = cmd.Wait()
	close(done)
	if !sent.IsZero() {
		res.stopToExit = time.Since(sent)
	}
	if err != nil {
		return res, fmt.Errorf("child crawl: %w", err)
	}
	if !res.last.Final {
		return res, errors.New("child crawl ended without its result")
	}
	return res, nil
}

// linkScenarios measures crawls that discover a million URLs: peak RSS of
// the crawling process, SIGINT to exit, and how soon a resume fetches
// again.
func linkScenarios(ctx context.Context, cfg config) ([]row, error) {
	const million = 1_000_000
	site := newLinkSite(1000, 1000, million)
	srv := httptest.NewServer(site)
	defer srv.Close()
	pol := cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireNever}}
	var rows []row
	for _, sc := range []struct {
		name, seed string
		total      int64 // URLs of the run once every link is known
		rssTarget  float64
	}{
		{"1,000 pages of 1,000 links", "/hubs", 1 + 1000 + million, 300},
		{fmt.Sprintf("one page of 1,000,000 links (%.0f MB)", float64(len(site.bigPage))/(1<<20)), "/big", 1 + million, 800},
	} {
		if cfg.links != "" && !strings.HasPrefix(sc.seed, "/"+cfg.links) {
			continue
		}
		dir, err := os.MkdirTemp("", "crawlcache-bench-links-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		spec := childSpec{Mode: "interruptible", DataDir: dir, Crawl: crawlSpec{
			RunID: "links", Seed: srv.URL + sc.seed, Worker: "bench-links", Parallelism: cfg.parallelism,
			Policy: pol, MaxBodySize: 64 << 20,
		}}
		if cfg.memProfile != "" {
			spec.MemProfile = cfg.memProfile + "." + sc.seed[1:]
		}
		fmt.Fprintf(os.Stderr, "\n  %s: discovering...", sc.name)
		first, err := runInterruptible(spec, site, func(l childLine) bool { return l.Pages+l.Queue >= sc.total }, false, 20*time.Minute)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sc.name, err)
		}
		fmt.Fprintf(os.Stderr, " resuming...")
		spec.Crawl.Resume = true
		if spec.MemProfile != "" {
			spec.MemProfile += ".resume"
		}
		again, err := runInterruptible(spec, site, nil, true, 10*time.Minute)
		if err != nil {
			return nil, fmt.Errorf("%s, resume: %w", sc.name, err)
		}
		rss := float64(first.last.PeakRSSKB) / 1024
		rows = append(rows,
			row{fmt.Sprintf("%s: peak RSS of the crawling process", sc.name),
				fmt.Sprintf("%.0f MB (all %d URLs known after %.0fs)", rss, sc.total, first.ran.Seconds()), "", "",
				fmt.Sprintf("≤ %.0f MB", sc.rssTarget), yesNo(rss <= sc.rssTarget)},
			row{fmt.Sprintf("%s: SIGINT to exit", sc.name),
				fmt.Sprintf("%.2fs", first.stopToExit.Seconds()), "", "", "≤ 2 s", yesNo(first.stopToExit <= 2*time.Second)},
			row{fmt.Sprintf("%s: resume, start to crawling again (first page done, progress every 1 s)", sc.name),
				fmt.Sprintf("%.1fs; first download %.1fs (peak RSS %.0f MB; SIGINT to exit %.2fs)", again.firstPage.Seconds(), again.firstFetch.Seconds(), float64(again.last.PeakRSSKB)/1024, again.stopToExit.Seconds()), "", "",
				"≤ 10 s", yesNo(again.firstPage >= 0 && again.firstPage <= 10*time.Second)},
		)
	}
	return rows, nil
}
