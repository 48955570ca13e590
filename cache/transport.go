// Package cache is crawlcache's HTTP response cache: an http.RoundTripper
// (Transport) that keeps responses in MongoDB, replays them byte for byte,
// revalidates expired ones with conditional requests and turns a 304 into
// the cached 200. Every per-request store operation is an _id lookup or
// write. It must not follow redirects, retry, rate-limit or interpret
// statuses beyond caching rules: politeness lives in the upstream
// RoundTripper, below the cache, so hits never wait for it. Admin (in
// admin.go, ttl.go and sweep.go) inspects, expires and purges what the
// Transport stored.
package cache

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"crawlcache/store"
)

// HeaderServed is set on every response from a Transport to how it was
// served: "hit" (from the store), "miss" (from the network), "revalidated"
// (the origin answered 304; the stored body was served) or "stale" (an
// expired entry served under stale_if_error, stale_while_revalidate or
// only_if_cached).
const HeaderServed = "X-Crawlcache"

// HeaderBodySHA256 is set on a response served from a stored entry (hit,
// revalidated or stale) and on a miss the Transport has just stored, to
// the hex SHA-256 of the body the response carries (Entry.BodySHA256,
// computed once when the body was stored): a client that hashes bodies,
// such as the crawler's change tracking and parse reuse, takes it instead
// of hashing the body again. It is absent on responses from entries stored
// before the hash was kept, on responses that were not stored, on HEAD
// responses and on the 206 and 304 answers to a client's own range or
// conditional request. It is never taken from the network: the Transport
// removes it from every upstream response, so an origin (or an upstream
// crawlcache) cannot make a client trust a hash of its choosing.
const HeaderBodySHA256 = "X-Crawlcache-Body-Sha256"

// StoredBodySHA256 returns h's HeaderBodySHA256 when it is a hex SHA-256
// (64 lowercase hex digits), "" otherwise.
func StoredBodySHA256(h http.Header) string {
	return validSHA256(h.Get(HeaderBodySHA256))
}

// Values of HeaderServed.
const (
	ServedHit         = "hit"
	ServedMiss        = "miss"
	ServedRevalidated = "revalidated"
	ServedStale       = "stale"
)

// DefaultMaxBodySize is the largest body stored when Options.MaxBodySize is
// zero: MongoDB documents are limited to 16 MiB.
const DefaultMaxBodySize = 15 << 20

// storeBackoff is how long the store is left alone after it was found
// unreachable. Wall-clock time, not Options.Now: it is about the server,
// not about cache semantics.
const storeBackoff = 5 * time.Second

// maxBackground bounds concurrent stale_while_revalidate refreshes.
const maxBackground = 4

