package cache

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// DefaultMaxBuffer is the in-flight buffering budget of a streaming
// Transport whose Options.Buffer is nil.
const DefaultMaxBuffer = 256 << 20

// maxKeyedRequestBody is the largest request body a streaming Transport
// reads to key a cacheable request (a GET or HEAD with a body); a larger one
// is streamed upstream uncached.
const maxKeyedRequestBody = 1 << 20

// Store writes of streamed bodies run one at a time, and most of the
// budget is kept for them instead of for copies (copies get 1/copyShare):
// measured for a 10 MB body on the embedded store, one write allocates
// about 70 MB on the Go heap (document string, BSON, the store's JSON and
// its decoding) and the store's SQLite about as much again, so several at
// once would be a multiple of the budget.
const (
	streamStores = 1
	copyShare    = 3
)

// Budget is a byte budget shared by streaming Transports: the bodies they
// hold in memory while storing them never add up to more than its size.
// Safe for concurrent use; create it with NewBudget.
type Budget struct {
	max     int64
	used    atomic.Int64
	peak    atomic.Int64
	refused atomic.Int64
	stores  chan struct{}
}

// NewBudget returns a budget of max bytes (DefaultMaxBuffer when max <= 0).
// Copies of bodies get a third of it; the rest is the working memory of
// the store write in progress.
func NewBudget(max int64) *Budget {
	if max <= 0 {
		max = DefaultMaxBuffer
	}
	return &Budget{max: max, stores: make(chan struct{}, streamStores)}
}

// Max is the budget's size in bytes.
func (b *Budget) Max() int64 { return b.max }

// copies is the share of the budget that bodies being kept may hold.
func (b *Budget) copies() int64 { return b.max / copyShare }

// InUse is the number of bytes held now.
func (b *Budget) InUse() int64 { return b.used.Load() }

// Peak is the most bytes ever held at once.
func (b *Budget) Peak() int64 { return b.peak.Load() }

// Refused counts responses that streamed through uncached because the
// budget was spent.
func (b *Budget) Refused() int64 { return b.refused.Load() }

func (b *Budget) acquire(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.copies() {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			for p := b.peak.Load(); u+n > p && !b.peak.CompareAndSwap(p, u+n); p = b.peak.Load() {
			}
			return true
		}
	}
}

func (b *Budget) release(n int64) { b.used.Add(-n) }

// readRequestBody reads a cacheable request's body for its key. A
// streaming Transport reads at most maxKeyedRequestBody bytes: for a larger
// body it returns pass, the request to send upstream uncached with the
// whole body streaming (what was read, then the rest).
func (t *Transport) readRequestBody(req *http.Request) (body []byte, pass *http.Request, err error) {
	if t.budget == nil {
		body, err = io.ReadAll(req.Body)
		closeBody(req)
		return body, nil, err
	}
	body, err = io.ReadAll(io.LimitReader(req.Body, maxKeyedRequestBody+1))
	if err != nil {
		closeBody(req)
		return nil, nil, err
	}
	if len(body) <= maxKeyedRequestBody {
		closeBody(req)
		return body, nil, nil
	}
	pass = req.Clone(req.Context())
	pass.Body = readCloser{io.MultiReader(bytes.NewReader(body), req.Body), req.Body}
	pass.GetBody = nil
	return nil, pass, nil
}

// streamFetch is fetch's path for a streaming Transport: resp's body
// reaches the caller as it arrives, and is kept in memory (within the
// budget and MaxBodySize) to be stored once it is whole. It returns nil for
// a response without a body, which fetch stores the ordinary way.
func (t *Transport) streamFetch(c *call, st *storedEntry, hadRev bool, resp *http.Response) *fetchedEntry {
	if t.budget == nil || resp.ContentLength == 0 || methodOf(c.req) == http.MethodHead {
		return nil
	}
	if c.keepOnError && resp.StatusCode >= 500 {
		return nil // whole, so that stale_if_error can answer instead
	}
	resp.Header.Del(HeaderServed) // an upstream crawlcache's verdict is not ours
	b := &teeBody{
		t: t, c: c, st: st, hadRev: hadRev, body: resp.Body, want: resp.ContentLength,
		e: &decodedEntry{status: resp.StatusCode, proto: resp.Proto, header: resp.Header.Clone(), uncompressed: resp.Uncompressed, reason: ReasonPhrase(resp.StatusCode, resp.Status)},
	}
	switch {
	case b.want > t.maxBody:
		t.tooLarge.Add(1)
		t.notStored.Add(1)
		b.done = true
	case b.want > 0 && !t.budget.acquire(b.want):
		t.budget.refused.Add(1)
		t.notStored.Add(1)
		b.done = true
	case b.want > 0:
		b.held, b.storing = b.want, true
		b.buf = make([]byte, 0, b.want)
	default:
		b.storing = true // length unknown: the buffer grows within the budget
	}
	if b.storing {
		b.unpend = t.streams.start(c.key)
	}
	resp.Body = b
	resp.Header.Set(HeaderServed, ServedMiss)
	return &fetchedEntry{stream: resp, served: ServedMiss}
}

