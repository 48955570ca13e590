package crawler

import (
	"context"
	"testing"

	"crawlcache/testsite"
)

// TestInspectRendersLikeARun: on a job that renders pages, Inspect finds
// the links of the rendered page, as a run does, not only those of the
// script page the origin sends.
func TestInspectRendersLikeARun(t *testing.T) {
	e := newEnv(t)
	site := testsite.New(testsite.Options{Pages: appPages, Seed: 9})
	srv := site.Start()
	t.Cleanup(srv.Close)
	entry := srv.URL + testsite.AppPrefix
	count := func(o Options) int {
		t.Helper()
		in, err := Inspect(context.Background(), o, entry, 0)
		if err != nil || in.Failure != nil || in.Page == nil {
			t.Fatalf("inspect %s: err %v, failure %v, page %v", entry, err, in.Failure, in.Page != nil)
		}
		n := 0
		for _, l := range in.Links {
			if l.Skip == "" {
				n++
			}
		}
		return n
	}
	plain := count(e.appOptions("inspect-plain", srv.URL, nil, nil))
	rendered := count(e.appOptions("inspect-render", srv.URL, nil, appRender(t)))
	if rendered <= plain {
		t.Errorf("links followed: %d on the rendered page, %d on the script page; want more once rendered (the shop's links)", rendered, plain)
	}
}