// Options configures a Transport. The zero value is usable: crawler policy,
// http.DefaultTransport, default collections.
type Options struct {
	// Upstream performs network requests. If nil, http.DefaultTransport.
	// The crawler passes its per-host rate limiter here, so politeness
	// applies only on the network path.
	Upstream http.RoundTripper
	// Policy is the caching policy.
	Policy Policy
	// Now returns the current time. If nil, time.Now.
	Now func() time.Time
	// RunStart is when the run this Transport serves started (Now's
	// clock): under a crawler-policy duration or expire_after: adaptive a
	// page due within Tolerance of it counts as due (precedence.go).
	// Zero (a proxy, no run): no tolerance.
	RunStart time.Time
	// Logger receives store errors (the first at WARN, later ones at
	// DEBUG) and corrupt entries. If nil, slog.Default().
	Logger *slog.Logger
	// Database is the store database of the cache's collections. If
	// empty, DefaultDatabase.
	Database string
	// MaxBodySize is the largest body stored. Larger bodies stream to the
	// caller uncached and are counted in Stats.TooLarge. If 0,
	// DefaultMaxBodySize.
	MaxBodySize int64
	// CompressBodies stores bodies of 1 KiB or more gzip-compressed, as
	// binary with body_encoding "gzip", instead of readable strings. Off
	// by default: bodies stay searchable in Compass and mongosh. On the
	// embedded server, whose cost grows with document size, it makes a
	// hit of a 50 KB HTML page about 4x cheaper (measured 10.3 ms → 2.4 ms
	// per find). Entries stored either way are read either way.
	CompressBodies bool
	// Shared selects the cache's role (RFC 9111 §1). false, the zero
	// value, is a private cache: one user's own requests, as the
	// crawler's. true is a shared cache serving many clients, as the
	// proxy's: s-maxage (§5.2.2.10) and proxy-revalidate (§5.2.2.8)
	// apply in cache_control mode; a private response (§5.2.2.7) is never
	// stored (under the crawler policy: only bound to the credential that
	// fetched it), and the fields a qualified private="..." names are
	// stored without; a response with Set-Cookie is never stored; in
	// cache_control mode a response to a request with Authorization is
	// stored only as §3.5 allows; and Vary is honoured under every policy.
	// Credential isolation (credential.go) applies in both roles.
	Shared bool
	// CDNCacheControl makes a shared cache obey a response's
	// CDN-Cache-Control field (RFC 9213) instead of its Cache-Control and
	// Expires when that field is present and valid, as a CDN does: for a
	// reverse proxy in front of its own origin. Ignored by a private cache.
	CDNCacheControl bool
	// Job names the job whose requests this Transport makes: with
	// Policy.Credentials == CredentialsJob, entries of requests carrying
	// credentials are bound to it instead of to the credential values. New
	// returns an error when that policy has no Job.
	Job string
	// Responses, Redirects, Revalidations, Variants and Pages name the
	// collections. If empty, ResponsesCollection, RedirectsCollection,
	// RevalidationsCollection, VariantsCollection and PagesCollection.
	Responses, Redirects, Revalidations, Variants, Pages string
	// Stream makes network bodies reach the caller as they arrive while a
	// copy is kept to be stored (stream.go), for a proxy; the crawler
	// leaves it off and gets whole bodies. Buffer is the budget those
	// copies share (several Transports may share one); if nil, a budget
	// of DefaultMaxBuffer. Past the budget, bodies stream uncached.
	Stream bool
	Buffer *Budget
}

// Stats are a Transport's counters since New.
type Stats struct {
	Hits        int64 // served from the store, fresh
	Misses      int64 // served from the network (body downloaded), incl. 504s of only_if_cached
	Revalidated int64 // origin answered 304, stored body served
	Stale       int64 // expired entry served without a successful revalidation
	// NetworkBytes are body bytes read from upstream; SavedBytes are body
	// bytes served from the store instead.
	NetworkBytes int64
	SavedBytes   int64
	StoreErrors  int64 // failed store reads/writes (the request still succeeded)
	TooLarge     int64 // bodies over MaxBodySize, passed through uncached
	NotStored    int64 // network responses not stored (policy, status, method, failed read)
}

// Transport is an http.RoundTripper that caches responses in MongoDB. It is
// safe for concurrent use and meant to be shared; create it with New.
type Transport struct {
	upstream    http.RoundTripper
	policy      Policy
	now         func() time.Time
	runStart    time.Time
	log         *slog.Logger
	maxBody     int64
	compress    bool
	coll        collections
	allowCodes  []int
	allowMethod []string
	shared, cdn bool
	cred        credentials

	flights flightGroup

	mu      sync.Mutex // guards closed and bg.Add
	closed  bool
	bg      sync.WaitGroup
	bgSlots chan struct{}

	storeErrLogged atomic.Bool
	storeDownUntil atomic.Int64 // unix nanoseconds; see storeOK
	hits, misses, revalidated, stale, networkBytes, savedBytes,
	storeErrors, tooLarge, notStored atomic.Int64

	budget  *Budget // non-nil when streaming (Options.Stream)
	streams pendingStreams
}

var _ http.RoundTripper = (*Transport)(nil)

