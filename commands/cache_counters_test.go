package commands

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"crawlcache/cache"
	"crawlcache/proxy"
)

// TestCacheStatsShowsProxyCounters: the proxy's counters, saved in the
// counters collection, are what `cache stats` reports.
func TestCacheStatsShowsProxyCounters(t *testing.T) {
	cli := newCacheCLI(t)
	st := cache.Stats{Hits: 7, Misses: 3, Revalidated: 2, NetworkBytes: 3000, SavedBytes: 9000}
	if err := proxy.NewCounterSink(cli.s, cache.DefaultDatabase, "proxy", func() cache.Stats { return st }).Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, code := cli.run("cache", "stats", "--json")
	if code != 0 {
		t.Fatalf("cache stats --json: exit %d: %s", code, out)
	}
	var got statsJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("cache stats --json output %q: %v", out, err)
	}
	p := got.Counters["proxy"]
	if p.Hits != 7 || p.Misses != 3 || p.Revalidated != 2 || p.SavedBytes != 9000 {
		t.Errorf("counters[proxy] = %+v, want hits 7, misses 3, revalidated 2, saved 9000", p)
	}
	out, _ = cli.run("cache", "stats")
	if !strings.Contains(out, "proxy") || !strings.Contains(out, "COUNTERS") {
		t.Errorf("cache stats table lacks the proxy counters:\n%s", out)
	}
}
