package cache

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// judge judges url's head the way the crawler does, its revalidation
// read with its Page.
func (e *transportEnv) judge(ctx context.Context, url string, header ...string) (Head, bool) {
	e.t.Helper()
	return e.judgeHead(ctx, true, url, header...)
}

// validatorOrigin serves a page with a strong ETag and a Last-Modified
// per version, answers a matching If-None-Match with a 304 that carries
// round-dependent fields, and keeps the conditional fields it was sent.
type validatorOrigin struct {
	*origin
	version, round atomic.Int64
	// wrongTag makes its 304s carry another strong ETag than the one
	// matched (RFC 9111 §4.3.4: such a 304 selects no stored response).
	wrongTag atomic.Bool
	mu       sync.Mutex
	conds    []string // "If-None-Match|If-Modified-Since" of each request
}

func newValidatorOrigin(t *testing.T) *validatorOrigin {
	o := &validatorOrigin{}
	o.version.Store(1)
	o.origin = newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		v := o.version.Load()
		o.mu.Lock()
		o.conds = append(o.conds, r.Header.Get("If-None-Match")+"|"+r.Header.Get("If-Modified-Since"))
		o.mu.Unlock()
		tag := fmt.Sprintf(`"v%d"`, v)
		w.Header().Set("ETag", tag)
		w.Header().Set("Last-Modified", time.Date(2026, 1, int(v), 0, 0, 0, 0, time.UTC).Format(http.TimeFormat))
		if r.Header.Get("If-None-Match") == tag {
			if o.wrongTag.Load() {
				w.Header().Set("ETag", `"another"`)
			}
			w.Header().Set("X-Round", fmt.Sprint(o.round.Load()))
			if o.round.Load() == 1 {
				w.Header().Set("X-First", "only in the first 304") // kept by the later ones
			}
			w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", 60*o.round.Load()))
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<p>version %d</p>", v)
	})
	return o
}

// lastConds returns the conditional fields of the last n requests.
func (o *validatorOrigin) lastConds(n int) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.conds[len(o.conds)-n:]...)
}

// docOf decodes the document stored under key in collection into a new
// T; nil when there is none.
func docOf[T any](e *transportEnv, collection, key string) *T {
	e.t.Helper()
	raw := e.rawDoc(collection, key)
	if raw == nil {
		return nil
	}
	v := new(T)
	if err := bson.Unmarshal(raw, v); err != nil {
		e.t.Fatalf("decode %s %s: %v", collection, key, err)
	}
	return v
}

// directReads is the lookups by _id the embedded store has served, and
// false on a store without direct reads.
func directReads(s *store.Store) (int64, bool) {
	st, ok := s.DirectStats()
	return st.Reads, ok
}

// A 304 to a conditional request made from a Page alone is recorded
// exactly as RoundTrip records one (RFC 9111 §4.3.4: the stored response
// is freshened with the 304's fields): the same conditional fields are
// sent, the same Revalidation and Page are written, round after round
// (each keeps the fields of the 304s before it), and the entry serves the
// same response afterwards. The stored body is never read.
func TestRevalidateHeadRecordsA304AsRoundTripDoes(t *testing.T) {
	o := newValidatorOrigin(t)
	pol := Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Hour}}
	rt := newTransportEnv(t, Options{Policy: pol}) // revalidates through RoundTrip
	hd := newTransportEnv(t, Options{Policy: pol}) // revalidates from the Page
	url := o.URL + "/page"
	key := keyOf(t, url, pol)
	body := rt.expectServed(url, ServedMiss)
	hd.expectServed(url, ServedMiss)
	if p := docOf[Page](hd, PagesCollection, key); p == nil || p.ETag != `"v1"` || p.LastModified.IsZero() || p.Size != int64(len(body)) {
		t.Fatalf("page after the miss = %+v; want the ETag, Last-Modified and size of the response", p)
	}
	for round := int64(1); round <= 3; round++ {
		o.round.Store(round)
		rt.clock.Advance(2 * time.Hour)
		hd.clock.Advance(2 * time.Hour)
		rt.expectServed(url, ServedRevalidated)
		h, ok := hd.judge(nil, url)
		if !ok || !h.Due || h.BodySHA256 != hexSHA256(body) {
			t.Fatalf("round %d: head = %+v, %v; want a due head naming the stored body", round, h, ok)
		}
		reads, direct := directReads(hd.store)
		ans := hd.tr.RevalidateHead(h)
		if !ans.NotModified || ans.Response != nil || ans.Err != nil {
			t.Fatalf("round %d: RevalidateHead = %+v, want not modified", round, ans)
		}
		if after, _ := directReads(hd.store); direct && after != reads {
			t.Errorf("round %d: RevalidateHead read %d documents; it must not read the entry", round, after-reads)
		}
		if c := o.lastConds(2); c[0] != c[1] || c[0] == "|" {
			t.Errorf("round %d: conditional fields sent by RoundTrip %q, from the Page %q", round, c[0], c[1])
		}
		if a, b := docOf[Revalidation](rt, RevalidationsCollection, key), docOf[Revalidation](hd, RevalidationsCollection, key); a == nil || !reflect.DeepEqual(a, b) {
			t.Errorf("round %d: revalidations differ:\nRoundTrip: %+v\nfrom Page: %+v", round, a, b)
		}
		if a, b := docOf[Page](rt, PagesCollection, key), docOf[Page](hd, PagesCollection, key); a == nil || !reflect.DeepEqual(a, b) {
			t.Errorf("round %d: pages differ:\nRoundTrip: %+v\nfrom Page: %+v", round, a, b)
		}
	}
	ra, ba := rt.get(nil, url)
	rb, bb := hd.get(nil, url)
	if Served(ra) != ServedHit || Served(rb) != ServedHit || string(ba) != string(bb) ||
		ra.Header.Get("X-Round") != "3" || rb.Header.Get("X-Round") != "3" || ra.Header.Get("Cache-Control") != rb.Header.Get("Cache-Control") ||
		rb.Header.Get("X-First") == "" {
		t.Errorf("hits after the 304s: %q %q %v / %q %q %v", Served(ra), ba, ra.Header, Served(rb), bb, rb.Header)
	}
	if s := hd.tr.Stats(); s.Revalidated != 3 || s.SavedBytes != int64(3*len(body))+int64(len(bb)) {
		t.Errorf("stats = %+v; want 3 revalidations, saving the body each time", s)
	}
}

