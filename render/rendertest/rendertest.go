// Package rendertest finds Chromium for tests that render pages. It does
// not import render, so render's own tests can use it.
package rendertest

import (
	"os"
	"os/exec"
	"testing"
)

// names are the executables tried on PATH, as render.FindChromium does.
var names = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"}

// Chromium returns the browser for a test: CRAWLCACHE_CHROMIUM, else the
// first of the usual names on PATH. Under CI (the CI variable set, as
// .ci/run does) a missing browser fails the test: CI installs Chromium
// and must run the render tests. Elsewhere the test is skipped when
// CRAWLCACHE_CHROMIUM is unset and no Chromium is on PATH; a wrong
// CRAWLCACHE_CHROMIUM fails it.
func Chromium(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("CRAWLCACHE_CHROMIUM"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			tb.Fatalf("CRAWLCACHE_CHROMIUM=%s: %v", p, err)
		}
		return path
	}
	for _, n := range names {
		if path, err := exec.LookPath(n); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("no Chromium on PATH under CI (install it: apt-get install chromium, or set CRAWLCACHE_CHROMIUM)")
	}
	tb.Skip("no Chromium on PATH; install it or set CRAWLCACHE_CHROMIUM to run this test")
	return ""
}
