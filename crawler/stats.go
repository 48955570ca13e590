package crawler

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/url"
	"strconv"
	"sync"
)

// Kinds of failure in Progress.ErrorKinds. A URL that failed because of its
// HTTP status counts as "http_<status>" ("http_503") instead.
const (
	ErrorNetwork  = "network"   // connection refused or reset, DNS, TLS
	ErrorTimeout  = "timeout"   // the request took longer than Timeout
	ErrorTooLarge = "too_large" // the body exceeded MaxBodySize
	ErrorRedirect = "redirect"  // too many redirects, or one not followed
	ErrorOther    = "other"     // anything else (an unparsable URL, …)
)

// statusError is a URL failed for good because of its HTTP status (5xx,
// 429 or 408 left after the retries).
type statusError struct{ status, retries int }

func (e *statusError) Error() string {
	return fmt.Sprintf("status %d after %d retries", e.status, e.retries)
}

// errorKind classifies why a URL failed, for Progress.ErrorKinds.
func errorKind(err error) string {
	var se *statusError
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &se):
		return "http_" + strconv.Itoa(se.status)
	case errors.Is(err, ErrBodyTooLarge):
		return ErrorTooLarge
	case errors.Is(err, ErrTooManyRedirects), errors.Is(err, errUnfollowedRedirect):
		return ErrorRedirect
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ErrorTimeout
	case errors.As(err, &oe), errors.As(err, &ue):
		return ErrorNetwork
	default:
		return ErrorOther
	}
}

// respondedError is a URL that failed although a response came: its
// status was counted in Progress.Statuses, and its change record keeps it.
// Its message and chain are the cause's.
type respondedError struct {
	status int
	err    error
}

func (e *respondedError) Error() string { return e.err.Error() }
func (e *respondedError) Unwrap() error { return e.err }

// responded wraps cause, a failure of a URL whose response had status.
func responded(cause error, status int) error {
	return &respondedError{status: status, err: cause}
}

// errUnfollowedRedirect is recorded on a 3xx response left after the
// client followed what it could.
var errUnfollowedRedirect = errors.New("unfollowed redirect")

// breakdown counts responses by status and failures by kind. It is safe
// for concurrent use.
type breakdown struct {
	mu       sync.Mutex
	kinds    map[string]int64
	statuses map[string]int64
	robots   int64
	blockeds map[uint64]struct{} // hashes of the URLs counted in robots
	seed     maphash.Seed
}

func (b *breakdown) failed(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kinds == nil {
		b.kinds = map[string]int64{}
	}
	b.kinds[errorKind(err)]++
}

func (b *breakdown) status(code int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.statuses == nil {
		b.statuses = map[string]int64{}
	}
	b.statuses[strconv.Itoa(code)]++
}

// blocked counts a URL robots.txt disallows, once however many pages link
// to it (a set of 8-byte hashes: a collision undercounts by one).
func (b *breakdown) blocked(u string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.blockeds == nil {
		b.blockeds = map[uint64]struct{}{}
		b.seed = maphash.MakeSeed()
	}
	h := maphash.String(b.seed, u)
	if _, ok := b.blockeds[h]; !ok {
		b.blockeds[h] = struct{}{}
		b.robots++
	}
}

// fill copies the counts into p (fresh maps: p is handed to other
// goroutines).
func (b *breakdown) fill(p *Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p.Robots = b.robots
	p.ErrorKinds = cloneCounts(b.kinds)
	p.Statuses = cloneCounts(b.statuses)
}

func cloneCounts(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
