package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"crawlcache/cache"
)

// paused is called in the tab's event loop for each request the browser
// pauses: it must return at once, so the request is answered in a
// goroutine.
func (s *session) paused(ev *fetch.EventRequestPaused) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.requests++
	n := s.requests
	first := false
	if ev.ResourceType == network.ResourceTypeDocument && s.mainFrame == "" {
		s.mainFrame, first = ev.FrameID, true
	}
	mainFrame := s.mainFrame
	s.mu.Unlock()
	s.inflight.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			if s.inflight.Add(-1) == 0 {
				s.lastIdle.Store(time.Now().UnixNano())
			}
		}()
		res := s.answer(ev, n, first, mainFrame)
		s.mu.Lock()
		s.resources = append(s.resources, res)
		s.mu.Unlock()
	}()
}

// answer answers one paused request and says how.
func (s *session) answer(ev *fetch.EventRequestPaused, n int, first bool, mainFrame cdp.FrameID) Resource {
	typ := strings.ToLower(string(ev.ResourceType))
	res := Resource{Method: ev.Request.Method, URL: ev.Request.URL, Type: typ}
	u, err := url.Parse(ev.Request.URL)
	opts := &s.p.opts
	switch {
	case first:
		// The navigation: the crawler already has the document.
		res.Served, res.Status = ServedDocument, s.pg.Status
		s.fulfill(ev, &res, s.pg.Status, s.pg.Header, s.pg.Body)
		return res
	case typ == "document" && ev.FrameID == mainFrame:
		// A script navigating away: a 204 leaves the page where it is
		// (HTML's navigation rules), an error would replace it with an
		// error page.
		res.Served = ServedRefused
		s.p.blocked.Add(1)
		s.fulfill(ev, &res, http.StatusNoContent, nil, nil)
		return res
	case err != nil || (u.Scheme != "http" && u.Scheme != "https"), n > opts.MaxRequests:
		res.Served = ServedRefused
		s.p.blocked.Add(1)
		s.fail(ev, network.ErrorReasonBlockedByClient)
		return res
	case blocked(opts.Block, typ), typ == "other" && u.Path == "/favicon.ico":
		// The tab's icon changes no DOM; a site without one would
		// answer 404 with no validator, never a 304.
		res.Served = ServedBlocked
		s.p.blocked.Add(1)
		s.fail(ev, network.ErrorReasonBlockedByClient)
		return res
	case opts.Allowed != nil && !opts.Allowed(s.ctx, u):
		res.Served = ServedRobots
		s.p.blocked.Add(1)
		s.fail(ev, network.ErrorReasonBlockedByClient)
		return res
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-s.ctx.Done():
		res.Served = ServedFailed
		return res
	}
	status, header, body, err := s.roundTrip(ev, u, &res)
	if err != nil {
		res.Served = ServedFailed
		s.fail(ev, network.ErrorReasonFailed)
		return res
	}
	s.fulfill(ev, &res, status, header, body)
	return res
}

// roundTrip sends the browser's request through the Transport.
func (s *session) roundTrip(ev *fetch.EventRequestPaused, u *url.URL, res *Resource) (int, http.Header, []byte, error) {
	opts := &s.p.opts
	var body io.Reader
	if ev.Request.HasPostData {
		var b bytes.Buffer
		for _, e := range ev.Request.PostDataEntries {
			b.Write(e.Bytes)
		}
		body = &b
	}
	req, err := http.NewRequestWithContext(s.ctx, ev.Request.Method, ev.Request.URL, body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("build request: %w", err)
	}
	s.requestHeader(req.Header, ev, u)
	if opts.HeadersFor != nil && opts.HeadersFor(u) {
		for k, vs := range opts.Headers {
			req.Header[k] = append([]string(nil), vs...)
		}
	}
	if s.jar != nil {
		for _, c := range s.jar.Cookies(u) {
			req.AddCookie(c)
		}
	}
	res.header = replayHeader(req.Header, opts.Headers)
	s.p.requests.Add(1)
	resp, err := opts.Transport.RoundTrip(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, opts.MaxBodySize+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(data)) > opts.MaxBodySize {
		return 0, nil, nil, fmt.Errorf("body larger than %d bytes", opts.MaxBodySize)
	}
	if s.jar != nil {
		s.jar.SetCookies(u, resp.Cookies())
	}
	res.Status = resp.StatusCode
	res.Served = resp.Header.Get(cache.HeaderServed)
	return resp.StatusCode, resp.Header, data, nil
}

