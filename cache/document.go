package cache

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Database and collection names used when Options leaves them empty.
const (
	DefaultDatabase = "http_cache"
	// ResponsesCollection holds one Entry per cache key.
	ResponsesCollection = "responses"
	// RedirectsCollection maps a redirect hop's key to the final key.
	RedirectsCollection = "redirects"
	// RevalidationsCollection holds one small Revalidation per key that was
	// confirmed by a 304 since its body was stored. Kept apart from the body
	// document because the embedded server rewrites the whole document on
	// any update (28 ms for 50 KB, docs/architecture.md), while a small upsert costs
	// well under a millisecond.
	RevalidationsCollection = "revalidations"
	// VariantsCollection holds one Variants document per URL (method,
	// body and matched headers) whose responses vary on request headers
	// (RFC mode only), under the key of the request without them.
	VariantsCollection = "variants"
	// PagesCollection holds one Page per stored entry: what people
	// filter on, small enough to query on the embedded server.
	PagesCollection = "pages"
	// SettingsCollection holds cache settings such as the TTL when the
	// server has no TTL indexes (_id "ttl").
	SettingsCollection = "settings"
)

// Words: the package calls a stored response an entry at every stage. A
// fetchedEntry comes from the origin, is stored as an Entry, is read back
// as a storedEntry (with its Revalidation when a 304 refreshed it since),
// and is served from its decodedEntry. The key (Key) and the
// *http.Response built for each caller are distinct things with their own
// names; "document" means a MongoDB document of any collection.

// Entry is a stored response: what the cache keeps for one cache key, as
// stored in the responses collection. It is meant to be read by people in
// Compass or mongosh: field names are a contract, keep them.
type Entry struct {
	ID     string `bson:"_id"`
	URL    string `bson:"url"`
	Method string `bson:"method"`
	Status int    `bson:"status"`
	// Proto is the origin's protocol, e.g. "HTTP/1.1".
	Proto string `bson:"proto,omitempty"`
	// Reason is the origin's reason phrase when it is not the standard
	// one for Status ("200 Okay"); absent otherwise, and in documents
	// written before it was kept (the standard phrase is used then).
	Reason string `bson:"reason,omitempty"`
	// Uncompressed is http.Response.Uncompressed: the origin sent the body
	// gzip-encoded and net/http decoded it (and dropped Content-Encoding).
	// Replayed as is, so that a client that decodes by itself (colly, for
	// *.xml.gz) sees what it saw on the first fetch.
	Uncompressed bool `bson:"uncompressed,omitempty"`
	// Headers maps a canonical header name to its value, or to an array of
	// values when the origin sent it more than once (in the origin's order).
	Headers bson.M `bson:"headers"`
	// Body is a string when the body is valid UTF-8 text (text/*, JSON, XML,
	// JavaScript), else bson.Binary. Absent for an empty body.
	Body any `bson:"body,omitempty"`
	// BodyEncoding is "gzip" when the transport stored Body compressed
	// (Options.CompressBodies; always binary then), "" for the body as the
	// origin sent it. Size is the uncompressed length.
	BodyEncoding string `bson:"body_encoding,omitempty"`
	// BodySHA256 is the hex SHA-256 of the body as served (uncompressed,
	// the bytes Size counts), computed once when the body was stored and
	// sent with every response served from it (HeaderBodySHA256), so that
	// a client that hashes bodies does not hash them again. Absent in
	// entries of releases before it was kept: responses served from them
	// carry no hash, and the client hashes the body itself.
	BodySHA256  string    `bson:"body_sha256,omitempty"`
	ContentType string    `bson:"content_type,omitempty"`
	Size        int64     `bson:"size"`
	CreatedAt   time.Time `bson:"created_at"`   // when this body was fetched
	ValidatedAt time.Time `bson:"validated_at"` // last fetch or 304 written here
	// Expires is when the entry stops being fresh; nil means never.
	Expires *time.Time `bson:"expires,omitempty"`
	// IntervalSeconds is the URL's learned revisit interval under
	// expire_after: adaptive (adaptive.go), in seconds, as of this body;
	// Expires is then the next due time. Absent under other expiries and
	// in entries of releases before it was learned: the interval is
	// then the policy's initial one.
	IntervalSeconds int64  `bson:"interval_seconds,omitempty"`
	ETag            string `bson:"etag,omitempty"`
	// LastModified is the response's Last-Modified as a date, absent when
	// the header is missing or not a valid HTTP-date (its text is in
	// Headers either way). Schema version 2 converted the text that
	// earlier releases stored here; HTTPDate reads both forms.
	LastModified HTTPDate `bson:"last_modified,omitempty"`
	// Vary records the request header values the response varies on
	// (canonical name → value), so a later request is matched against
	// them. RFC mode only; each variant is its own Entry (see Variants).
	Vary bson.M `bson:"vary,omitempty"`
	// Credential is set when the request carried Authorization or Cookie:
	// the entry is served only to the same credential (or job), and says
	// so without revealing it. nil for a response fetched without
	// credentials.
	Credential *CredentialInfo `bson:"credential,omitempty"`
	Request    RequestInfo     `bson:"request"`
}

