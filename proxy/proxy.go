// Package proxy serves crawlcache's cache to any HTTP client: a caching
// reverse proxy in front of one origin, or a forward proxy for http:// URLs.
// Requests go through an http.RoundTripper (the cache.Transport in
// production); the proxy itself never caches, follows redirects or changes
// anything but hop-by-hop headers.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxRequestBody is the largest request body forwarded when
// Handler.MaxRequestBody is zero: 1 GiB, Apache httpd's LimitRequestBody
// default. Bodies are streamed, never held whole, so the limit is about
// what clients may send, not about memory.
const DefaultMaxRequestBody = 1 << 30

// Handler is a caching proxy. Set the fields before serving; it is safe for
// concurrent use while serving.
type Handler struct {
	// Transport sends every proxied request. If nil, a transport that
	// dials through Guard (see NewUpstream). For the Guard to hold against
	// DNS rebinding, a cache.Transport given here must use NewUpstream's
	// transport (or one dialing with Guard.DialContext) as its upstream.
	Transport http.RoundTripper

	// Upstream, when set, makes a reverse proxy: every request is sent to
	// this origin (scheme, host and optional path prefix). When nil, the
	// handler is a forward proxy for absolute http:// request URIs and
	// CONNECT tunnels.
	Upstream *url.URL

	// Guard decides which destinations a forward proxy reaches: see
	// Guard. Its zero value refuses loopback, private, link-local and
	// unspecified addresses and tunnels to ports other than 443. Not
	// consulted in reverse mode (the operator chose the upstream).
	Guard *Guard

	// Pseudonym names this proxy in Via headers (RFC 9110 §7.6.3). A
	// request whose Via already names it has looped back and is answered
	// 508 at once. If empty, "crawlcache-" and 8 random hex digits, new
	// for each Handler.
	Pseudonym string

	// MaxRequestBody is the largest request body forwarded; past it the
	// client gets 413. If 0, DefaultMaxRequestBody; negative means no
	// limit.
	MaxRequestBody int64

	// DialTimeout bounds the TCP connect of a CONNECT tunnel when Guard
	// has no Dial. If zero, 10s.
	DialTimeout time.Duration

	// Logger gets one debug line per request. If nil, slog.Default().
	Logger *slog.Logger

	once  sync.Once
	rp    *httputil.ReverseProxy
	guard *Guard
	via   string
}

// ServeHTTP proxies one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(h.init)
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	switch {
	case h.looped(r):
		http.Error(rec, fmt.Sprintf("crawlcache proxy: loop detected: the request already passed this proxy (Via: %s); check --upstream and the client's proxy settings", strings.Join(r.Header.Values("Via"), ", ")), http.StatusLoopDetected)
	case r.Method == http.MethodConnect:
		h.tunnel(rec, r)
	case h.Upstream == nil && !r.URL.IsAbs():
		http.Error(rec, "crawlcache proxy: this is a forward proxy; send absolute URLs (set HTTP_PROXY), or start it with --upstream to proxy one origin", http.StatusBadRequest)
	case h.Upstream == nil && r.URL.Scheme != "http":
		http.Error(rec, fmt.Sprintf("crawlcache proxy: scheme %q is not proxied; https goes through CONNECT tunnels", r.URL.Scheme), http.StatusBadRequest)
	default:
		h.forward(rec, r)
	}
	h.logger().Debug("proxy request", "method", r.Method, "url", r.URL.String(), "status", rec.status,
		"served", rec.Header().Get("X-Crawlcache"), "duration", time.Since(start))
}

// forward checks a forward request's destination, limits its body and
// sends it through the reverse proxy.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request) {
	if h.Upstream == nil {
		if _, err := h.guard.Check(r.Context(), r.URL.Host, false); err != nil {
			h.refuse(w, r, err)
			return
		}
	}
	limit := h.maxRequestBody()
	if limit >= 0 && r.ContentLength > limit {
		http.Error(w, fmt.Sprintf("crawlcache proxy: request body of %d bytes is over --max-request-body (%d bytes)", r.ContentLength, limit), http.StatusRequestEntityTooLarge)
		return
	}
	if limit >= 0 && r.Body != nil && r.Body != http.NoBody {
		lb := &limitedBody{r: r.Body, left: limit + 1}
		r.Body = lb
		r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, lb))
	}
	h.rp.ServeHTTP(w, r)
}

// refuse answers a destination the guard refused (403) or could not
// resolve (502).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	if errors.Is(err, ErrDenied) {
		status = http.StatusForbidden
	}
	http.Error(w, fmt.Sprintf("crawlcache proxy: %s %s: %v", r.Method, r.Host, err), status)
}

func (h *Handler) maxRequestBody() int64 {
	if h.MaxRequestBody == 0 {
		return DefaultMaxRequestBody
	}
	return h.MaxRequestBody
}

func (h *Handler) init() {
	h.guard = h.Guard
	if h.guard == nil {
		h.guard = &Guard{}
	}
	name := h.Pseudonym
	if name == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		name = "crawlcache-" + hex.EncodeToString(b[:])
	}
	h.via = name
	tr := h.Transport
	if tr == nil && h.Upstream != nil {
		tr = NewUpstream(ReverseGuard(h.Upstream, h.guard.Deny))
	} else if tr == nil {
		tr = NewUpstream(h.guard)
	}
	h.rp = &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			if h.Upstream != nil {
				pr.SetURL(h.Upstream)
			}
			// Keep the query byte for byte, even parts net/url finds
			// unparsable: the origin decides what they mean.
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			pr.Out.Header.Add("Via", viaProto(pr.In.ProtoMajor, pr.In.ProtoMinor)+" "+h.via)
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Add("Via", viaProto(resp.ProtoMajor, resp.ProtoMinor)+" "+h.via)
			return nil
		},
		ErrorHandler: h.proxyError,
		ErrorLog:     slog.NewLogLogger(h.logger().Handler(), slog.LevelDebug),
	}
}

