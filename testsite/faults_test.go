package testsite

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// start serves s on loopback for the test's duration.
func start(t *testing.T, s *Site) *Server {
	t.Helper()
	srv := s.Start()
	t.Cleanup(srv.Close)
	return srv
}

// fetch GETs url with client and returns the status and body, or the error.
func fetch(client *http.Client, url string) (int, http.Header, []byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

func TestRateFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
		want   func(code int) bool
	}{
		{"5xx", Faults{ErrorRate: 0.2}, func(c int) bool { return c >= 500 && c <= 504 }},
		{"429", Faults{Status429Rate: 0.2}, func(c int) bool { return c == 429 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := func() []int {
				s := New(Options{Pages: 300, MinSize: 1000, MaxSize: 1000, LinksPerPage: -1, Faults: tt.faults})
				var codes []int
				for attempt := 0; attempt < 2; attempt++ {
					for _, u := range s.URLs("") {
						codes = append(codes, get(t, s, "GET", u).Code)
					}
				}
				for i := 0; i < 20; i++ {
					if code := get(t, s, "GET", "/robots.txt").Code; code != 200 {
						t.Fatalf("robots.txt: status %d, want 200 (exempt from rate faults)", code)
					}
				}
				return codes
			}
			codes := run()
			faulty := 0
			for _, c := range codes {
				switch {
				case tt.want(c):
					faulty++
				case c != 200:
					t.Fatalf("unexpected status %d", c)
				}
			}
			if f := float64(faulty) / float64(len(codes)); f < 0.15 || f > 0.25 {
				t.Errorf("fault fraction %.3f, want ≈ 0.2", f)
			}
			again := run()
			for i := range codes {
				if codes[i] != again[i] {
					t.Fatalf("request %d: status %d then %d in an identical run; want deterministic", i, codes[i], again[i])
				}
			}
			// Attempts differ: the first and second request of a path are
			// not always both faulty.
			both := 0
			for i := 0; i < 300; i++ {
				if tt.want(codes[i]) && tt.want(codes[300+i]) {
					both++
				}
			}
			if both > faulty/3 {
				t.Errorf("%d paths fail on both attempts; want faults per attempt", both)
			}
		})
	}
}

func Test429RetryAfter(t *testing.T) {
	tests := []struct {
		retryAfter time.Duration
		want       string
	}{
		{0, "1"},
		{1500 * time.Millisecond, "2"},
		{30 * time.Second, "30"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			srv := start(t, New(Options{Faults: Faults{Status429Rate: 1, RetryAfter: tt.retryAfter}}))
			code, h, _, err := fetch(http.DefaultClient, srv.URL+"/products/1")
			if err != nil || code != 429 || h.Get("Retry-After") != tt.want {
				t.Errorf("got %d Retry-After %q (err %v), want 429 Retry-After %q", code, h.Get("Retry-After"), err, tt.want)
			}
		})
	}
}

