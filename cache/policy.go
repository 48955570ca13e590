package cache

import "time"

// Expiry says how long a stored response stays fresh under the crawler
// policy. The zero value means "never expires".
type Expiry struct {
	// Never: the entry is fresh forever (the zero value).
	// DoNotCache: responses are not stored.
	// Adaptive: each URL's own learned interval, within Policy.Adaptive
	// (adaptive.go).
	// Otherwise After is the freshness lifetime; After == 0 with Set means
	// "revalidate on every use".
	Kind  ExpiryKind
	After time.Duration
}

// ExpiryKind selects the meaning of an Expiry.
type ExpiryKind int

// Expiry kinds.
const (
	ExpireNever ExpiryKind = iota
	ExpireAfter
	ExpireDoNotCache
	ExpireAdaptive
)

// URLExpiry is one urls_expire_after rule: a glob over the URL without its
// scheme (e.g. "example.org/news/*") and the expiry for matching URLs.
type URLExpiry struct {
	Pattern string
	Expiry  Expiry
}

// Policy is the caching policy of a Transport. The zero value is the crawler
// policy with its defaults: cache every allowable response, never expire.
type Policy struct {
	// ExpireAfter is the default expiry under the crawler policy.
	ExpireAfter Expiry
	// URLsExpireAfter are ordered rules; the first matching pattern wins
	// over ExpireAfter.
	URLsExpireAfter []URLExpiry
	// Adaptive bounds the learned intervals of URLs whose expiry is
	// ExpireAdaptive. Ignored in CacheControl mode.
	Adaptive Adaptive
	// AllowableCodes are the statuses that are stored. If nil,
	// DefaultAllowableCodes.
	AllowableCodes []int
	// AllowableMethods are the methods whose responses are stored. If nil,
	// GET and HEAD.
	AllowableMethods []string
	// CacheControl switches to RFC 9111 private-cache rules instead of the
	// crawler policy.
	CacheControl bool
	// StaleIfError serves a stale entry when the origin fails (network error
	// or 5xx) for up to this long past its expiry; 0 disables it, a negative
	// value means without limit.
	StaleIfError time.Duration
	// StaleWhileRevalidate serves a stale entry for up to this long past its
	// expiry while one background request refreshes it; 0 disables it.
	StaleWhileRevalidate time.Duration
	// OnlyIfCached never uses the network: a miss is a 504.
	OnlyIfCached bool
	// MatchHeaders are request headers that are part of the cache key.
	MatchHeaders []string
	// IgnoredParameters are query parameters dropped from the key and
	// redacted in the stored request. If nil, DefaultIgnoredParameters.
	IgnoredParameters []string
	// Credentials says what the entries of requests carrying Authorization
	// or Cookie are bound to: their credential values (CredentialsToken,
	// the zero value) or the job (CredentialsJob, for a job whose token
	// rotates; needs Options.Job). Either way no other credential, and no
	// request without one, is served them.
	Credentials CredentialMode
}

// DefaultAllowableCodes are the statuses stored when Policy.AllowableCodes
// is nil (the same set as requests-cache's crawler users rely on).
var DefaultAllowableCodes = []int{200, 203, 300, 301, 308, 404, 410}

// DefaultIgnoredParameters are dropped from keys and redacted in stored
// requests when Policy.IgnoredParameters is nil.
var DefaultIgnoredParameters = []string{"access_token", "api_key", "apikey", "token", "key", "signature", "sig"}
