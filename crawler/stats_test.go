package crawler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestErrorKind(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"connection refused", refused, ErrorNetwork},
		{"client timeout", &url.Error{Op: "Get", URL: "http://x/", Err: timeoutErr{}}, ErrorTimeout},
		{"deadline", fmt.Errorf("fetch: %w", context.DeadlineExceeded), ErrorTimeout},
		{"503 after retries", &statusError{status: 503, retries: 3}, "http_503"},
		{"429 after retries", fmt.Errorf("x: %w", &statusError{status: 429}), "http_429"},
		{"too large", fmt.Errorf("%w: more than 10 bytes", ErrBodyTooLarge), ErrorTooLarge},
		{"redirect loop", &url.Error{Op: "Get", URL: "http://x/", Err: ErrTooManyRedirects}, ErrorRedirect},
		{"unfollowed redirect", fmt.Errorf("%w: status 302", errUnfollowedRedirect), ErrorRedirect},
		{"bad url", errors.New("parse url: bad"), ErrorOther},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := errorKind(tc.err); got != tc.want {
				t.Errorf("errorKind(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
