package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromedp/chromedp"

	"crawlcache/cache"
	"crawlcache/crawler"
	"crawlcache/frontier"
	"crawlcache/render"
	"crawlcache/testsite"
)

// renderSpec is the render scenario's child: crawlcache's three crawls
// of the script-built shop, or the peer (chromedp alone) rendering the
// same pages.
type renderSpec struct {
	Base        string
	URLs        []string // the pages, for the peer
	Chromium    string
	Tabs        int // pages rendered at once, by both
	Parallelism int // network requests at once (crawlcache)
	Peer        bool
}

// renderPhase is one crawl of the render child.
type renderPhase struct {
	Name     string  `json:"name"`
	Pages    int64   `json:"pages"`
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"` // answered by the origin during the phase
	Rendered int64   `json:"rendered"` // pages Chromium rendered
	Errors   int64   `json:"errors"`
}

// renderScenario measures rendering the demo shop's script-built pages
// (/app/): crawlcache cold (empty cache), warm with Chromium rendering
// every page again from the cache, and warm reusing the stored renders,
// against chromedp alone (no cache) on the same pages; and the peak RSS
// of each side's whole process tree (the Go process and its browsers).
func renderScenario(ctx context.Context, cfg config) ([]row, error) {
	chromium, err := render.FindChromium(os.Getenv("CRAWLCACHE_CHROMIUM"))
	if err != nil {
		return nil, err
	}
	site := testsite.New(testsite.Options{Pages: cfg.renderPages, Seed: 4, Latency: cfg.latency, Control: "/_testsite/", NoRequestLog: true})
	srv := site.Start()
	defer srv.Close()
	urls := site.AppURLs(srv.URL)
	spec := renderSpec{Base: srv.URL, URLs: urls, Chromium: chromium, Tabs: cfg.renderTabs, Parallelism: cfg.parallelism}

	dir, err := os.MkdirTemp("", "crawlcache-bench-render-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ours, ourRSS, err := runRenderChild(childSpec{Mode: "render", DataDir: dir, Render: &spec})
	if err != nil {
		return nil, fmt.Errorf("render, crawlcache: %w", err)
	}
	spec.Peer = true
	peer, peerRSS, err := runRenderChild(childSpec{Mode: "render", Render: &spec})
	if err != nil {
		return nil, fmt.Errorf("render, chromedp: %w", err)
	}
	if len(ours) != 3 || len(peer) != 1 {
		return nil, fmt.Errorf("render: %d crawlcache phases and %d peer phases, want 3 and 1", len(ours), len(peer))
	}
	rate := func(p renderPhase) float64 { return float64(p.Pages) / p.Seconds }
	p := peer[0]
	peerCell := fmt.Sprintf("%.2f pages/s (%d pages, %d requests to the origin)", rate(p), p.Pages, p.Requests)
	var rows []row
	for _, ph := range ours {
		rows = append(rows, row{
			fmt.Sprintf("render %d script-built pages, %s", len(urls), ph.Name),
			fmt.Sprintf("%.2f pages/s (%d pages, %d rendered, %d requests to the origin, %d errors)", rate(ph), ph.Pages, ph.Rendered, ph.Requests, ph.Errors),
			peerCell, fmt.Sprintf("%.2fx", rate(ph)/rate(p)), "", "",
		})
	}
	rows = append(rows, row{
		fmt.Sprintf("render: peak RSS of the process tree (Go process and browsers, %d pages at once)", cfg.renderTabs),
		fmt.Sprintf("%.0f MB", float64(ourRSS)/1024), fmt.Sprintf("%.0f MB", float64(peerRSS)/1024), "",
		"≤ 1.5 GB", yesNo(ourRSS <= 1536*1024),
	})
	return rows, nil
}

// runRenderChild runs a render child, sampling the summed RSS of its
// process tree, and returns its phases and that peak in KiB.
func runRenderChild(spec childSpec) ([]renderPhase, int64, error) {
	cmd, err := spawn(spec)
	if err != nil {
		return nil, 0, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if n := treeRSS(cmd.Process.Pid); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	var phases []renderPhase
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var ph renderPhase
		if json.Unmarshal(sc.Bytes(), &ph) == nil && ph.Name != "" {
			phases = append(phases, ph)
		}
	}
	err = cmd.Wait()
	close(stop)
	wg.Wait()
	return phases, peak.Load(), err
}

// treeRSS sums VmRSS (KiB) over root and its descendants. Shared pages
// count once per process, so it is an upper bound.
func treeRSS(root int) int64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 {
				parent[pid], _ = strconv.Atoi(f[1])
			}
		}
	}
	var sum int64
	for pid := range parent {
		for p, hops := pid, 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if p == root {
				sum += pidRSS(pid)
				break
			}
		}
	}
	return sum
}

