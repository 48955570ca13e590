package store_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"crawlcache/store"
)

// freeLoopbackPort returns a loopback address nothing listens on.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestOpenHonoursURITimeouts: options in a --store URI win over
// crawlcache's defaults (issue: serverSelectionTimeoutMS=1000 still waited
// 10 s). The wait is read from the error, which names it: no clock needed.
func TestOpenHonoursURITimeouts(t *testing.T) {
	addr := freeLoopbackPort(t)
	for _, tc := range []struct {
		name, uri string
		timeout   time.Duration
		wantWait  string
	}{
		{"uri sets serverSelectionTimeoutMS", "mongodb://" + addr + "/?serverSelectionTimeoutMS=200", time.Hour, "waited 200ms"},
		{"uri silent: the caller's default", "mongodb://" + addr + "/?connectTimeoutMS=100", 300 * time.Millisecond, "waited 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.Open(context.Background(), store.Options{URI: tc.uri, ConnectTimeout: tc.timeout, Logger: slog.New(slog.DiscardHandler)})
			if !errors.Is(err, store.ErrUnreachable) {
				t.Fatalf("Open(%s) = %v, want an error wrapping ErrUnreachable", tc.uri, err)
			}
			if !strings.Contains(err.Error(), tc.wantWait) {
				t.Errorf("Open(%s) error = %q, want it to say %q", tc.uri, err, tc.wantWait)
			}
		})
	}
}

// TestOpenRefusesBadURIOptions: a malformed option is a clear error that
// names the URI, with the password hidden.
func TestOpenRefusesBadURIOptions(t *testing.T) {
	uri := "mongodb://u:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=soon"
	_, err := store.Open(context.Background(), store.Options{URI: uri, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		t.Fatal("Open with serverSelectionTimeoutMS=soon succeeded, want an error")
	}
	if msg := err.Error(); !strings.Contains(msg, "serverSelectionTimeoutMS") || strings.Contains(msg, "s3cret") {
		t.Errorf("error = %q, want it to name the option and hide the password", msg)
	}
}