// New returns a Transport storing in st (database opts.Database) and
// creates its collections and indexes (idempotent): the url indexes
// inspection commands use only where the server uses them (MongoDB; the
// embedded server scans for any filter but _id, so there an index would
// only cost a parse of the stored JSON on every insert). With a server
// that has TTL indexes a 304 also sets validated_at and expires on the
// entry, for the TTL index. It returns an error when the
// collections cannot be created, which usually means the store is
// unreachable.
func New(ctx context.Context, st *store.Store, opts Options) (*Transport, error) {
	t := &Transport{
		upstream:    opts.Upstream,
		policy:      opts.Policy,
		now:         opts.Now,
		runStart:    opts.RunStart,
		log:         opts.Logger,
		maxBody:     opts.MaxBodySize,
		compress:    opts.CompressBodies,
		allowCodes:  opts.Policy.AllowableCodes,
		allowMethod: opts.Policy.AllowableMethods,
		shared:      opts.Shared,
		cdn:         opts.CDNCacheControl && opts.Shared,
		bgSlots:     make(chan struct{}, maxBackground),
	}
	if t.upstream == nil {
		t.upstream = http.DefaultTransport
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	if t.maxBody <= 0 {
		t.maxBody = DefaultMaxBodySize
	}
	if t.allowCodes == nil {
		t.allowCodes = DefaultAllowableCodes
	}
	if t.allowMethod == nil {
		t.allowMethod = []string{http.MethodGet, http.MethodHead}
	}
	db := cmp.Or(opts.Database, DefaultDatabase)
	names := collectionNames{
		responses:     cmp.Or(opts.Responses, ResponsesCollection),
		redirects:     cmp.Or(opts.Redirects, RedirectsCollection),
		revalidations: cmp.Or(opts.Revalidations, RevalidationsCollection),
		variants:      cmp.Or(opts.Variants, VariantsCollection),
		pages:         cmp.Or(opts.Pages, PagesCollection),
	}
	t.coll = collections{
		responses:     st.Collection(db, names.responses),
		redirects:     st.Collection(db, names.redirects),
		revalidations: st.Collection(db, names.revalidations),
		variants:      st.Collection(db, names.variants),
		pages:         st.Collection(db, names.pages),
	}
	if opts.Stream {
		t.budget = cmp.Or(opts.Buffer, NewBudget(0))
	}
	if err := ensureIndexes(ctx, st, db, names); err != nil {
		return nil, err
	}
	cred, err := loadCredentials(ctx, st.Collection(db, SettingsCollection), opts)
	if err != nil {
		return nil, err
	}
	t.cred = cred
	return t, nil
}

// Stats returns a snapshot of the counters. Safe for concurrent use.
func (t *Transport) Stats() Stats {
	return Stats{
		Hits:         t.hits.Load(),
		Misses:       t.misses.Load(),
		Revalidated:  t.revalidated.Load(),
		Stale:        t.stale.Load(),
		NetworkBytes: t.networkBytes.Load(),
		SavedBytes:   t.savedBytes.Load(),
		StoreErrors:  t.storeErrors.Load(),
		TooLarge:     t.tooLarge.Load(),
		NotStored:    t.notStored.Load(),
	}
}

// Close waits for background revalidations to finish and stops new ones
// (later stale entries are revalidated in the foreground). It does not
// close the database or the upstream. It always returns nil.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.bg.Wait()
	return nil
}

// Served returns how resp was served (the HeaderServed value), "" for a
// response that did not come through a Transport.
func Served(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	return resp.Header.Get(HeaderServed)
}

// call is one RoundTrip: the caller's request, its body (read once), key
// and modes.
type call struct {
	req     *http.Request // the caller's request; never mutated
	body    []byte
	key     string // the key looked up and stored: primary, or the variant's
	primary string // the key without Vary headers: Key(req, body, p, nil)
	norm    string // normalized URL
	reqCC   cacheControl
	flags   requestFlags
	cred    binding // what the request's entries are bound to (credential.go)
	absent  bool    // the lookup answered and found no entry
	// variants is the primary key's Variants (RFC mode), nil if none;
	// primaryEntry says an entry is stored under the primary key itself.
	// Both are known only when looked is set (the lookup answered).
	variants     *Variants
	primaryEntry bool
	looked       bool
	hadBody      bool // req.Body was read (and closed) into body
	joined       bool // waited once for a body streamed into the store (stream.go)
	// cond: the request has If-None-Match, If-Modified-Since, Range or
	// If-Range, which the cache answers (conditional.go) and does not
	// send upstream.
	cond bool
	// keepOnError: a 5xx must not replace the stored entry, which
	// stale-if-error serves instead.
	keepOnError bool
}

// outgoing is the request sent upstream: req itself when it has no body,
// no extra headers and no other context (ctx nil), else a shallow copy with
// its own header map and body reader.
func (c *call) outgoing(ctx context.Context, extra http.Header) *http.Request {
	hdr, stripped := withoutHopCredential(c.req.Header)
	if !c.hadBody && extra == nil && ctx == nil && !stripped && !c.cond {
		return c.req
	}
	if ctx == nil {
		ctx = c.req.Context()
	}
	out := c.req.WithContext(ctx)
	out.Header = hdr
	if c.cond {
		out.Header = withoutClientConditionals(hdr)
	}
	if extra != nil {
		out.Header = out.Header.Clone()
		for k, v := range extra {
			out.Header[k] = v
		}
	}
	if c.hadBody {
		body := c.body
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
	}
	return out
}

