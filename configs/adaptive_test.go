package configs

import (
	"slices"
	"testing"
	"time"

	"crawlcache/cache"
)

const adaptiveHead = "name: a\nseeds: [https://example.org/]\ncache:\n"

func TestAdaptiveExpiry(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want cache.Policy
	}{
		{"defaults", "  expire_after: adaptive\n",
			cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAdaptive}}},
		{"bounds", "  expire_after: adaptive\n  adaptive: {min: 2h, max: 14d, initial: 12h}\n",
			cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAdaptive},
				Adaptive: cache.Adaptive{Min: 2 * time.Hour, Max: 14 * 24 * time.Hour, Initial: 12 * time.Hour}}},
		{"one pattern adaptive", "  expire_after: 1h\n  urls_expire_after: {example.org/news/*: adaptive}\n  adaptive: {max: 2d}\n",
			cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: time.Hour},
				URLsExpireAfter: []cache.URLExpiry{{Pattern: "example.org/news/*", Expiry: cache.Expiry{Kind: cache.ExpireAdaptive}}},
				Adaptive:        cache.Adaptive{Max: 48 * time.Hour}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := parseTest("a.yaml", adaptiveHead+tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got := job.Cache
			if got.ExpireAfter != tt.want.ExpireAfter || got.Adaptive.Min != tt.want.Adaptive.Min ||
				got.Adaptive.Max != tt.want.Adaptive.Max || got.Adaptive.Initial != tt.want.Adaptive.Initial ||
				!slices.Equal(got.URLsExpireAfter, tt.want.URLsExpireAfter) {
				t.Errorf("cache policy:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestAdaptiveErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"bounds without an adaptive expiry", "  expire_after: 1h\n  adaptive: {min: 1h}\n",
			[]string{"bad.yaml:5: cache.adaptive: sets the bounds of adaptive revisits, but no expiry is adaptive: set expire_after: adaptive (or a urls_expire_after pattern to adaptive), or remove it"}},
		{"with cache_control", "  expire_after: adaptive\n  cache_control: true\n",
			[]string{"bad.yaml:5: cache.cache_control: true follows RFC 9111 and ignores expire_after, so adaptive revisits would never apply: remove cache_control or the adaptive expiry"}},
		{"min above max", "  expire_after: adaptive\n  adaptive:\n    min: 2d\n    max: 1d\n    initial: 1d\n",
			[]string{"bad.yaml:7: cache.adaptive.max: min (2d) is longer than max (1d)"}},
		{"initial outside the bounds", "  expire_after: adaptive\n  adaptive:\n    min: 2d\n",
			[]string{"bad.yaml:6: cache.adaptive.min: initial (1d) must lie between min (2d) and max (30d) (defaults taken: max 30d, initial 1d)"}},
		{"zero and nonsense", "  expire_after: adaptive\n  adaptive:\n    min: 0s\n    max: soon\n    intial: 1h\n",
			[]string{
				`bad.yaml:6: cache.adaptive.min: must be at least 1s, got "0s"`,
				`bad.yaml:7: cache.adaptive.max: must be a duration like 30s, 1h30m or 7d, got "soon"`,
				"bad.yaml:8: cache.adaptive.intial: unknown key (did you mean initial?)",
			}},
		{"not a mapping", "  expire_after: adaptive\n  adaptive: 1h\n",
			[]string{`bad.yaml:5: cache.adaptive: must be a mapping, got "1h"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorLines(t, adaptiveHead+tt.src)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
