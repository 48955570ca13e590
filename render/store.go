package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"crawlcache/cache"
)

// Rendered pages are kept by a cache Transport of their own (its
// collections named below, in the cache's database): a rendered page is
// the stored "response" of its URL, keyed with a hash of the render
// options (the X-Crawlcache-Render request header is part of the key),
// readable in Compass like any cached page. Its headers list what the
// render loaded, so a later crawl can tell whether anything changed
// without starting a browser.
const (
	StoreResponses     = "rendered"
	StoreRedirects     = "rendered_redirects"
	StoreRevalidations = "rendered_revalidations"
	StoreVariants      = "rendered_variants"
	StorePages         = "rendered_pages"
	// HeaderRenderKey is the request header that carries the hash of the
	// render options; Store's transport must match it (cache MatchHeaders).
	HeaderRenderKey = "X-Crawlcache-Render"
	// headerResources and headerLinks hold, as JSON, the stored render's
	// resources and links.
	headerResources = "X-Crawlcache-Render-Resources"
	headerLinks     = "X-Crawlcache-Render-Links"
	// storeVersion changes the key of every stored render when what a
	// render produces changes.
	storeVersion = "crawlcache-render-v1"
)

// StoreOptions configures a Store.
type StoreOptions struct {
	// Pages is the transport a page's resources are asked through again to
	// learn whether they changed: the crawler's cache.Transport.
	Pages http.RoundTripper
	// Open returns the transport that keeps rendered pages, given the
	// upstream it must use (Store's): a cache.Transport on the Store*
	// collections that stores 200s for ever and matches HeaderRenderKey.
	Open func(upstream http.RoundTripper) (http.RoundTripper, error)
	// Headers are the credentials the page requests carry: sent with the
	// store's requests too, so a stored render is bound to them as the
	// page is. HeadersFor says which resource URLs get them.
	Headers    http.Header
	HeadersFor func(*url.URL) bool
	// The render options: part of the key.
	Wait      Wait
	Block     []string
	Cookies   bool
	UserAgent string
	Follow    []string
	// Logger receives store errors. If nil, slog.Default().
	Logger *slog.Logger
}

// Store keeps rendered pages and tells when one can be used again. It is
// safe for concurrent use. Store failures are logged and count as "not
// stored": a page is then rendered.
type Store struct {
	opts   StoreOptions
	rt     http.RoundTripper
	key    string
	log    *slog.Logger
	reused atomic.Int64
}