// Document is the former name of Entry.
//
// Deprecated: use Entry.
type Document = Entry

// RequestInfo is the request that produced an Entry, with secrets
// redacted (Authorization, Cookie, Proxy-Authorization and configured
// secret query parameters).
type RequestInfo struct {
	Method  string `bson:"method"`
	URL     string `bson:"url"`
	Headers bson.M `bson:"headers,omitempty"`
}

// Revalidation records that the origin confirmed a stored Entry with a
// 304, in the revalidations collection under the same _id. Readers take
// ValidatedAt/Expires from it when it is newer than the Entry's, and
// merge Headers over the Entry's headers.
type Revalidation struct {
	ID          string     `bson:"_id"`
	ValidatedAt time.Time  `bson:"validated_at"`
	Expires     *time.Time `bson:"expires,omitempty"`
	// IntervalSeconds is the learned interval after this 304, as
	// Entry.IntervalSeconds.
	IntervalSeconds int64  `bson:"interval_seconds,omitempty"`
	Headers         bson.M `bson:"headers,omitempty"`
	// BodySHA256 is the hash of the Entry's body (as Entry.BodySHA256)
	// when the Entry has none, having been stored by a release before it
	// was kept: computed at the body's first 304 since this release and
	// kept by every later one, so such an entry is not rewritten (the
	// embedded server rewrites a whole document on any update) and its
	// body is hashed once. Absent when the Entry has its own.
	BodySHA256 string `bson:"body_sha256,omitempty"`
}

// Redirect maps a redirect hop to the key of the response it led to.
type Redirect struct {
	ID        string    `bson:"_id"` // the hop's cache key
	URL       string    `bson:"url"`
	Target    string    `bson:"target"` // cache key of the next response
	CreatedAt time.Time `bson:"created_at"`
	// Status is the redirect's status (301, 302, 303, 307, 308) and
	// Location its Location header, replayed without the network.
	Status   int    `bson:"status,omitempty"`
	Location string `bson:"location,omitempty"`
	// Expires is when the hop must be fetched again; nil means never.
	Expires *time.Time `bson:"expires,omitempty"`
	// KeyVersion is RedirectKeyVersion for hops recorded since keys were
	// bound to credentials; an older hop cannot tell whether it was
	// fetched with credentials and is never replayed (it is fetched again
	// and replaced).
	KeyVersion int `bson:"key_version,omitempty"`
	// Credential is the hop's binding, as Entry.Credential.
	Credential *CredentialInfo `bson:"credential,omitempty"`
}

// RedirectKeyVersion is the Redirect.KeyVersion of hops recorded with
// credential-bound keys.
const RedirectKeyVersion = 2

// Variants records that the responses for one primary key (the key of a
// request without any Vary header: Key(req, body, p, nil)) vary on request
// headers, in the variants collection under that key. Each variant is an
// ordinary Entry in the responses collection under Key(req, body, p,
// Vary) and its Vary values in Entry.Vary. A reader finds Variants by
// _id, then the variant by _id: two lookups, never a scan.
type Variants struct {
	ID     string `bson:"_id"` // the primary key
	URL    string `bson:"url"`
	Method string `bson:"method"`
	// Vary lists the canonical header names the origin's latest response
	// varies on, sorted, without those already in match_headers.
	Vary []string `bson:"vary"`
	// Keys are the _ids of the variants stored under this Vary set, so
	// that invalidation and purges reach them without a scan.
	Keys []string `bson:"keys"`
	// Since is when this Vary set was first stored: a variant not listed
	// in Keys whose body was not fetched after Since belongs to an older
	// set (or to a URL invalidated since) and is not served.
	Since     time.Time `bson:"since"`
	UpdatedAt time.Time `bson:"updated_at"`
}