// bypassHeaders make a request uncacheable: preconditions meant for the
// origin (RFC 9111 §4.3.2). If-None-Match, If-Modified-Since, Range and
// If-Range are answered by the cache (conditional.go).
var bypassHeaders = []string{"If-Match", "If-Unmodified-Since"}

// bypasses reports whether h has one of bypassHeaders.
func bypasses(h http.Header) bool {
	for _, name := range bypassHeaders {
		if h.Get(name) != "" {
			return true
		}
	}
	return false
}

// RoundTrip serves req from the store when the policy allows, else from
// upstream, storing what the policy allows. It never mutates req, returns
// an error only when no response was obtained, and degrades to the network
// when the store fails.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("cache: nil request URL")
	}
	method := methodOf(req)
	if !slices.Contains(t.allowMethod, method) || bypasses(req.Header) {
		if t.policy.CacheControl && !isSafeMethod(method) {
			return t.passThroughInvalidate(req)
		}
		return t.passThrough(req)
	}
	c := &call{req: req, flags: flagsOf(req.Context()), cond: hasClientConditional(req.Header)}
	if req.Body != nil && req.Body != http.NoBody {
		body, pass, err := t.readRequestBody(req)
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		if pass != nil {
			return t.passThrough(pass)
		}
		c.body, c.hadBody = body, true
	}
	norm, err := NormalizeURL(req.URL.String(), t.policy.ignoredParameters())
	if err != nil {
		return t.passThrough(c.outgoing(nil, nil))
	}
	c.norm = norm
	if t.policy.CacheControl {
		c.reqCC = parseCacheControl(req.Header.Values("Cache-Control"))
		if len(c.reqCC) == 0 && req.Header.Get("Pragma") == "no-cache" {
			c.reqCC["no-cache"] = ""
		}
	} else if t.policy.crawlerExpiry(norm).Kind == ExpireDoNotCache {
		return t.passThrough(c.outgoing(nil, nil))
	}
	c.cred = t.cred.bindingOf(req)
	c.key = t.keyOf(c, nil)
	c.primary = c.key
	return t.serve(c)
}

// serve is the cache lookup and decision for a cacheable request.
func (t *Transport) serve(c *call) (*http.Response, error) {
	offline := t.policy.OnlyIfCached || c.flags.onlyIfCached
	var st *storedEntry
	hadRev := true // unknown: delete any revalidation when storing
	if !c.flags.forceRefresh && t.storeOK() {
		st, hadRev = t.lookup(c)
	}
	if st != nil {
		now := t.now()
		fr := t.freshness(c, st, now)
		switch {
		case fr.fresh:
			return t.fromStore(c, st, ServedHit), nil
		case fr.staleOK || offline:
			return t.fromStore(c, st, ServedStale), nil
		case c.reqCC.has("only-if-cached"):
			return t.gatewayTimeout(c), nil
		case !fr.mustRevalidate && !c.flags.refresh && fr.swr > 0 &&
			now.Before(fr.expiresAt.Add(fr.swr)) && t.startBackground(c, st, hadRev):
			return t.fromStore(c, st, ServedStale), nil
		}
		return t.fromNetwork(c, st, hadRev, fr)
	}
	if !c.flags.forceRefresh && !t.policy.CacheControl && t.storeOK() {
		if resp, ok := t.fromRedirect(c, offline); ok {
			return resp, nil
		}
	}
	if offline || c.reqCC.has("only-if-cached") {
		return t.gatewayTimeout(c), nil
	}
	if c.cond {
		// Nothing stored to answer from: the origin answers the
		// client's own conditional or range request, uncached.
		c.cond = false
		return t.passThrough(c.outgoing(nil, nil))
	}
	return t.fromNetwork(c, nil, hadRev, freshness{})
}

