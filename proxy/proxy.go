// Package proxy serves crawlcache's cache to any HTTP client: a caching
// reverse proxy in front of one origin, or a forward proxy for http:// URLs.
// Requests go through an http.RoundTripper (the cache.Transport in
// production); the proxy itself never caches, follows redirects or changes
// anything but hop-by-hop headers.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Handler is a caching proxy. Set the fields before serving; it is safe for
// concurrent use while serving.
type Handler struct {
	// Transport sends every proxied request. If nil, http.DefaultTransport.
	Transport http.RoundTripper

	// Upstream, when set, makes a reverse proxy: every request is sent to
	// this origin (scheme, host and optional path prefix). When nil, the
	// handler is a forward proxy for absolute http:// request URIs.
	Upstream *url.URL

	// Allow limits the hosts a forward proxy reaches (host or host:port,
	// case-insensitive; "*.example.org" matches subdomains). Empty allows
	// every host. Ignored in reverse mode.
	Allow []string

	// DialTimeout bounds the TCP connect of a CONNECT tunnel. If zero, 10s.
	DialTimeout time.Duration

	// Logger gets one debug line per request. If nil, slog.Default().
	Logger *slog.Logger

	once sync.Once
	rp   *httputil.ReverseProxy
}

// ServeHTTP proxies one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(h.init)
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	switch {
	case r.Method == http.MethodConnect:
		h.tunnel(rec, r)
	case h.Upstream == nil && !r.URL.IsAbs():
		http.Error(rec, "crawlcache proxy: this is a forward proxy; send absolute URLs (set HTTP_PROXY), or start it with --upstream to proxy one origin", http.StatusBadRequest)
	case h.Upstream == nil && r.URL.Scheme != "http":
		http.Error(rec, fmt.Sprintf("crawlcache proxy: scheme %q is not proxied; https goes through CONNECT tunnels", r.URL.Scheme), http.StatusBadRequest)
	case h.Upstream == nil && !h.allowed(r.URL.Host):
		http.Error(rec, fmt.Sprintf("crawlcache proxy: host %s is not in the --allow list", r.URL.Host), http.StatusForbidden)
	default:
		h.rp.ServeHTTP(rec, r)
	}
	h.logger().Debug("proxy request", "method", r.Method, "url", r.URL.String(), "status", rec.status,
		"served", rec.Header().Get("X-Crawlcache"), "duration", time.Since(start))
}

func (h *Handler) init() {
	h.rp = &httputil.ReverseProxy{
		Transport: h.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			if h.Upstream != nil {
				pr.SetURL(h.Upstream)
			}
			// Keep the query byte for byte, even parts net/url finds
			// unparsable: the origin decides what they mean.
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			target := r.URL.Host
			if h.Upstream != nil {
				target = h.Upstream.Host
			}
			status := http.StatusBadGateway
			if errors.Is(err, context.DeadlineExceeded) {
				status = http.StatusGatewayTimeout
			}
			http.Error(w, fmt.Sprintf("crawlcache proxy: %s %s: %v", r.Method, target, err), status)
		},
		ErrorLog: slog.NewLogLogger(h.logger().Handler(), slog.LevelDebug),
	}
	if h.Transport == nil {
		h.rp.Transport = http.DefaultTransport
	}
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.Default()
	}
	return h.Logger
}

// allowed reports whether a forward proxy may reach hostport.
func (h *Handler) allowed(hostport string) bool {
	if len(h.Allow) == 0 {
		return true
	}
	host := strings.ToLower(hostport)
	hostOnly := host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		hostOnly = hn
	}
	for _, a := range h.Allow {
		a = strings.ToLower(strings.TrimSpace(a))
		switch {
		case a == host || a == hostOnly:
			return true
		case strings.HasPrefix(a, "*.") && strings.HasSuffix(hostOnly, a[1:]):
			return true
		}
	}
	return false
}

// tunnel serves CONNECT: a byte pipe to the target, uncached (the proxy
// cannot see inside TLS).
func (h *Handler) tunnel(w http.ResponseWriter, r *http.Request) {
	if h.Upstream != nil {
		http.Error(w, "crawlcache proxy: CONNECT is only served by a forward proxy (started without --upstream)", http.StatusMethodNotAllowed)
		return
	}
	if !h.allowed(r.Host) {
		http.Error(w, fmt.Sprintf("crawlcache proxy: host %s is not in the --allow list", r.Host), http.StatusForbidden)
		return
	}
	timeout := h.DialTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	upstream, err := (&net.Dialer{Timeout: timeout}).DialContext(r.Context(), "tcp", r.Host)
	if err != nil {
		http.Error(w, fmt.Sprintf("crawlcache proxy: connect to %s: %v", r.Host, err), http.StatusBadGateway)
		return
	}
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		upstream.Close()
		return
	}
	client, buf, err := rc.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	go func() {
		defer upstream.Close()
		defer client.Close()
		done := make(chan struct{})
		go func() {
			// Bytes the client sent after the CONNECT line, then the rest.
			_, _ = io.Copy(upstream, buf)
			if tc, ok := upstream.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			close(done)
		}()
		_, _ = io.Copy(client, upstream)
		<-done
	}()
}

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