func TestFailPaths(t *testing.T) {
	s := New(Options{Faults: Faults{FailPaths: map[string]int{"/products/3": 503, "/": 500}, FailTimes: 2}})
	srv := start(t, s)
	var got []int
	for i := 0; i < 3; i++ {
		code, _, _, err := fetch(http.DefaultClient, srv.URL+"/products/3?i="+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, code)
	}
	if want := []int{503, 503, 200}; !equalInts(got, want) {
		t.Errorf("/products/3 statuses %v, want %v", got, want)
	}
	if c := s.Counts(); c.Status("/", 500) != 0 || c.ByStatus(503) != 2 {
		t.Errorf("counts: / 500 = %d, 503 total = %d; want 0 and 2", c.Status("/", 500), c.ByStatus(503))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTimeoutFault(t *testing.T) {
	s := New(Options{Faults: Faults{TimeoutRate: 1}})
	srv := start(t, s)
	client := &http.Client{Timeout: 50 * time.Millisecond}
	_, _, _, err := fetch(client, srv.URL+"/products/1")
	if err == nil || !strings.Contains(err.Error(), "Client.Timeout") {
		t.Fatalf("err %v, want a client timeout", err)
	}
	if got := s.Counts().Status("/products/1", StatusTimeout); got != 1 {
		t.Errorf("Status(/products/1, StatusTimeout) = %d, want 1", got)
	}
	if got := s.Counts().Status("/robots.txt", 200); got != 0 {
		t.Errorf("robots fetched: %d", got)
	}
	if code, _, _, err := fetch(client, srv.URL+"/robots.txt"); err != nil || code != 200 {
		t.Errorf("robots.txt under TimeoutRate 1: %d %v, want 200", code, err)
	}
}

// TestCloseReleasesHeldRequests: a client with no timeout must not keep
// Server.Close waiting forever.
func TestCloseReleasesHeldRequests(t *testing.T) {
	s := New(Options{Faults: Faults{TimeoutRate: 1}})
	srv := s.Start()
	done := make(chan error, 1)
	go func() {
		_, _, _, err := fetch(&http.Client{}, srv.URL+"/products/1")
		done <- err
	}()
	waitFor(t, func() bool { return s.Counts().Total == 1 })
	srv.Close()
	if err := <-done; err == nil {
		t.Errorf("held request succeeded after Close; want an error")
	}
}

func TestResetFault(t *testing.T) {
	s := New(Options{Faults: Faults{ResetRate: 1}})
	srv := start(t, s)
	_, _, _, err := fetch(http.DefaultClient, srv.URL+"/products/1")
	if err == nil || !(strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "EOF")) {
		t.Fatalf("err %v, want a connection reset", err)
	}
	if got := s.Counts().Status("/products/1", StatusReset); got < 1 {
		t.Errorf("Status(/products/1, StatusReset) = %d, want ≥ 1", got)
	}
}

func TestSpecialFaultPaths(t *testing.T) {
	s := New(Options{Faults: Faults{
		RedirectLoop: "/loop", Oversize: "/big", OversizeBytes: 1<<20 + 7,
		InvalidUTF8: "/broken", WrongContentType: "/image",
	}})
	srv := start(t, s)
	home := string(get(t, s, "GET", "/").Body.Bytes())
	for _, p := range []string{"/loop", "/big", "/broken", "/image"} {
		if !strings.Contains(home, `href="`+p+`"`) {
			t.Errorf("home page does not link %s", p)
		}
	}

	_, _, _, err := fetch(http.DefaultClient, srv.URL+"/loop")
	if err == nil || !strings.Contains(err.Error(), "stopped after 10 redirects") {
		t.Errorf("/loop: err %v, want stopped after 10 redirects", err)
	}
	if c := s.Counts(); c.Status("/loop", 302) == 0 || c.Status("/loop?loop=1", 302) == 0 {
		t.Errorf("loop counts: %d and %d 302s, want both > 0", c.Status("/loop", 302), c.Status("/loop?loop=1", 302))
	}

	code, h, body, err := fetch(http.DefaultClient, srv.URL+"/big")
	if err != nil || code != 200 || len(body) != 1<<20+7 || h.Get("Content-Length") != "1048583" {
		t.Errorf("/big: %d, %d bytes, Content-Length %q, err %v; want 200 and 1048583 bytes", code, len(body), h.Get("Content-Length"), err)
	}

	code, h, body, err = fetch(http.DefaultClient, srv.URL+"/broken")
	if err != nil || code != 200 || utf8.Valid(body) || h.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(string(body), `href="/products/1"`) {
		t.Errorf("/broken: %d %q valid UTF-8 %v err %v; want 200 utf-8 HTML with invalid bytes and a link", code, h.Get("Content-Type"), utf8.Valid(body), err)
	}

	code, h, body, err = fetch(http.DefaultClient, srv.URL+"/image")
	if err != nil || code != 200 || h.Get("Content-Type") != "text/html; charset=utf-8" || http.DetectContentType(body) != "image/png" {
		t.Errorf("/image: %d %q detected %q err %v; want PNG bytes labelled text/html", code, h.Get("Content-Type"), http.DetectContentType(body), err)
	}
	if got := s.ReachableURLs("http://x"); !contains2(got, "http://x/loop") || !contains2(got, "http://x/big") {
		t.Errorf("ReachableURLs lacks the fault paths: %v", got[:3])
	}
}

func TestLatency(t *testing.T) {
	s := New(Options{Latency: 20 * time.Millisecond})
	srv := start(t, s)
	begin := time.Now()
	if code, _, _, err := fetch(http.DefaultClient, srv.URL+"/products/1"); err != nil || code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	if d := time.Since(begin); d < 20*time.Millisecond {
		t.Errorf("answered after %v, want ≥ 20ms", d)
	}

	slow := New(Options{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := http.DefaultClient.Do(httptestRequest(t, ctx, start(t, slow).URL+"/products/1")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want context.DeadlineExceeded", err)
	}
	waitFor(t, func() bool { return slow.Counts().Status("/products/1", StatusAborted) == 1 })
}

// waitFor polls cond, which turns true when a server goroutine gets to it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

func httptestRequest(t *testing.T, ctx context.Context, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestControl(t *testing.T) {
	s := New(Options{Pages: 20, Control: "/_testsite/"})
	srv := start(t, s)
	if _, _, _, err := fetch(http.DefaultClient, srv.URL+"/products/2"); err != nil {
		t.Fatal(err)
	}
	_, _, body, err := fetch(http.DefaultClient, srv.URL+"/_testsite/counts")
	if err != nil {
		t.Fatal(err)
	}
	var c Counts
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if c.Total != 1 || c.Status("/products/2", 200) != 1 || c.BodyBytes == 0 {
		t.Errorf("remote counts %s, want one 200 for /products/2", body)
	}
	post := func(path string) (int, string) {
		resp, err := http.Post(srv.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/_testsite/change?fraction=0.5"); code != 200 || strings.Count(body, "/products/") != 10 {
		t.Errorf("change: %d %s, want 10 changed paths", code, body)
	}
	if code, _ := post("/_testsite/change?fraction=2"); code != 400 {
		t.Errorf("change fraction=2: %d, want 400", code)
	}
	if code, _ := post("/_testsite/reset"); code != 200 || s.Counts().Total != 0 {
		t.Errorf("reset: %d, total %d; want 200 and 0", code, s.Counts().Total)
	}
	if !strings.Contains(string(get(t, s, "GET", "/robots.txt").Body.Bytes()), "Disallow: /_testsite/") {
		t.Errorf("robots.txt does not disallow the control prefix")
	}
}
