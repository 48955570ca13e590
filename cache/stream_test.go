package cache

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// streamOrigin serves /n/<size> with Content-Length and /chunked/<size>
// without, bodies of <size> bytes, cacheable for an hour; /nf/<size> is a
// 500 with such a body.
func streamOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(r.URL.Path, "/")
		n, _ := strconv.Atoi(parts[len(parts)-1])
		w.Header().Set("Cache-Control", "max-age=3600")
		body := bytes.Repeat([]byte("abcdefgh"), n/8+1)[:n]
		if parts[1] != "chunked" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		if parts[1] == "nf" { // a status the crawler policy does not store
			w.WriteHeader(http.StatusInternalServerError)
		}
		for len(body) > 0 { // several writes, so chunked bodies are chunked
			k := min(len(body), 4096)
			_, _ = w.Write(body[:k])
			body = body[k:]
		}
	})
}

func newStreamTransport(t *testing.T, budget *Budget, maxBody int64) *Transport {
	t.Helper()
	s := openTestStore(t)
	tr, err := New(t.Context(), s, testDB(t, s).options(Options{Stream: true, Buffer: budget, MaxBodySize: maxBody}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func getBody(t *testing.T, tr http.RoundTripper, url string) (string, int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.Header.Get(HeaderServed), len(b)
}

// TestStreamStoresWithinLimits: a streaming Transport stores a body read
// whole when it fits MaxBodySize and the budget, and otherwise streams it
// through uncached; either way the caller gets every byte.
func TestStreamStoresWithinLimits(t *testing.T) {
	cases := []struct {
		name       string
		path       string
		budget     int64
		wantSecond string // served on the second request
		refused    int64  // per request
		tooLarge   int64  // per request
	}{
		{"declared length, fits", "/n/5000", 4 << 20, ServedHit, 0, 0},
		{"unknown length, fits", "/chunked/200000", 4 << 20, ServedHit, 0, 0},
		{"declared length over MaxBodySize", "/n/300000", 4 << 20, ServedMiss, 0, 1},
		{"unknown length over MaxBodySize", "/chunked/300000", 4 << 20, ServedMiss, 0, 1},
		{"declared length over the budget", "/n/100000", 50000, ServedMiss, 1, 0},
		{"unknown length over the budget", "/chunked/100000", 50000, ServedMiss, 1, 0},
	}
	o := streamOrigin(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			budget := NewBudget(c.budget)
			tr := newStreamTransport(t, budget, 250000)
			size, _ := strconv.Atoi(c.path[strings.LastIndex(c.path, "/")+1:])
			for i, want := range []string{ServedMiss, c.wantSecond} {
				served, n := getBody(t, tr, o.URL+c.path)
				if served != want || n != size {
					t.Errorf("request %d: served %q with %d bytes; want %q with %d", i+1, served, n, want, size)
				}
			}
			if got := budget.Refused(); (got > 0) != (c.refused > 0) {
				t.Errorf("budget refused %d responses, want %d per request", got, c.refused)
			}
			if got := tr.Stats().TooLarge; (got > 0) != (c.tooLarge > 0) {
				t.Errorf("TooLarge = %d, want %d per request", got, c.tooLarge)
			}
			if got := budget.InUse(); got != 0 {
				t.Errorf("budget holds %d bytes after the bodies were read, want 0", got)
			}
			if budget.Peak() > budget.Max() {
				t.Errorf("budget peak %d over its size %d", budget.Peak(), budget.Max())
			}
		})
	}
}

// TestStreamBeforeBodyEnds: the first bytes reach the caller while the
// origin has not sent the rest, and the body is stored once whole.
func TestStreamBeforeBodyEnds(t *testing.T) {
	release := make(chan struct{})
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Length", "10")
		_, _ = io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "-last")
	}))
	defer o.Close()
	tr := newStreamTransport(t, nil, 0)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, o.URL+"/p", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	first := make([]byte, 5)
	_, err = io.ReadFull(resp.Body, first)
	close(release) // the origin sends the rest only now
	if err != nil || string(first) != "first" {
		t.Fatalf("first bytes %q, err %v; want %q before the origin finished", first, err, "first")
	}
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(rest) != "-last" {
		t.Errorf("rest %q, want %q", rest, "-last")
	}
	if served, n := getBody(t, tr, o.URL+"/p"); served != ServedHit || n != 10 {
		t.Errorf("second request served %q with %d bytes, want a hit of 10", served, n)
	}
}

// TestStreamAbandonedNotStored: a caller that stops reading leaves nothing
// stored (a truncated body is never an entry) and gives its budget back.
func TestStreamAbandonedNotStored(t *testing.T) {
	o := streamOrigin(t)
	budget := NewBudget(1 << 20)
	tr := newStreamTransport(t, budget, 0)
	for _, path := range []string{"/n/100000", "/chunked/100000"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, o.URL+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadFull(resp.Body, make([]byte, 1000))
		resp.Body.Close()
		if got := budget.InUse(); got != 0 {
			t.Errorf("%s: budget holds %d bytes after Close, want 0", path, got)
		}
		if served, _ := getBody(t, tr, o.URL+path); served != ServedMiss {
			t.Errorf("%s: after an abandoned read served %q, want miss (nothing stored)", path, served)
		}
	}
}

// TestStreamLargeRequestBodyPassesThrough: a GET body too large to key is
// streamed to the origin whole, uncached.
func TestStreamLargeRequestBodyPassesThrough(t *testing.T) {
	var got int
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = len(b)
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = io.WriteString(w, "ok")
	})
	tr := newStreamTransport(t, nil, 0)
	size := maxKeyedRequestBody + 100
	for i := range 2 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, o.URL+"/q", io.MultiReader(bytes.NewReader(make([]byte, size))))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got != size || resp.Header.Get(HeaderServed) != ServedMiss {
			t.Errorf("request %d: origin got %d bytes, served %q; want %d, miss", i+1, got, resp.Header.Get(HeaderServed), size)
		}
	}
}

// TestStreamCoalesced: a request for a body that is being streamed into
// the store waits for it and is served from the store, instead of
// downloading the body again.
func TestStreamCoalesced(t *testing.T) {
	o := streamOrigin(t)
	tr := newStreamTransport(t, nil, 0)
	joined := make(chan struct{}, 1)
	tr.streams.joined = func(string) { joined <- struct{}{} }
	for _, c := range []struct {
		path, served string
		origin       int64
	}{
		{"/n/100000", ServedHit, 1},
		{"/chunked/100000", ServedHit, 1},
		{"/nf/100000", ServedMiss, 2}, // not stored: the waiter fetches for itself, once
	} {
		path := c.path
		before := o.requests.Load()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, o.URL+path, nil)
		leader, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			served string
			n      int
			err    error
		}
		waiter := make(chan result, 1)
		go func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, o.URL+path, nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				waiter <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			waiter <- result{resp.Header.Get(HeaderServed), len(b), err}
		}()
		<-joined // the second request waits for the leader's stream
		_, _ = io.Copy(io.Discard, leader.Body)
		leader.Body.Close()
		got := <-waiter
		if got.err != nil || got.served != c.served || got.n != 100000 {
			t.Errorf("%s: the waiting request was served %q with %d bytes (err %v); want %q with 100000", path, got.served, got.n, got.err, c.served)
		}
		if n := o.requests.Load() - before; n != c.origin {
			t.Errorf("%s: origin saw %d requests, want %d", path, n, c.origin)
		}
	}
}
