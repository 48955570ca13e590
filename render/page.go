package render

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/inspector"
	"github.com/chromedp/chromedp"
)

// errTabCrashed: the page's renderer process died (the browser lives).
var errTabCrashed = errors.New("the page's renderer crashed")

// maxConcurrentRequests bounds the requests of one page answered at once;
// the politeness below the Transport bounds the network anyway, this
// bounds the bodies held in memory.
const maxConcurrentRequests = 8

// session is one attempt at one page in one tab.
type session struct {
	p       *Pool
	pg      Page
	pageURL *url.URL
	ctx     context.Context // the attempt; cancelled when it ends
	jar     http.CookieJar  // nil unless Options.Cookies
	sem     chan struct{}

	inflight atomic.Int64
	lastIdle atomic.Int64 // unix nanoseconds when inflight last became 0

	mu        sync.Mutex
	closed    bool // no more handlers start
	wg        sync.WaitGroup
	requests  int
	mainFrame cdp.FrameID // set by the first document request
	resources []Resource
}

// renderIn renders pg in a new tab (and browser context) of b.
func (p *Pool) renderIn(ctx context.Context, b *instance, pg Page) (*Result, error) {
	pageURL, err := url.Parse(pg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse page url: %w", err)
	}
	tabCtx, closeTab := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	defer closeTab()
	crashCtx, crashed := context.WithCancelCause(tabCtx)
	defer crashed(nil)
	actx, cancel := context.WithTimeout(crashCtx, p.opts.Timeout)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()

	s := &session{p: p, pg: pg, pageURL: pageURL, ctx: actx, sem: make(chan struct{}, maxConcurrentRequests)}
	s.lastIdle.Store(time.Now().UnixNano())
	if p.opts.Cookies {
		s.jar, _ = cookiejar.New(nil) // the error is always nil without options
	}
	defer s.close()

	res, err := s.run(func(ev any) {
		switch ev := ev.(type) {
		case *fetch.EventRequestPaused:
			s.paused(ev)
		case *inspector.EventTargetCrashed:
			crashed(errTabCrashed)
		}
	})
	if err != nil {
		switch cause := context.Cause(crashCtx); {
		case errors.Is(cause, errTabCrashed):
			return nil, errTabCrashed
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(actx.Err(), context.DeadlineExceeded) && b.ctx.Err() == nil:
			return nil, fmt.Errorf("%w after %s waiting for %s: %w", ErrTimeout, p.opts.Timeout, p.opts.Wait, err)
		}
		return nil, err
	}
	return res, nil
}

// run opens the tab, turns interception on, loads the page, waits and
// takes the DOM.
func (s *session) run(listen func(any)) (*Result, error) {
	ctx := s.ctx
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		return nil, fmt.Errorf("open tab: %w", err)
	}
	if err := chromedp.Listen(ctx, listen); err != nil {
		return nil, fmt.Errorf("listen to tab: %w", err)
	}
	if _, err := chromedp.Call(ctx, inspector.Enable, cdp.Empty{}); err != nil {
		return nil, fmt.Errorf("enable crash events: %w", err)
	}
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}}); err != nil {
		return nil, fmt.Errorf("enable request interception: %w", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.pg.URL)); err != nil {
		return nil, fmt.Errorf("load page: %w", err)
	}
	switch w := s.p.opts.Wait; w.Kind {
	case WaitNetworkIdle:
		if err := s.waitIdle(); err != nil {
			return nil, fmt.Errorf("wait for network idle: %w", err)
		}
	case WaitSelector:
		if err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS(w.Selector))); err != nil {
			return nil, fmt.Errorf("wait for %q: %w", w.Selector, err)
		}
	}
	snap, err := chromedp.Run(ctx, chromedp.Evaluate[snapshot](snapshotJS(s.pg.Follow)))
	if err != nil {
		return nil, fmt.Errorf("read the rendered page: %w", err)
	}
	s.mu.Lock()
	resources := append([]Resource(nil), s.resources...)
	s.mu.Unlock()
	return &Result{HTML: []byte(snap.HTML), Links: snap.Links, Resources: resources}, nil
}

// waitIdle waits until no request of the page has been open for
// networkIdle. Requests are counted from the moment the browser pauses
// them to the moment they are answered.
func (s *session) waitIdle() error {
	t := time.NewTicker(networkIdle / 5)
	defer t.Stop()
	for {
		if s.inflight.Load() == 0 && time.Since(time.Unix(0, s.lastIdle.Load())) >= networkIdle {
			return nil
		}
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case <-t.C:
		}
	}
}

// close stops new handlers and waits for those running (their requests
// are cancelled with the attempt's context).
func (s *session) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
}

// snapshot is what snapshotJS returns.
type snapshot struct {
	HTML  string   `json:"html"`
	Links []string `json:"links"`
}

// snapshotJS serializes the DOM (with its doctype) and lists the href (or
// src) of the elements each selector matches, resolved against the
// document's base URL. A selector the browser rejects lists nothing.
func snapshotJS(follow []string) string {
	sels, _ := json.Marshal(follow) // a []string always marshals
	if follow == nil {
		sels = []byte("[]")
	}
	return `(() => {
  const d = document, links = [];
  for (const sel of ` + string(sels) + `) {
    let els;
    try { els = d.querySelectorAll(sel); } catch (e) { continue; }
    for (const e of els) {
      const v = e.getAttribute("href") || e.getAttribute("src");
      if (!v) continue;
      try { links.push(new URL(v, d.baseURI).href); } catch (e) {}
    }
  }
  const dt = d.doctype ? new XMLSerializer().serializeToString(d.doctype) + "\n" : "";
  return {html: dt + (d.documentElement ? d.documentElement.outerHTML : ""), links: links};
})()`
}