// Any other answer to a conditional request made from a Page is handled
// as RoundTrip handles it: a new body is stored and returned, with one
// request to the origin; a 304 whose strong ETag is not the stored one's
// selects nothing (RFC 9111 §4.3.4), and the page is asked for again
// without conditions.
func TestRevalidateHeadNewBody(t *testing.T) {
	o := newValidatorOrigin(t)
	pol := Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Hour}}
	e := newTransportEnv(t, Options{Policy: pol})
	url := o.URL + "/page"
	e.expectServed(url, ServedMiss)

	o.version.Store(2)
	e.clock.Advance(2 * time.Hour)
	h, ok := e.judge(nil, url)
	if !ok || !h.Due {
		t.Fatalf("head = %+v, %v; want due", h, ok)
	}
	before := o.requests.Load()
	ans := e.tr.RevalidateHead(h)
	if ans.NotModified || ans.Err != nil || ans.Response == nil {
		t.Fatalf("RevalidateHead = %+v; want the new response", ans)
	}
	body := readAll(t, ans.Response)
	if n := o.requests.Load() - before; n != 1 || Served(ans.Response) != ServedMiss || string(body) != "<p>version 2</p>" ||
		StoredBodySHA256(ans.Response.Header) != hexSHA256(body) {
		t.Fatalf("new body: %d requests, served %q, body %q, hash %q", n, Served(ans.Response), body, StoredBodySHA256(ans.Response.Header))
	}
	if h2, ok := e.head(nil, url); !ok || h2.BodySHA256 != hexSHA256(body) {
		t.Errorf("head after the new body = %+v, %v; want fresh, naming it", h2, ok)
	}
	if got := e.expectServed(url, ServedHit); string(got) != string(body) {
		t.Errorf("hit after the new body served %q", got)
	}

	o.wrongTag.Store(true)
	e.clock.Advance(2 * time.Hour)
	h, ok = e.judge(nil, url)
	if !ok || !h.Due {
		t.Fatalf("head = %+v, %v; want due", h, ok)
	}
	before = o.requests.Load()
	ans = e.tr.RevalidateHead(h)
	if ans.NotModified || ans.Response == nil {
		t.Fatalf("a 304 with another strong ETag was taken as not modified: %+v", ans)
	}
	body = readAll(t, ans.Response)
	if c := o.lastConds(1); o.requests.Load()-before != 2 || c[0] != "|" || string(body) != "<p>version 2</p>" {
		t.Errorf("after a 304 that selects nothing: %d requests, last conditions %q, body %q; want a second, unconditional request", o.requests.Load()-before, c[0], body)
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	var b []byte
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			return b
		}
	}
}