// droppedRequestHeaders are browser headers not sent on: encodings are
// the Go transport's business (it decompresses), cookies come from the
// page's jar or not at all, client hints vary with the browser build.
var droppedRequestHeaders = map[string]bool{
	"accept-encoding": true, "cookie": true, "host": true, "connection": true,
	"content-length": true, "sec-ch-ua": true, "sec-ch-ua-mobile": true, "sec-ch-ua-platform": true,
	"upgrade-insecure-requests": true,
}

// requestHeader copies the browser's request headers into h, with
// Referer filled in by the request's referrer policy when the paused
// request lacks it.
func (s *session) requestHeader(h http.Header, ev *fetch.EventRequestPaused, u *url.URL) {
	for k, v := range ev.Request.Headers {
		if droppedRequestHeaders[strings.ToLower(k)] {
			continue
		}
		sv, ok := v.(string)
		if !ok {
			continue
		}
		for _, line := range strings.Split(sv, "\n") {
			h.Add(k, line)
		}
	}
	if h.Get("Referer") == "" {
		if ref := referrer(string(ev.Request.ReferrerPolicy), s.pageURL, u); ref != "" {
			h.Set("Referer", ref)
		}
	}
	if s.p.opts.UserAgent != "" {
		h.Set("User-Agent", s.p.opts.UserAgent)
	}
}

// referrer is the Referer a browser sends from page from to target under
// policy (W3C Referrer Policy §8.3): the full URL (without fragment and
// credentials), the origin, or nothing.
func referrer(policy string, from, target *url.URL) string {
	if from == nil || (from.Scheme != "http" && from.Scheme != "https") {
		return ""
	}
	full := *from
	full.Fragment, full.User, full.RawFragment = "", nil, ""
	origin := from.Scheme + "://" + from.Host + "/"
	sameOrigin := from.Scheme == target.Scheme && from.Host == target.Host
	downgrade := from.Scheme == "https" && target.Scheme != "https"
	switch policy {
	case "noReferrer":
		return ""
	case "unsafeUrl":
		return full.String()
	case "origin":
		return origin
	case "sameOrigin":
		if sameOrigin {
			return full.String()
		}
		return ""
	case "strictOrigin":
		if downgrade {
			return ""
		}
		return origin
	case "originWhenCrossOrigin":
		if sameOrigin {
			return full.String()
		}
		return origin
	case "noReferrerWhenDowngrade":
		if downgrade {
			return ""
		}
		return full.String()
	}
	// strictOriginWhenCrossOrigin, the default.
	switch {
	case sameOrigin:
		return full.String()
	case downgrade:
		return ""
	}
	return origin
}

// droppedResponseHeaders are not handed to the browser: the body is
// whole and decoded, and the cache's own header is not the origin's.
var droppedResponseHeaders = map[string]bool{
	"content-encoding": true, "content-length": true, "transfer-encoding": true,
	"connection": true, "keep-alive": true, strings.ToLower(cache.HeaderServed): true,
}

// fulfill answers the paused request with a response.
func (s *session) fulfill(ev *fetch.EventRequestPaused, res *Resource, status int, header http.Header, body []byte) {
	var hs []*fetch.HeaderEntry
	for k, vs := range header {
		lk := strings.ToLower(k)
		if droppedResponseHeaders[lk] || (lk == "set-cookie" && s.jar == nil) {
			continue
		}
		for _, v := range vs {
			hs = append(hs, &fetch.HeaderEntry{Name: k, Value: v})
		}
	}
	if status <= 0 {
		status = http.StatusOK
	}
	sum := sha256.Sum256(body)
	res.SHA256, res.Bytes = hex.EncodeToString(sum[:]), len(body)
	// A tab that closed meanwhile cannot be answered: nothing to do.
	_, _ = chromedp.Call(s.cmdCtx(), fetch.FulfillRequest, fetch.FulfillRequestParams{
		RequestID: ev.RequestID, ResponseCode: int64(status), ResponseHeaders: hs, Body: body,
	})
}

// fail makes the paused request fail in the page.
func (s *session) fail(ev *fetch.EventRequestPaused, reason network.ErrorReason) {
	_, _ = chromedp.Call(s.cmdCtx(), fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: reason})
}

// cmdCtx is the context of answers to the browser: the attempt's.
func (s *session) cmdCtx() context.Context { return s.ctx }

// replayHeader is what Store keeps of a request's header to ask for it
// again with the same cache key: everything but User-Agent, Referer,
// cookies and the job's credentials (added again by whoever asks).
func replayHeader(h, credentials http.Header) map[string]string {
	out := map[string]string{}
	for k, vs := range h {
		switch {
		case k == "User-Agent", k == "Referer", k == "Cookie", k == "Authorization", k == "Proxy-Authorization", credentials[k] != nil:
			continue
		}
		out[k] = strings.Join(vs, ", ")
	}
	return out
}
