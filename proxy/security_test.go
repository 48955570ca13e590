package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"crawlcache/cache"
	"crawlcache/proxy"
	"crawlcache/store/storetest"
)

// connect sends CONNECT target to the proxy at addr and returns the raw
// response head (through the blank line) and the connection.
func connect(t *testing.T, addr, target string) (string, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil || line == "\r\n" {
			break
		}
	}
	return head.String(), c, br
}

func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestConnectRules: CONNECT reaches port 443 or what --allow names, never
// loopback or the store's own port (RFC 9110 §9.3.6 for the reply).
func TestConnectRules(t *testing.T) {
	s := storetest.Open(t)
	storeAddr := proxy.StoreAddrs(s.URI)[0]
	_, storePort, _ := net.SplitHostPort(storeAddr)
	o := newOrigin(t)
	originAddr := hostPort(t, o.URL)
	_, originPort, _ := net.SplitHostPort(originAddr)
	dns := fakeDNS{"rebind.example": {"127.0.0.1"}, "localhost": {"127.0.0.1", "::1"}}
	cases := []struct {
		name, target string
		allow        []string
		want         string // status line
	}{
		{"allowed host:port tunnels", originAddr, []string{originAddr}, "HTTP/1.1 200 Connection established\r\n"},
		{"loopback not named", originAddr, nil, "HTTP/1.1 403 Forbidden\r\n"},
		{"loopback named without port: only 80 and 443", originAddr, []string{"127.0.0.1"}, "HTTP/1.1 403 Forbidden\r\n"},
		{"name resolving to loopback", "rebind.example:" + originPort, []string{"*"}, "HTTP/1.1 403 Forbidden\r\n"},
		{"store's own port, named", storeAddr, []string{storeAddr}, "HTTP/1.1 403 Forbidden\r\n"},
		{"store's own port by another loopback name", "localhost:" + storePort, []string{"localhost:" + storePort}, "HTTP/1.1 403 Forbidden\r\n"},
		{"store's own port, not named", storeAddr, nil, "HTTP/1.1 403 Forbidden\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := &proxy.Guard{Allow: c.allow, Deny: proxy.StoreAddrs(s.URI), LookupIPAddr: dns.lookup}
			p := httptest.NewServer(&proxy.Handler{Guard: g})
			defer p.Close()
			head, conn, br := connect(t, hostPort(t, p.URL), c.target)
			if !strings.HasPrefix(head, c.want) {
				t.Fatalf("CONNECT %s: reply %q, want %q", c.target, head, c.want)
			}
			if !strings.HasPrefix(c.want, "HTTP/1.1 200") {
				return
			}
			// A 200 to CONNECT carries no framing headers at all.
			if head != "HTTP/1.1 200 Connection established\r\n\r\n" {
				t.Errorf("CONNECT reply %q has headers; want none (no Transfer-Encoding)", head)
			}
			io.WriteString(conn, "GET /page HTTP/1.1\r\nHost: "+c.target+"\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("through the tunnel: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !strings.Contains(string(body), "page") {
				t.Errorf("through the tunnel: status %d body %q; want the origin's page", resp.StatusCode, body)
			}
		})
	}
}

// TestForwardRefusesLoopbackByName: the addresses a name resolves to are
// checked, not the name, and nothing reaches the origin.
func TestForwardRefusesLoopbackByName(t *testing.T) {
	o := newOrigin(t)
	_, port, _ := net.SplitHostPort(hostPort(t, o.URL))
	g := &proxy.Guard{LookupIPAddr: fakeDNS{"rebind.example": {"127.0.0.1"}}.lookup}
	p := httptest.NewServer(&proxy.Handler{Guard: g})
	defer p.Close()
	for _, target := range []string{"http://rebind.example:" + port + "/page", o.URL + "/page", "http://[::1]:" + port + "/page"} {
		client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, p.URL))}}
		resp, err := client.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "--allow") {
			t.Errorf("GET %s: status %d body %q; want 403 naming --allow", target, resp.StatusCode, body)
		}
	}
	if n := o.count("GET /page"); n != 0 {
		t.Errorf("origin saw %d requests, want 0", n)
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestReverseProxyToItselfAnswersLoop: a request that already carries this
// proxy's Via is answered at once (RFC 9110 §7.6.3), so a reverse proxy
// whose upstream is itself does not hang.
func TestReverseProxyToItselfAnswersLoop(t *testing.T) {
	h := &proxy.Handler{}
	p := httptest.NewUnstartedServer(h)
	h.Upstream = mustURL(t, "http://"+p.Listener.Addr().String())
	p.Start()
	defer p.Close()
	resp, err := http.Get(p.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusLoopDetected || !strings.Contains(string(body), "loop") {
		t.Errorf("status %d body %q; want 508 naming the loop", resp.StatusCode, body)
	}
}

// TestViaAdded: forwarded requests and responses carry this proxy's Via
// (RFC 9110 §7.6.3), after any the origin sent.
func TestViaAdded(t *testing.T) {
	var gotVia string
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotVia = r.Header.Get("Via")
		w.Header().Set("Via", "1.1 origin-cdn")
	}))
	defer o.Close()
	p := httptest.NewServer(&proxy.Handler{Upstream: mustURL(t, o.URL), Pseudonym: "px1"})
	defer p.Close()
	resp, err := http.Get(p.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotVia != "1.1 px1" {
		t.Errorf("origin got Via %q, want %q", gotVia, "1.1 px1")
	}
	if got := strings.Join(resp.Header.Values("Via"), ", "); got != "1.1 origin-cdn, 1.1 px1" {
		t.Errorf("response Via %q, want %q", got, "1.1 origin-cdn, 1.1 px1")
	}
}

// TestRequestBodyLimit: a body over --max-request-body is answered 413,
// whether its length is declared or chunked; a body within it arrives
// whole.
func TestRequestBodyLimit(t *testing.T) {
	var got []string
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got = append(got, string(b))
	}))
	defer o.Close()
	s := storetest.Open(t)
	tr, err := cache.New(t.Context(), s, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := httptest.NewServer(&proxy.Handler{Upstream: mustURL(t, o.URL), Transport: tr, MaxRequestBody: 1000})
	defer p.Close()
	cases := []struct {
		name, method string
		size         int
		chunked      bool
		want         int
	}{
		{"PUT at the limit", "PUT", 1000, false, 200},
		{"PUT declared over", "PUT", 1001, false, 413},
		{"PUT chunked over", "PUT", 5000, true, 413},
		{"GET with a body over (read by the cache for its key)", "GET", 5000, true, 413},
		{"GET with a body within", "GET", 10, true, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got = nil
			var body io.Reader = strings.NewReader(strings.Repeat("x", c.size))
			if c.chunked {
				body = io.MultiReader(body) // hides the length
			}
			req, _ := http.NewRequest(c.method, p.URL+"/up", body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("status %d, want %d", resp.StatusCode, c.want)
			}
			if c.want == 200 && (len(got) != 1 || len(got[0]) != c.size) {
				t.Errorf("origin got %d bodies, want one of %d bytes", len(got), c.size)
			}
			if c.want == 413 && len(got) != 0 && len(got[0]) > 1000 {
				t.Errorf("origin got a body of %d bytes past the limit", len(got[0]))
			}
		})
	}
}