// JudgeHead leaves an expired response to RoundTrip whenever its Page
// cannot make the request RoundTrip would make, or the answer needs the
// stored body (stale_while_revalidate serves it at once).
func TestJudgeHeadLeavesDueResponsesToRoundTrip(t *testing.T) {
	pol := Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Hour}}
	o := newValidatorOrigin(t)
	plain := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/rfc850" {
			w.Header().Set("Last-Modified", "Thursday, 01-Jan-26 00:00:00 GMT")
			if r.Header.Get("If-Modified-Since") != "" {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		fmt.Fprint(w, "<p>no validators</p>")
	})
	due := func(e *transportEnv, url string) (Head, bool) {
		e.t.Helper()
		e.clock.Advance(2 * time.Hour)
		return e.judge(nil, url)
	}

	e := newTransportEnv(t, Options{Policy: pol})
	for _, path := range []string{"/none", "/rfc850"} {
		e.expectServed(plain.URL+path, ServedMiss)
		if h, ok := due(e, plain.URL+path); ok {
			t.Errorf("%s: due head answered %+v: its Page holds no validator it can send", path, h)
		}
		if p := docOf[Page](e, PagesCollection, keyOf(t, plain.URL+path, pol)); p == nil || p.ETag != "" || !p.LastModified.IsZero() || p.BodySHA256 == "" {
			t.Errorf("%s: page = %+v; want a hash and no validators", path, p)
		}
	}
	if _, ok := due(e, plain.URL+"/rfc850"); ok {
		t.Error("head answered")
	}
	e.expectServed(plain.URL+"/rfc850", ServedRevalidated) // RoundTrip sends the text as it came

	url := o.URL + "/page"
	e.expectServed(url, ServedMiss)
	e.clock.Advance(2 * time.Hour)
	if h, ok := e.judgeHead(nil, false, url); ok {
		t.Errorf("due head answered without its revalidation read: %+v", h)
	}
	h, ok := e.judge(nil, url)
	if !ok || !h.Due {
		t.Fatalf("head = %+v, %v; want due", h, ok)
	}
	// A revalidation newer than the Page (a stop between the two writes
	// of a 304): the Page no longer describes the response's fields.
	later := e.clock.Now().Add(-time.Minute)
	if err := e.db.Collection(RevalidationsCollection).Upsert(context.Background(), h.Key, &Revalidation{ID: h.Key, ValidatedAt: later}); err != nil {
		t.Fatal(err)
	}
	if h, ok := e.judge(nil, url); ok {
		t.Errorf("head answered with a revalidation newer than its Page: %+v", h)
	}

	for name, p := range map[string]Policy{
		"stale_while_revalidate":   {ExpireAfter: pol.ExpireAfter, StaleWhileRevalidate: time.Hour},
		"adaptive with job's rule": {ExpireAfter: Expiry{Kind: ExpireAdaptive}, Adaptive: Adaptive{Min: time.Minute, Max: 24 * time.Hour, Initial: time.Hour, Unchanged: func(a, b []byte) bool { return true }}},
	} {
		e := newTransportEnv(t, Options{Policy: p})
		e.expectServed(o.URL+"/other", ServedMiss)
		if h, ok := due(e, o.URL+"/other"); ok {
			t.Errorf("%s: due head answered %+v; RoundTrip serves or compares the stored body", name, h)
		}
	}
}

// Data of the previous release, migrated: the Pages of responses not
// revalidated since their body was stored take the validators of their
// entry and are revalidated from the Page at once; those a 304 confirmed
// since hold none (that 304's fields are not read by the migration), are
// revalidated through RoundTrip once, which writes them, and from their
// Pages after that.
func TestRevalidateHeadOnPreviousReleaseData(t *testing.T) {
	s := storetest.OpenFixtureWith(t, storetest.FixtureAFE97F7, Migrations()...)
	var asked atomic.Int64
	e := newTransportEnvOn(t, s, Options{Now: time.Now, Policy: Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: 0}},
		Upstream: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			asked.Add(1)
			tag := r.Header.Get("If-None-Match")
			if tag == "" {
				t.Errorf("unconditional request for %s", r.URL)
				return nil, context.Canceled
			}
			return &http.Response{StatusCode: http.StatusNotModified, Header: http.Header{"Etag": {tag}}, Body: http.NoBody, Request: r}, nil
		})})
	var direct, first int64
	err := s.Collection(DefaultDatabase, ResponsesCollection).Scan(context.Background(), bson.D{}, store.FindOptions{}, func(raw bson.Raw) error {
		var entry Entry
		if bson.Unmarshal(raw, &entry) != nil || entry.Status != http.StatusOK || CredentialOf(&entry) != nil || entry.ETag == "" {
			return nil
		}
		rev := docOf[Revalidation](e, RevalidationsCollection, entry.ID)
		h, ok := e.judge(nil, entry.URL)
		switch {
		case rev != nil && revApplies(&entry, rev):
			first++
			if ok {
				t.Errorf("%s: the Page of a revalidated response answered %+v", entry.URL, h)
			}
			e.expectServed(entry.URL, ServedRevalidated)
			if h, ok = e.judge(nil, entry.URL); !ok {
				t.Fatalf("%s: no head after a RoundTrip 304", entry.URL)
			}
		case !ok:
			t.Fatalf("%s: no head for a response never revalidated", entry.URL)
		default:
			direct++
		}
		if !h.Due || h.BodySHA256 != entry.BodySHA256 {
			t.Errorf("%s: head %+v; want due (expire_after 0), naming the entry's hash", entry.URL, h)
		}
		if ans := e.tr.RevalidateHead(h); !ans.NotModified {
			t.Errorf("%s: RevalidateHead = %+v", entry.URL, ans)
		}
		return nil
	})
	if err != nil || direct == 0 || first == 0 {
		t.Fatalf("fixture responses with an ETag: %d from their Page at once, %d after a RoundTrip; %v", direct, first, err)
	}
	if asked.Load() != direct+2*first {
		t.Errorf("origin asked %d times; want %d", asked.Load(), direct+2*first)
	}
}