var vmRSS = regexp.MustCompile(`VmRSS:\s+(\d+) kB`)

func pidRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	m := vmRSS.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// renderChild runs in the child process and prints one JSON line per
// phase.
func renderChild(ctx context.Context, spec childSpec) error {
	rs := spec.Render
	enc := json.NewEncoder(os.Stdout)
	if rs.Peer {
		ph, err := peerRender(ctx, rs)
		if err != nil {
			return err
		}
		return enc.Encode(ph)
	}
	s, err := openStore(ctx, spec.DataDir)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	for i, ph := range []struct {
		name    string
		noReuse bool
	}{
		{"cold (empty cache)", true},
		{"warm: Chromium renders again, every request from the cache", true},
		{"warm: stored renders reused", false},
	} {
		if _, err := siteControl(rs.Base, http.MethodPost, "reset"); err != nil {
			return err
		}
		fr, err := frontier.New(ctx, s, "crawlcache", frontier.Options{Logger: quiet})
		if err != nil {
			return err
		}
		start := time.Now()
		p, err := crawler.Run(ctx, crawler.Options{
			RunID: fmt.Sprintf("render-%d", i), Job: "bench-render", Seeds: []string{rs.Base + testsite.AppPrefix},
			Include: []*regexp.Regexp{regexp.MustCompile("^" + regexp.QuoteMeta(rs.Base) + "/app/")},
			Robots:  true, Parallelism: rs.Parallelism, Store: s, CachePolicy: cache.Policy{}, Frontier: fr, Logger: quiet,
			Render: &crawler.RenderOptions{
				Chromium: rs.Chromium, Wait: render.Wait{Kind: render.WaitSelector, Selector: testsite.AppReadySelector},
				Parallelism: rs.Tabs, NoReuse: ph.noReuse,
			},
		})
		d := time.Since(start)
		if err != nil {
			return err
		}
		c, err := siteControl(rs.Base, http.MethodGet, "counts")
		if err != nil {
			return err
		}
		if err := enc.Encode(renderPhase{Name: ph.name, Pages: p.Pages, Seconds: d.Seconds(), Requests: int64(c.Total), Rendered: p.Rendered, Errors: p.Errors}); err != nil {
			return err
		}
	}
	return nil
}

// siteControl calls the test site's control endpoint.
func siteControl(base, method, what string) (testsite.Counts, error) {
	var c testsite.Counts
	req, err := http.NewRequest(method, base+"/_testsite/"+what, nil)
	if err != nil {
		return c, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	if what == "counts" {
		err = json.NewDecoder(resp.Body).Decode(&c)
	}
	return c, err
}

// peerRender renders the pages with chromedp alone: one headless browser
// (the same flags as crawlcache's), Tabs pages at once, each in a new tab
// that loads its page from the origin and waits for the same selector.
func peerRender(ctx context.Context, rs *renderSpec) (renderPhase, error) {
	if _, err := siteControl(rs.Base, http.MethodPost, "reset"); err != nil {
		return renderPhase{}, err
	}
	actx, cancel := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(rs.Chromium), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true))
	defer cancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil {
		return renderPhase{}, err
	}
	start := time.Now()
	work := make(chan string)
	var pages, errs atomic.Int64
	var wg sync.WaitGroup
	for range rs.Tabs {
		wg.Go(func() {
			for u := range work {
				tctx, tcancel := chromedp.NewContext(bctx)
				tctx, tcancel2 := context.WithTimeout(tctx, 30*time.Second)
				err := chromedp.Do(tctx, chromedp.Navigate(u), chromedp.WaitReady(chromedp.CSS(testsite.AppReadySelector)))
				if err == nil {
					_, err = chromedp.Run(tctx, chromedp.OuterHTML(chromedp.CSS("html")))
				}
				tcancel2()
				tcancel()
				if err != nil {
					errs.Add(1)
					continue
				}
				pages.Add(1)
			}
		})
	}
	for _, u := range rs.URLs {
		work <- u
	}
	close(work)
	wg.Wait()
	d := time.Since(start)
	c, err := siteControl(rs.Base, http.MethodGet, "counts")
	if err != nil {
		return renderPhase{}, err
	}
	return renderPhase{Name: "chromedp", Pages: pages.Load(), Seconds: d.Seconds(), Requests: int64(c.Total), Rendered: pages.Load(), Errors: errs.Load()}, nil
}
