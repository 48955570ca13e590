package render

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// trap is the proxy every browser of a Pool is told to use: it answers
// every request with 403 and closes the connection. Requests the Fetch
// domain pauses never reach it (they are answered through the
// Transport); a request that escaped interception (a service worker's, a
// prefetch) arrives here, fails in the page, and is counted, instead of
// reaching the network behind the cache and the politeness. Chromium also
// opens idle connections to its proxy ahead of time (not counted), and
// makes requests of its own that no flag turns off (CONNECT to
// www.google.com and accounts.google.com, a favicon once a tab closed):
// those are refused too, logged
// at debug level and not counted.
type trap struct {
	ln      net.Listener
	log     *slog.Logger
	escaped atomic.Int64
}

func newTrap(log *slog.Logger) (*trap, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the browsers' refusing proxy: %w", err)
	}
	t := &trap{ln: ln, log: log}
	go t.serve()
	return t, nil
}

func (t *trap) serve() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return // closed
		}
		go t.refuse(c)
	}
}

// refuse reads one request line, counts and logs it, and answers 403.
func (t *trap) refuse(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, 8192)).ReadString('\n')
	if err != nil && line == "" {
		return // a preconnect that was never used
	}
	method, target, _ := strings.Cut(strings.TrimSpace(line), " ")
	target, _, _ = strings.Cut(target, " ")
	if chromiumService(target) {
		t.log.Debug("chromium's own request refused", "method", method, "target", target)
	} else {
		t.escaped.Add(1)
		t.log.Warn("a browser request escaped interception and was refused", "method", method, "target", target)
	}
	_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

// addr is the proxy URL for Chromium's --proxy-server.
func (t *trap) addr() string { return "http://" + t.ln.Addr().String() }

func (t *trap) close() { t.ln.Close() }

// chromiumService reports whether a proxy target is one of the Google
// hosts Chromium itself contacts, or a favicon.
func chromiumService(target string) bool {
	host := target
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		if u.Path == "/favicon.ico" {
			return true // the tab strip's icon, asked after a page closed
		}
		host = u.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for _, d := range []string{"google.com", "googleapis.com", "gstatic.com", "gvt1.com"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}
