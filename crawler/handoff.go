package crawler

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
)

// A page whose head was revalidated (head.go) and whose origin answered
// with a new body already has its response, read and stored by the
// cache. colly must still make the page's request, for its redirects,
// charset decoding and callbacks: the answer waits under a token that the
// request carries in handoffHeader, and handoffTransport, colly's
// transport, answers the request with it instead of asking the cache
// again. The header never leaves the process: the transport removes it
// from every request, redirect hops (which copy the headers) included.

// handoffHeader carries a handoff token on colly's request of a page.
const handoffHeader = "X-Crawlcache-Handoff"

// handoff is one answer waiting for its request.
type handoff struct {
	url  string
	resp *http.Response
	err  error
}

// handoffs holds the waiting answers by token.
type handoffs struct {
	next    atomic.Uint64
	pending sync.Map // token → handoff
}

// put makes the answer (resp or err) to the request of url wait, and
// returns its token.
func (h *handoffs) put(url string, resp *http.Response, err error) string {
	tok := strconv.FormatUint(h.next.Add(1), 10)
	h.pending.Store(tok, handoff{url: url, resp: resp, err: err})
	return tok
}

// take removes and returns the answer waiting under tok.
func (h *handoffs) take(tok string) (handoff, bool) {
	v, ok := h.pending.LoadAndDelete(tok)
	if !ok {
		return handoff{}, false
	}
	return v.(handoff), true
}

// drop discards the answer under tok if no request took it (colly
// refused the request before sending it), closing its body.
func (h *handoffs) drop(tok string) {
	if ho, ok := h.take(tok); ok && ho.resp != nil {
		_ = ho.resp.Body.Close()
	}
}

// handoffTransport answers a request that carries a token with the
// answer waiting under it, and sends every other request, without the
// header, to next.
type handoffTransport struct {
	next http.RoundTripper
	h    *handoffs
}

var _ http.RoundTripper = handoffTransport{}

// RoundTrip answers req with its waiting answer or through next.
func (t handoffTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok := req.Header.Get(handoffHeader)
	if tok == "" {
		return t.next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.Header.Del(handoffHeader)
	if ho, ok := t.h.take(tok); ok {
		if ho.url == out.URL.String() {
			if ho.resp != nil {
				ho.resp.Request = req
			}
			return ho.resp, ho.err
		}
		if ho.resp != nil { // not the request it waited for: never served
			_ = ho.resp.Body.Close()
		}
	}
	return t.next.RoundTrip(out)
}