// lookup finds c's stored entry, following the primary key's Variants to
// the request's variant (RFC mode), and says whether it may have a
// revalidation. It sets c.key to the variant's key, and c.absent when
// nothing is stored there. Store errors and corrupt entries are logged
// and counted, and make a miss.
func (t *Transport) lookup(c *call) (*storedEntry, bool) {
	lk, err := t.coll.load(c.req.Context(), c.key, t.varies())
	if err != nil {
		t.storeError(err)
		return nil, true
	}
	c.primaryEntry, c.looked = lk.entry != nil || lk.corrupt != nil, true
	if lk.variants != nil {
		var stale bool
		if lk, stale, err = t.resolveVariant(c, lk.variants); err != nil {
			c.looked = false
			t.storeError(err)
			return nil, true
		}
		if stale {
			return nil, true
		}
	}
	switch {
	case lk.corrupt != nil:
		t.log.Warn("corrupt cached response, refetching", "url", c.norm, "err", lk.corrupt)
		return nil, true
	case lk.entry == nil:
		c.absent = true
		return nil, false
	}
	st, err := decodeStored(lk)
	if err != nil {
		t.log.Warn("corrupt cached response, refetching", "url", c.norm, "err", err)
		return nil, lk.rev != nil
	}
	if t.varies() && !varyMatches(c.req, st.entry.Vary) {
		return nil, lk.rev != nil
	}
	if !bindingServes(c, st.entry) || !t.servesRole(c, st) {
		return nil, lk.rev != nil
	}
	return st, lk.rev != nil
}

// storedEntry is an entry read back from the store, with the revalidation
// that applies to it, decoded once.
type storedEntry struct {
	entry       *Entry        // as stored
	rev         *Revalidation // the effective revalidation, nil if none or older
	e           *decodedEntry // entry (with rev) decoded
	validatedAt time.Time
	interval    time.Duration // learned with the effective validation (adaptive.go); 0: none
	// page is set, and entry nil, for an entry known from its Page
	// alone (head.go): e holds its status, validators and body hash, and
	// no body.
	page *Page
}

// decodeStored decodes the entry lk found, merging its revalidation when
// it is newer (see decodeEntry).
func decodeStored(lk loaded) (*storedEntry, error) {
	e, validatedAt, _, err := decodeEntry(lk.entry, lk.rev)
	if err != nil {
		return nil, err
	}
	st := &storedEntry{entry: lk.entry, e: e, validatedAt: validatedAt, interval: storedInterval(lk.entry.IntervalSeconds)}
	if revApplies(lk.entry, lk.rev) {
		st.rev, st.interval = lk.rev, storedInterval(lk.rev.IntervalSeconds)
	}
	return st, nil
}

// fromStore serves a stored entry.
func (t *Transport) fromStore(c *call, st *storedEntry, served string) *http.Response {
	switch served {
	case ServedHit:
		t.hits.Add(1)
	case ServedStale:
		t.stale.Add(1)
	}
	t.savedBytes.Add(int64(len(st.e.body)))
	resp := st.e.response(c.req, served)
	setAge(resp.Header, st.validatedAt, t.now())
	if t.policy.CacheControl {
		withoutNoCacheFields(resp.Header) // not revalidated: §5.2.2.4
	}
	return t.conditional(c, st.e, resp)
}

// gatewayTimeout is the answer to only-if-cached with nothing usable
// stored (RFC 9111 §5.2.1.7).
func (t *Transport) gatewayTimeout(c *call) *http.Response {
	t.misses.Add(1)
	e := &decodedEntry{status: http.StatusGatewayTimeout, proto: "HTTP/1.1", header: http.Header{"Content-Length": {"0"}}}
	return e.response(c.req, ServedMiss)
}

// storeOK reports whether the store may be used: after a failure that
// says the server is unreachable the transport leaves it alone for
// storeBackoff, so a dead or hung server costs one timeout per backoff
// period instead of one per request.
func (t *Transport) storeOK() bool {
	return time.Now().UnixNano() >= t.storeDownUntil.Load()
}

// storeError counts a store failure and logs the first one; the request
// goes on over the network.
func (t *Transport) storeError(err error) {
	if errors.Is(err, context.Canceled) {
		return // the request was cancelled (an interrupt), not a store failure
	}
	t.storeErrors.Add(1)
	if store.IsUnavailable(err) || errors.Is(err, store.ErrClosed) {
		t.storeDownUntil.Store(time.Now().Add(storeBackoff).UnixNano())
	}
	if t.storeErrLogged.CompareAndSwap(false, true) {
		t.log.Warn("cache store failed; serving from the network (further store errors are logged at debug level and counted)", "err", err)
		return
	}
	t.log.Debug("cache store failed", "err", err)
}

func isSafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
