package testsite

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Faults injects errors. Rate faults are decided per request from a hash of
// the seed, the request's path and query, and how many times that path and
// query was requested before, so a given sequence of requests meets the same
// faults in every run. Their bands are disjoint and checked in the order
// below; their sum is capped at 1. /robots.txt is exempt from rate faults.
type Faults struct {
	// ErrorRate is the fraction of requests answered 500, 502, 503 or 504.
	ErrorRate float64
	// TimeoutRate is the fraction of requests that get no answer: the
	// handler holds them until the client gives up (its request context is
	// done) or Site.Close, then aborts the connection.
	TimeoutRate float64
	// ResetRate is the fraction of requests whose connection is closed with
	// a TCP reset before any byte of the response is sent.
	ResetRate float64
	// Status429Rate is the fraction of requests answered 429 with a
	// Retry-After header.
	Status429Rate float64
	// RetryAfter is the Retry-After of 429 answers, sent in whole seconds
	// rounded up; 0 means 1 second.
	RetryAfter time.Duration

	// FailPaths maps a path (without query) to the status answered to its
	// first FailTimes requests; later requests are served normally.
	FailPaths map[string]int
	// FailTimes is how many requests to each FailPaths path fail; 0 means 1.
	FailTimes int

	// The paths below, when set, are linked from the home page (so a crawl
	// meets them) and override any page at the same path.

	// RedirectLoop answers 302 to RedirectLoop+"?loop=1", which answers 302
	// back to RedirectLoop.
	RedirectLoop string
	// Oversize answers 200 text/html with a body of OversizeBytes.
	Oversize string
	// OversizeBytes is the size of the Oversize body; 0 means 32 MB.
	OversizeBytes int64
	// InvalidUTF8 answers a small HTML page labelled charset=utf-8 that
	// contains invalid UTF-8 sequences and a link to /products/1.
	InvalidUTF8 string
	// WrongContentType answers binary data (a PNG signature and random
	// bytes) labelled "text/html; charset=utf-8".
	WrongContentType string
}

// Pseudo status codes that Counts and RequestLog record for requests that
// got no HTTP status.
const (
	// StatusReset: the connection was closed by a ResetRate fault.
	StatusReset = -1
	// StatusTimeout: the request was held by a TimeoutRate fault. It is
	// recorded when the request arrives.
	StatusTimeout = -2
	// StatusAborted: the client gave up, or the site was closed, during
	// Latency.
	StatusAborted = -3
)

func (f Faults) withDefaults() Faults {
	if f.RetryAfter <= 0 {
		f.RetryAfter = time.Second
	}
	if f.FailTimes <= 0 {
		f.FailTimes = 1
	}
	if f.OversizeBytes <= 0 {
		f.OversizeBytes = 32 << 20
	}
	return f
}

