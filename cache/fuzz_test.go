package cache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzParseCacheControl: any header value parses without panicking into
// lower-case directive names, and freshness derived from it is never
// negative. Seeds run with plain `go test`.
func FuzzParseCacheControl(f *testing.F) {
	for _, seed := range []string{
		"max-age=60", "no-cache, no-store, must-revalidate", `private="Set-Cookie", max-age="3600"`,
		"max-age=99999999999999999999999", "max-age=-1", "immutable,max-age=31536000", `a="b\"c", d`,
		`"`, ",,,", "=", "max-stale", "s-maxage=10, max-age=0", "MAX-AGE=5", "max-age=1, max-age=2",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		cc := parseCacheControl([]string{v})
		for name, arg := range cc {
			if name == "" || name != strings.ToLower(name) || strings.ContainsAny(name, " \t\"") {
				t.Errorf("directive name %q from %q", name, v)
			}
			if d, ok := deltaSeconds(arg); ok && d < 0 {
				t.Errorf("negative delta-seconds %v from %q", d, arg)
			}
		}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		h := http.Header{"Cache-Control": {v}, "Age": {v}, "Expires": {v}, "Date": {now.Format(http.TimeFormat)}}
		fr := rfcFreshnessOf(h, 200, now)
		if fr.lifetime < 0 || fr.initialAge < 0 {
			t.Errorf("freshness %+v from %q", fr, v)
		}
	})
}

// FuzzNormalizeURL: normalization is idempotent, keys are 32 hex
// characters, and a URL and its normalized form have the same key.
func FuzzNormalizeURL(f *testing.F) {
	for _, seed := range []string{
		"https://example.org/", "HTTP://Example.org:80/a?b=2&a=1#x", "http://[::1]:8080/p?q",
		"https://e.org/?api_key=1&x=%zz", "https://e.org/a%2Fb?&&", "http://u:p@e.org/", "http://e.org:/x",
		"http://[fe80::1%25en0]/", "https://e.org/?a=1;b=2", "https://xn--bcher-kva.example/", "http://e.org/ü?ä=ö",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		norm, err := NormalizeURL(raw, DefaultIgnoredParameters)
		if err != nil {
			return
		}
		again, err := NormalizeURL(norm, DefaultIgnoredParameters)
		if err != nil || again != norm {
			t.Fatalf("NormalizeURL(%q) = %q, then %q, %v: not idempotent", raw, norm, again, err)
		}
		k1, err1 := KeyForURL(http.MethodGet, raw, Policy{})
		if err1 != nil {
			return // http.NewRequest is stricter than url.Parse in places
		}
		if len(k1) != 32 || strings.Trim(k1, "0123456789abcdef") != "" {
			t.Fatalf("key %q of %q is not 32 hex characters", k1, raw)
		}
		if strings.Contains(raw, "@") {
			return // userinfo is keyed but not part of the normalized URL
		}
		k2, err2 := KeyForURL(http.MethodGet, norm, Policy{})
		if err2 == nil && k1 != k2 {
			t.Errorf("Key(%q) = %s but Key(%q) = %s", raw, k1, norm, k2)
		}
		bare := norm[strings.Index(norm, "://")+3:]
		if !strings.ContainsAny(bare, "*?") && !globMatch(bare, bare) {
			t.Errorf("globMatch(%q, itself) = false", bare)
		}
	})
}