// teeBody passes a response body to the caller and keeps a copy while
// storing is possible; the copy is stored when the body has been read
// whole, and dropped (never stored truncated) otherwise.
type teeBody struct {
	t      *Transport
	c      *call
	st     *storedEntry
	hadRev bool
	e      *decodedEntry
	body   io.ReadCloser
	want   int64 // Content-Length, or -1
	read   int64
	buf    []byte
	held   int64 // budget bytes held for buf
	// storing says the copy is being kept; done that it was stored or
	// dropped.
	storing, done bool
	unpend        func() // wakes the requests waiting for this store
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.read += int64(n)
	b.t.networkBytes.Add(int64(n))
	if b.storing && n > 0 && !b.keep(p[:n]) {
		b.drop()
	}
	switch {
	case !b.storing:
	case err == io.EOF, err == nil && b.want >= 0 && b.read == b.want:
		// Stored before the caller sees the last bytes, so a client
		// that has the whole body finds it in the store.
		b.finish()
	case err != nil:
		b.drop()
	}
	return n, err
}

// keep appends p to the copy, growing it within MaxBodySize and the
// budget; false means it cannot.
func (b *teeBody) keep(p []byte) bool {
	need := int64(len(b.buf) + len(p))
	if need > b.t.maxBody {
		b.t.tooLarge.Add(1)
		return false
	}
	if need > int64(cap(b.buf)) {
		newCap := min(max(2*int64(cap(b.buf)), need, 64<<10), b.t.maxBody)
		if !b.t.budget.acquire(newCap) {
			b.t.budget.refused.Add(1)
			return false
		}
		nb := make([]byte, len(b.buf), newCap)
		copy(nb, b.buf)
		b.t.budget.release(b.held)
		b.buf, b.held = nb, newCap
	}
	b.buf = append(b.buf, p...)
	return true
}

// finish stores the whole body and gives its memory back.
func (b *teeBody) finish() {
	b.storing, b.done = false, true
	b.e.body = b.buf
	b.t.budget.stores <- struct{}{}
	b.t.store(b.c, b.st, b.e, b.hadRev)
	<-b.t.budget.stores
	b.release()
}

// drop gives up storing: the rest of the body streams through.
func (b *teeBody) drop() {
	if b.done {
		return
	}
	b.storing, b.done = false, true
	b.t.notStored.Add(1)
	b.release()
}

func (b *teeBody) release() {
	b.buf, b.e.body = nil, nil
	b.t.budget.release(b.held)
	b.held = 0
	if b.unpend != nil {
		b.unpend()
		b.unpend = nil
	}
}

// Close drops a copy that was not read whole and closes the upstream body.
func (b *teeBody) Close() error {
	b.drop()
	return b.body.Close()
}

// discardStream ends a streamed response nobody reads (a background
// revalidation): a body being stored is read to its end so that it is.
func discardStream(resp *http.Response) {
	if b, ok := resp.Body.(*teeBody); ok && b.storing {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	_ = resp.Body.Close()
}

// pendingStreams are the keys whose bodies are being kept to be stored. A
// request for one of them waits for that store and is then served from it,
// instead of downloading the body again: coalescing, for bodies that
// stream. The zero value is usable.
type pendingStreams struct {
	mu sync.Mutex
	m  map[string]chan struct{}
	// joined, if set, is called when a request starts waiting (tests).
	joined func(key string)
}

// start marks key pending and returns the func that ends it. A key that is
// already pending stays with its first stream (the returned func does
// nothing).
func (p *pendingStreams) start(key string) func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[string]chan struct{})
	}
	if _, ok := p.m[key]; ok {
		return func() {}
	}
	ch := make(chan struct{})
	p.m[key] = ch
	return func() {
		p.mu.Lock()
		delete(p.m, key)
		p.mu.Unlock()
		close(ch)
	}
}

func (p *pendingStreams) wait(key string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[key]
}

// joinStream waits, when c's key is being streamed into the store, until
// that stream ends, and then serves c again from the top (a hit when the
// body was stored, else a fetch of its own). joined is false when there
// was nothing to wait for. The error is c's context's when it ended first.
//
// A request waits once: when the body was not stored (the response was not
// storable after all), it fetches for itself rather than queueing behind
// the next identical request.
func (t *Transport) joinStream(c *call) (resp *http.Response, err error, joined bool) {
	if t.budget == nil || c.joined {
		return nil, nil, false
	}
	ch := t.streams.wait(c.key)
	if ch == nil {
		return nil, nil, false
	}
	if t.streams.joined != nil {
		t.streams.joined(c.key)
	}
	select {
	case <-ch:
	case <-c.req.Context().Done():
		return nil, c.req.Context().Err(), true
	}
	c.key, c.joined = c.primary, true
	resp, err = t.serve(c)
	return resp, err, true
}