// A fresh page asked to be revalidated (WithRefresh: a --revalidate run)
// is a due head, revalidated from its Page; a forced refetch and an
// offline request are left to RoundTrip.
func TestRevalidateHeadOnRequest(t *testing.T) {
	o := newValidatorOrigin(t)
	e := newTransportEnv(t, Options{Policy: Policy{ExpireAfter: Expiry{Kind: ExpireNever}}})
	url := o.URL + "/page"
	e.expectServed(url, ServedMiss)
	if h, ok := e.judge(nil, url); !ok || h.Due {
		t.Fatalf("head = %+v, %v; want fresh", h, ok)
	}
	h, ok := e.judge(WithRefresh(context.Background()), url)
	if !ok || !h.Due {
		t.Fatalf("head of a request to revalidate = %+v, %v; want due", h, ok)
	}
	if ans := e.tr.RevalidateHead(h); !ans.NotModified || o.notModified.Load() != 1 {
		t.Errorf("RevalidateHead = %+v, %d 304s; want one 304", ans, o.notModified.Load())
	}
	for name, ctx := range map[string]context.Context{
		"refetch": WithForceRefresh(context.Background()),
		"offline": WithOnlyIfCached(context.Background()),
	} {
		if h, ok := e.judge(ctx, url); ok {
			t.Errorf("%s: head answered %+v", name, h)
		}
	}
}

// Under stale_if_error a failed revalidation from a Page (a 5xx, or no
// answer) is answered stale, as RoundTrip answers it with the stored body
// (RFC 5861 §4), and the failure replaces nothing: once the origin is
// back, the page is revalidated from the same Page.
func TestRevalidateHeadStaleIfError(t *testing.T) {
	var mode atomic.Value
	mode.Store("ok")
	o := newValidatorOrigin(t)
	failing := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "503":
			http.Error(w, "down", http.StatusServiceUnavailable)
		case "reset":
			panic(http.ErrAbortHandler) // the connection is closed, no answer
		default:
			o.Config.Handler.ServeHTTP(w, r)
		}
	})
	pol := Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Hour}, StaleIfError: -1}
	e := newTransportEnv(t, Options{Policy: pol})
	url := failing.URL + "/page"
	body := e.expectServed(url, ServedMiss)
	for i, m := range []string{"503", "reset"} {
		mode.Store(m)
		e.clock.Advance(2 * time.Hour)
		h, ok := e.judge(nil, url)
		if !ok || !h.Due {
			t.Fatalf("%s: head = %+v, %v; want due", m, h, ok)
		}
		if ans := e.tr.RevalidateHead(h); !ans.Stale || ans.Response != nil {
			t.Fatalf("%s: RevalidateHead = %+v; want stale", m, ans)
		}
		if s := e.tr.Stats(); s.Stale != int64(2*i+1) { // and one RoundTrip each round
			t.Errorf("%s: %d stale answers counted, want %d", m, s.Stale, 2*i+1)
		}
		if got := e.expectServed(url, ServedStale); string(got) != string(body) {
			t.Errorf("%s: RoundTrip served %q stale, want the stored body", m, got)
		}
	}
	mode.Store("ok")
	h, ok := e.judge(nil, url)
	if !ok || !h.Due || h.BodySHA256 != hexSHA256(body) {
		t.Fatalf("head after the failures = %+v, %v; want due, naming the stored body", h, ok)
	}
	if ans := e.tr.RevalidateHead(h); !ans.NotModified {
		t.Errorf("RevalidateHead once the origin is back = %+v, want not modified", ans)
	}
}