// proxyError answers a request the transport could not complete.
func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	target := r.URL.Host
	if h.Upstream != nil {
		target = h.Upstream.Host
	}
	status := http.StatusBadGateway
	if lb, ok := r.Context().Value(bodyKey{}).(*limitedBody); ok && lb.over.Load() {
		http.Error(w, fmt.Sprintf("crawlcache proxy: request body over --max-request-body (%d bytes)", h.maxRequestBody()), http.StatusRequestEntityTooLarge)
		return
	}
	switch {
	case errors.Is(err, ErrDenied):
		status = http.StatusForbidden
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	}
	http.Error(w, fmt.Sprintf("crawlcache proxy: %s %s: %v", r.Method, target, err), status)
}

// NewUpstream returns the transport a proxy sends its network requests
// with: http.DefaultTransport's settings, no proxy of its own, no
// Accept-Encoding of its own (the client's is forwarded as sent, and
// bodies pass encoded as the origin sent them), and every connection
// dialed through g, so only addresses g checked are reached.
func NewUpstream(g *Guard) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DisableCompression = true
	t.DialContext = g.DialContext
	return t
}

// ReverseGuard is the guard of a reverse proxy's transport: it reaches
// upstream's host and port (even on loopback or a private network: the
// operator named it) and nothing in deny.
func ReverseGuard(upstream *url.URL, deny []string) *Guard {
	port := upstream.Port()
	if port == "" {
		port = "80"
		if upstream.Scheme == "https" {
			port = "443"
		}
	}
	return &Guard{Allow: []string{net.JoinHostPort(upstream.Hostname(), port)}, Deny: deny}
}

func viaProto(major, minor int) string {
	if major >= 2 {
		return strconv.Itoa(major)
	}
	return fmt.Sprintf("%d.%d", major, minor)
}

// looped reports whether r's Via names this proxy.
func (h *Handler) looped(r *http.Request) bool {
	for _, v := range r.Header.Values("Via") {
		for _, hop := range strings.Split(v, ",") {
			f := strings.Fields(hop)
			if len(f) >= 2 && strings.EqualFold(f[1], h.via) {
				return true
			}
		}
	}
	return false
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.Default()
	}
	return h.Logger
}

// tunnel serves CONNECT: a byte pipe to the target, uncached (the proxy
// cannot see inside TLS).
func (h *Handler) tunnel(w http.ResponseWriter, r *http.Request) {
	if h.Upstream != nil {
		http.Error(w, "crawlcache proxy: CONNECT is only served by a forward proxy (started without --upstream)", http.StatusMethodNotAllowed)
		return
	}
	target, err := h.guard.Check(r.Context(), r.Host, true)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	ctx := r.Context()
	if h.guard.Dial == nil {
		timeout := h.DialTimeout
		if timeout == 0 {
			timeout = 10 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	upstream, err := h.guard.DialTarget(ctx, "tcp", target)
	if err != nil {
		http.Error(w, fmt.Sprintf("crawlcache proxy: connect to %s: %v", r.Host, err), http.StatusBadGateway)
		return
	}
	client, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		http.Error(w, "crawlcache proxy: CONNECT needs an HTTP/1 connection", http.StatusInternalServerError)
		return
	}
	if rec, ok := w.(*statusRecorder); ok {
		rec.status = http.StatusOK
	}
	// Written by hand: a 200 to CONNECT has no body, so no framing
	// headers at all (RFC 9110 §9.3.6).
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		upstream.Close()
		client.Close()
		return
	}
	go pipe(client, buf.Reader, upstream)
}

// pipe copies bytes both ways until both directions end.
func pipe(client net.Conn, clientBuf io.Reader, upstream net.Conn) {
	defer upstream.Close()
	defer client.Close()
	done := make(chan struct{})
	go func() {
		// Bytes the client sent after the CONNECT line, then the rest.
		_, _ = io.Copy(upstream, clientBuf)
		if tc, ok := upstream.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(client, upstream)
	if tc, ok := client.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	<-done
}

type bodyKey struct{}

// limitedBody passes a request body through and fails once more than its
// limit was read, remembering that it did (for the 413).
type limitedBody struct {
	r    io.ReadCloser
	left int64 // limit+1: reading this many bytes means over the limit
	over atomic.Bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		b.over.Store(true)
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left <= 0 {
		b.over.Store(true)
		return n, errBodyTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.r.Close() }

var errBodyTooLarge = errors.New("request body over --max-request-body")

// statusRecorder remembers the status for the log line and passes
// everything else (Flush, Hijack) through via Unwrap.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// CheckListen returns an error when addr is not a loopback address and
// public is false: an open proxy lets anyone use this machine's network.
func CheckListen(addr string, public bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w (want host:port, e.g. 127.0.0.1:8081)", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if !public {
		return fmt.Errorf("listen address %q is not loopback: an open proxy lets anyone on the network use it; pass --public to do it anyway (and limit hosts with --allow)", addr)
	}
	return nil
}
