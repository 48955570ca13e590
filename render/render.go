// Package render loads pages in headless Chromium and returns the DOM
// their scripts built. Every request the browser makes is paused with the
// DevTools protocol's Fetch domain and answered through an
// http.RoundTripper given to it (the crawler passes its cache.Transport,
// with its per-host politeness below): scripts, stylesheets and API calls
// are cached, revalidated and replayed offline like pages. Nothing the
// browser loads reaches the network by itself: the browser runs behind a
// proxy address that refuses every connection, so a request the Fetch
// domain would not pause fails instead of bypassing the cache.
//
// A Pool runs a few browsers, a bounded number of tabs in each, recycles a
// browser after a number of pages (Chromium's memory grows), restarts a
// browser that crashed or stopped answering and renders that page again
// once. Each page gets a fresh browser context: no cookie, storage or
// browser cache of one page is seen by another.
//
// The package must not know about jobs, frontiers or the store: it takes
// plain values and a RoundTripper. It is the only package that imports
// chromedp.
package render

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Defaults used when the corresponding Options field is zero.
const (
	DefaultTimeout         = 30 * time.Second
	DefaultParallelism     = 2
	DefaultTabsPerBrowser  = 4
	DefaultPagesPerBrowser = 100
	// DefaultMaxRequests bounds the requests one page may make; later ones
	// fail in the page (a hostile or broken page cannot flood the cache).
	DefaultMaxRequests = 1000
	// networkIdle is how long no request of the page may be open for the
	// networkidle wait (Playwright's and Puppeteer's definition).
	networkIdle = 500 * time.Millisecond
	// healthTimeout bounds the check that a browser still answers after a
	// page timed out.
	healthTimeout = 5 * time.Second
)

// DefaultBlock are the resource types answered without a request when
// Options.Block is nil: they cost bandwidth and change no DOM.
var DefaultBlock = []string{"image", "font", "media"}

// ResourceTypes are the resource types Chromium names (lower case), the
// values Options.Block accepts.
var ResourceTypes = []string{
	"document", "stylesheet", "image", "media", "font", "script", "texttrack",
	"xhr", "fetch", "prefetch", "eventsource", "websocket", "manifest",
	"signedexchange", "ping", "cspviolationreport", "preflight", "other",
}

// Errors returned by Render and NewPool, checked with errors.Is.
var (
	// ErrNoChromium: the browser executable was not found.
	ErrNoChromium = errors.New("chromium not found")
	// ErrTimeout: the page did not reach its wait condition in time.
	ErrTimeout = errors.New("render timed out")
	// ErrBrowserLost: the browser crashed or stopped answering, twice for
	// the same page.
	ErrBrowserLost = errors.New("browser crashed or hung")
	// ErrClosed: the Pool was closed.
	ErrClosed = errors.New("render pool closed")
)

// WaitKind says when a page is considered rendered.
type WaitKind int

// Wait kinds.
const (
	// WaitLoad: the load event (the document, its scripts, stylesheets and
	// frames are loaded; requests scripts start after it may be missed).
	WaitLoad WaitKind = iota
	// WaitNetworkIdle: after load, no request of the page open for 500 ms.
	WaitNetworkIdle
	// WaitSelector: after load, an element matches Wait.Selector.
	WaitSelector
)

// Wait is a page's wait condition. The zero value is WaitLoad.
type Wait struct {
	Kind     WaitKind
	Selector string // for WaitSelector
}

// ParseWait reads a wait condition as job files write it: "load",
// "networkidle", or a CSS selector.
func ParseWait(s string) Wait {
	switch strings.TrimSpace(s) {
	case "", "load":
		return Wait{Kind: WaitLoad}
	case "networkidle":
		return Wait{Kind: WaitNetworkIdle}
	}
	return Wait{Kind: WaitSelector, Selector: strings.TrimSpace(s)}
}

// String returns the wait as ParseWait reads it.
func (w Wait) String() string {
	switch w.Kind {
	case WaitNetworkIdle:
		return "networkidle"
	case WaitSelector:
		return w.Selector
	}
	return "load"
}

// Page is a page to render: the response the crawler already has for its
// URL. The browser's request for the document is answered with it, so
// rendering never fetches the page itself again.
type Page struct {
	// URL is the page's final URL (after redirects).
	URL    string
	Status int
	Header http.Header
	Body   []byte
	// Follow are CSS selectors whose elements' href (else src) the
	// browser lists in Result.Links; nil lists none.
	Follow []string
}

// Result is a rendered page.
type Result struct {
	// HTML is the serialized DOM after the wait condition, UTF-8.
	HTML []byte
	// Links are the absolute URLs of the Follow selectors' elements, in
	// document order, as the browser resolved them.
	Links []string
	// Resources are the requests the page made, in the order they were
	// answered, the document first.
	Resources []Resource
	// Attempts is 2 when the browser was lost during the first attempt.
	Attempts int
}

// Resource served is one of cache.Served* for a request answered through
// the transport, or one of these for a request that was not.
const (
	ServedDocument = "document" // the document, answered with Page
	ServedBlocked  = "blocked"  // a blocked resource type
	ServedRobots   = "robots"   // disallowed by robots.txt of its host
	ServedFailed   = "failed"   // the transport returned an error
	ServedRefused  = "refused"  // not http(s), a navigation away, or over MaxRequests
)

// Resource is one request a page made and how it was answered.
type Resource struct {
	Method string `json:"method"`
	URL    string `json:"url"`
	// Type is the Chromium resource type, lower case ("script", "xhr"...).
	Type   string `json:"type"`
	Status int    `json:"status,omitempty"`
	// Served is the transport's X-Crawlcache value (hit, miss,
	// revalidated, stale) or one of the Served* constants above.
	Served string `json:"served"`
	// SHA256 is the hex SHA-256 of the body given to the browser.
	SHA256 string `json:"sha256,omitempty"`
	Bytes  int    `json:"bytes,omitempty"`

	header map[string]string // sent, for Store (replayHeader)
}

// FindChromium returns the browser executable: path if it is not empty
// (a name is looked up on PATH), else the first of chromium,
// chromium-browser, google-chrome, google-chrome-stable and
// headless_shell found on PATH. The error wraps ErrNoChromium and says how
// to install it.
func FindChromium(path string) (string, error) {
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return "", fmt.Errorf("%w: %q is not an executable (%v); %s", ErrNoChromium, path, err, installHint)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w on PATH; %s", ErrNoChromium, installHint)
}

const installHint = "install it (Debian/Ubuntu: apt-get install chromium) or give its path with --chromium or CRAWLCACHE_CHROMIUM"

// blocked reports whether resource type typ is in block.
func blocked(block []string, typ string) bool {
	return slices.Contains(block, typ)
}