// NewStore opens the store of rendered pages.
func NewStore(o StoreOptions) (*Store, error) {
	s := &Store{opts: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	rt, err := o.Open(storeUpstream{})
	if err != nil {
		return nil, err
	}
	s.rt = rt
	block := slices.Clone(o.Block)
	slices.Sort(block)
	h := sha256.New()
	for _, part := range []string{storeVersion, o.Wait.String(), strings.Join(block, ","), fmt.Sprint(o.Cookies), o.UserAgent, strings.Join(o.Follow, "\x00")} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	s.key = hex.EncodeToString(h.Sum(nil))[:32]
	return s, nil
}

// Reused is the number of pages served from the store instead of
// rendered.
func (s *Store) Reused() int64 { return s.reused.Load() }

// storedResource is a resource as the store keeps it: enough to ask for
// it again with the same cache key.
type storedResource struct {
	Resource
	// Header are the request headers sent for it, without User-Agent,
	// Referer, Cookie and credentials (added again when asked).
	Header map[string]string `json:"header,omitempty"`
}

// reusable reports whether a render can be stored: without a cookie jar
// (requests then depend on the page's cookies) and with every request
// answered.
func (s *Store) reusable(res *Result) bool {
	if s.opts.Cookies {
		return false
	}
	for _, r := range res.Resources {
		if r.Served == ServedFailed {
			return false
		}
	}
	return true
}

// Save stores res as the render of pg. Errors are logged.
func (s *Store) Save(ctx context.Context, pg Page, res *Result) {
	if !s.reusable(res) {
		return
	}
	var kept []storedResource
	for _, r := range res.Resources {
		kept = append(kept, storedResource{Resource: r, Header: r.header})
	}
	resources, err := json.Marshal(kept)
	if err != nil {
		s.log.Warn("encode rendered page resources", "url", pg.URL, "err", err)
		return
	}
	links, _ := json.Marshal(res.Links) // []string always marshals
	p := &payload{html: res.HTML, header: http.Header{
		"Content-Type": {"text/html; charset=utf-8"}, headerResources: {string(resources)}, headerLinks: {string(links)},
	}}
	req, err := s.request(context.WithValue(cache.WithForceRefresh(ctx), payloadKey{}, p), pg.URL)
	if err != nil {
		s.log.Warn("store rendered page", "url", pg.URL, "err", err)
		return
	}
	resp, err := s.rt.RoundTrip(req)
	if err != nil {
		s.log.Warn("store rendered page", "url", pg.URL, "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// Reuse returns the stored render of pg when there is one and nothing it
// loaded changed: the document has the same body, and every resource
// asked through Pages again (a hit, or a 304 once expired) answers with
// the same status and body. ok is false otherwise (then render the page).
func (s *Store) Reuse(ctx context.Context, pg Page) (res *Result, ok bool) {
	req, err := s.request(cache.WithOnlyIfCached(ctx), pg.URL)
	if err != nil {
		return nil, false
	}
	resp, err := s.rt.RoundTrip(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false
	}
	html, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, false
	}
	var kept []storedResource
	var links []string
	if json.Unmarshal([]byte(resp.Header.Get(headerResources)), &kept) != nil ||
		json.Unmarshal([]byte(resp.Header.Get(headerLinks)), &links) != nil {
		s.log.Warn("stored render has no readable resource list; rendering again", "url", pg.URL)
		return nil, false
	}
	out := &Result{HTML: html, Links: links}
	for _, r := range kept {
		now, same := s.check(ctx, pg, r)
		if !same {
			return nil, false
		}
		out.Resources = append(out.Resources, now)
	}
	s.reused.Add(1)
	return out, true
}

// check asks for a stored resource again and says whether it is the same.
func (s *Store) check(ctx context.Context, pg Page, r storedResource) (Resource, bool) {
	switch r.Served {
	case ServedDocument:
		sum := sha256.Sum256(pg.Body)
		return r.Resource, hex.EncodeToString(sum[:]) == r.SHA256 && pg.Status == r.Status
	case ServedBlocked, ServedRobots, ServedRefused:
		return r.Resource, true // answered without a request, as now
	}
	if r.Method != http.MethodGet || r.Served == ServedFailed {
		return r.Resource, false
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, nil)
	if err != nil {
		return r.Resource, false
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	if s.opts.UserAgent != "" {
		req.Header.Set("User-Agent", s.opts.UserAgent)
	}
	if s.opts.HeadersFor != nil && s.opts.HeadersFor(req.URL) {
		for k, vs := range s.opts.Headers {
			req.Header[k] = append([]string(nil), vs...)
		}
	}
	resp, err := s.opts.Pages.RoundTrip(req)
	if err != nil {
		return r.Resource, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return r.Resource, false
	}
	sum := sha256.Sum256(body)
	now := r.Resource
	now.Served, now.Status = resp.Header.Get(cache.HeaderServed), resp.StatusCode
	return now, resp.StatusCode == r.Status && hex.EncodeToString(sum[:]) == r.SHA256
}

// request is the store's request for the render of pageURL.
func (s *Store) request(ctx context.Context, pageURL string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pageURL, nil)
	if err != nil {
		return nil, fmt.Errorf("build request for stored render: %w", err)
	}
	req.Header.Set(HeaderRenderKey, s.key)
	if s.opts.UserAgent != "" {
		req.Header.Set("User-Agent", s.opts.UserAgent)
	}
	if s.opts.HeadersFor != nil && s.opts.HeadersFor(req.URL) {
		for k, vs := range s.opts.Headers {
			req.Header[k] = append([]string(nil), vs...)
		}
	}
	return req, nil
}

// payload is the render Save hands to the store's transport.
type payload struct {
	html   []byte
	header http.Header
}

type payloadKey struct{}

// storeUpstream is the "origin" of the store's transport: it answers a
// Save with the render it carries, and anything else (a lookup that found
// nothing) with a 504, which the store's transport does not keep.
type storeUpstream struct{}

func (storeUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	p, _ := req.Context().Value(payloadKey{}).(*payload)
	status, body, h := http.StatusGatewayTimeout, []byte(nil), http.Header{}
	if p != nil {
		status, body, h = http.StatusOK, p.html, p.header.Clone()
	}
	return &http.Response{
		StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}, nil
}