// faultLinks returns the configured special fault paths, linked from the
// home page.
func (s *Site) faultLinks() []string {
	var out []string
	for _, p := range []string{s.opts.Faults.RedirectLoop, s.opts.Faults.Oversize, s.opts.Faults.InvalidUTF8, s.opts.Faults.WrongContentType} {
		if p != "" && !contains2(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func contains2(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// hashUnit maps (seed, key, attempt, salt) to [0, 1).
func hashUnit(seed int64, key string, attempt int, salt uint64) float64 {
	h := uint64(14695981039346656037) // FNV-1a
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	r := newRNG(seed, salt, h, uint64(attempt))
	return r.float()
}

// serveFault answers r if a fault applies, and reports whether it did.
func (s *Site) serveFault(w http.ResponseWriter, r *http.Request, entry Request, attempt int) bool {
	f := &s.opts.Faults
	path := r.URL.Path
	if code, ok := f.FailPaths[path]; ok && s.rec.pathAttempt(path) < f.FailTimes {
		s.faultStatus(w, r, entry, code)
		return true
	}
	if path != "/robots.txt" {
		u := hashUnit(s.opts.Seed, entry.Path, attempt, 9)
		switch {
		case u < f.ErrorRate:
			codes := [...]int{500, 502, 503, 504}
			s.faultStatus(w, r, entry, codes[int(hashUnit(s.opts.Seed, entry.Path, attempt, 10)*4)])
			return true
		case u < f.ErrorRate+f.TimeoutRate:
			s.rec.add(entry, StatusTimeout, 0)
			select {
			case <-r.Context().Done():
			case <-s.closed:
			}
			panic(http.ErrAbortHandler)
		case u < f.ErrorRate+f.TimeoutRate+f.ResetRate:
			if !s.wait(r.Context()) {
				s.rec.add(entry, StatusAborted, 0)
				return true
			}
			s.rec.add(entry, StatusReset, 0)
			reset(w)
			return true
		case u < f.ErrorRate+f.TimeoutRate+f.ResetRate+f.Status429Rate:
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
			s.faultStatus(w, r, entry, http.StatusTooManyRequests)
			return true
		}
	}
	switch path {
	case "":
		return false
	case f.RedirectLoop:
		if !s.wait(r.Context()) {
			s.rec.add(entry, StatusAborted, 0)
			return true
		}
		target := path + "?loop=1"
		if r.URL.RawQuery != "" {
			target = path
		}
		w.Header().Set("Location", target)
		s.writeSimple(w, r, entry, http.StatusFound, "redirecting to "+target)
		return true
	case f.Oversize:
		s.serveOversize(w, r, entry)
		return true
	case f.InvalidUTF8:
		s.serveBody(w, r, entry, "text/html; charset=utf-8", invalidUTF8Body)
		return true
	case f.WrongContentType:
		s.serveBody(w, r, entry, "text/html; charset=utf-8", binaryBody(s.opts.Seed))
		return true
	}
	return false
}

// faultStatus answers code after the configured latency.
func (s *Site) faultStatus(w http.ResponseWriter, r *http.Request, entry Request, code int) {
	if !s.wait(r.Context()) {
		s.rec.add(entry, StatusAborted, 0)
		return
	}
	s.writeSimple(w, r, entry, code, strings.ToLower(http.StatusText(code)))
}

// reset closes the connection under w with SO_LINGER 0, so the client gets
// a TCP RST. Without a hijackable connection (HTTP/2, a ResponseRecorder) it
// aborts the handler instead.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// serveBody answers 200 with a fixed body after the configured latency.
func (s *Site) serveBody(w http.ResponseWriter, r *http.Request, entry Request, contentType string, body []byte) {
	if !s.wait(r.Context()) {
		s.rec.add(entry, StatusAborted, 0)
		return
	}
	h := w.Header()
	s.setDate(h)
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", s.opts.CacheControl)
	if r.Method == http.MethodHead {
		s.rec.add(entry, http.StatusOK, 0)
		w.WriteHeader(http.StatusOK)
		return
	}
	s.rec.add(entry, http.StatusOK, int64(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

var invalidUTF8Body = []byte("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Broken \xff\xfe encoding</title>\n</head>\n<body>\n" +
	"<h1>Caf\xe9 \xc3\x28 \xe2\x82 \xf0\x9f\x98</h1>\n<p>Invalid sequences: \xc0\xaf \xed\xa0\x80 \xf8\x88\x80\x80\x80.</p>\n" +
	"<p><a href=\"/products/1\">A valid link</a></p>\n</body>\n</html>\n")

// binaryBody is 4 KB that looks like the start of a PNG file.
func binaryBody(seed int64) []byte {
	b := make([]byte, 4096)
	copy(b, "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	r := newRNG(seed, 11)
	for i := 16; i < len(b); i++ {
		b[i] = byte(r.next())
	}
	return b
}

// oversizeChunk is repeated to make the Oversize body.
var oversizeChunk = func() []byte {
	var b []byte
	r := newRNG(0, 12)
	for len(b) < 32<<10 {
		b = append(b, "<p>"...)
		for i := 0; i < 100; i++ {
			b = append(b, words[r.next()%uint64(len(words))]...)
			b = append(b, ' ')
		}
		b = append(b, "</p>\n"...)
	}
	return b[:32<<10]
}()

// serveOversize streams OversizeBytes of HTML without holding it in memory.
func (s *Site) serveOversize(w http.ResponseWriter, r *http.Request, entry Request) {
	if !s.wait(r.Context()) {
		s.rec.add(entry, StatusAborted, 0)
		return
	}
	n := s.opts.Faults.OversizeBytes
	h := w.Header()
	s.setDate(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	h.Set("Cache-Control", s.opts.CacheControl)
	if r.Method == http.MethodHead {
		s.rec.add(entry, http.StatusOK, 0)
		w.WriteHeader(http.StatusOK)
		return
	}
	s.rec.add(entry, http.StatusOK, n)
	w.WriteHeader(http.StatusOK)
	for n > 0 {
		c := oversizeChunk[:min(int64(len(oversizeChunk)), n)]
		if _, err := w.Write(c); err != nil {
			return
		}
		n -= int64(len(c))
	}
}
