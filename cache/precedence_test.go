package cache

import "testing"

// TestDecidePrecedence covers every pair of sources of freshness that can
// disagree, and what wins (the numbered list in precedence.go and in the
// cache's docs page).
func TestDecidePrecedence(t *testing.T) {
	yes, no := true, false
	rfcFresh := &rfcSays{fresh: true}
	rfcStale := &rfcSays{}
	rfcImmutable := &rfcSays{fresh: true, immutable: true}
	rfcStaleImmutable := &rfcSays{immutable: true}
	rfcMustRevalidate := &rfcSays{mustRevalidate: true}
	tests := []struct {
		name  string
		in    sources
		fresh bool
		by    source
	}{
		// Each source alone.
		{"expire_after fresh", sources{expireAfter: true}, true, byExpireAfter},
		{"expire_after due", sources{}, false, byExpireAfter},
		{"url rule fresh", sources{urlRule: &yes}, true, byURLRule},
		{"rfc fresh", sources{rfc: rfcFresh}, true, byRFC},
		{"trusted lastmod", sources{lastMod: lastModTrusted}, true, byTrustedLastMod},
		{"untrusted older lastmod has no say", sources{lastMod: lastModOlder, expireAfter: false}, false, byExpireAfter},
		{"newer lastmod", sources{lastMod: lastModNewer}, false, byLastModNewer},
		{"revalidate", sources{revalidate: true}, false, byRevalidate},

		// 5 over 6: the matching pattern over expire_after.
		{"url rule due over expire_after fresh", sources{urlRule: &no, expireAfter: true}, false, byURLRule},
		{"url rule fresh over expire_after due", sources{urlRule: &yes, expireAfter: false}, true, byURLRule},
		// 4 over 5 and 6: RFC 9111 mode ignores the crawler rules.
		{"rfc due over expire_after fresh", sources{rfc: rfcStale, expireAfter: true}, false, byRFC},
		{"rfc fresh over expire_after due", sources{rfc: rfcFresh}, true, byRFC},
		{"rfc due over url rule fresh", sources{rfc: rfcStale, urlRule: &yes}, false, byRFC},
		// 3 over 4, 5, 6, except must-revalidate/no-cache in RFC mode.
		{"trusted lastmod over expire_after due", sources{lastMod: lastModTrusted}, true, byTrustedLastMod},
		{"trusted lastmod over url rule due", sources{lastMod: lastModTrusted, urlRule: &no}, true, byTrustedLastMod},
		{"trusted lastmod over rfc due", sources{lastMod: lastModTrusted, rfc: rfcStale}, true, byTrustedLastMod},
		{"rfc must-revalidate over trusted lastmod", sources{lastMod: lastModTrusted, rfc: rfcMustRevalidate}, false, byRFC},
		// 2 over 3..6.
		{"newer lastmod over expire_after fresh", sources{lastMod: lastModNewer, expireAfter: true}, false, byLastModNewer},
		{"newer lastmod over url rule fresh", sources{lastMod: lastModNewer, urlRule: &yes}, false, byLastModNewer},
		{"newer lastmod over rfc fresh", sources{lastMod: lastModNewer, rfc: rfcFresh}, false, byLastModNewer},
		{"newer lastmod over rfc immutable", sources{lastMod: lastModNewer, rfc: rfcImmutable}, false, byLastModNewer},
		// 1 over everything, but a fresh immutable response (RFC 8246 §2).
		{"revalidate over expire_after fresh", sources{revalidate: true, expireAfter: true}, false, byRevalidate},
		{"revalidate over url rule fresh", sources{revalidate: true, urlRule: &yes}, false, byRevalidate},
		{"revalidate over rfc fresh", sources{revalidate: true, rfc: rfcFresh}, false, byRevalidate},
		{"revalidate over trusted lastmod", sources{revalidate: true, lastMod: lastModTrusted}, false, byRevalidate},
		{"revalidate with newer lastmod", sources{revalidate: true, lastMod: lastModNewer}, false, byRevalidate},
		{"fresh immutable survives revalidate", sources{revalidate: true, rfc: rfcImmutable}, true, byRevalidate},
		{"stale immutable is revalidated", sources{revalidate: true, rfc: rfcStaleImmutable}, false, byRevalidate},
		{"immutable is no rule without rfc mode", sources{revalidate: true, expireAfter: true}, false, byRevalidate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fresh, by := decide(tt.in)
			if fresh != tt.fresh || by != tt.by {
				t.Errorf("decide(%+v) = fresh %v by %d, want fresh %v by %d", tt.in, fresh, by, tt.fresh, tt.by)
			}
		})
	}
}
