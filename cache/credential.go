package cache

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// Credential isolation. A request carrying Authorization or Cookie is
// never served a response fetched with another credential or with none, in
// either role and under every policy: its key is its ordinary Key bound to
// an HMAC-SHA256 of the credential values (or of the job's name, with
// CredentialsJob), so entries of different credentials live under
// different _ids and a lookup stays one _id find. The HMAC key is made
// once per store and kept in the settings collection, so every worker and
// every resume computes the same keys; the credential itself is never
// stored, in the key or anywhere else. A request without credentials keeps
// its unbound key, the one earlier releases used.
//
// Proxy-Authorization is the proxy hop's own credential: never keyed and
// never sent upstream.

// credentialHeaders are the request headers whose values bind an entry.
var credentialHeaders = []string{"Authorization", "Cookie"}

// credentialKeyID is the _id of the settings document holding the HMAC key.
const credentialKeyID = "credential_key"

// credentialKeyVersion is hashed into every bound key.
const credentialKeyVersion = "crawlcache-credential-v1"

// CredentialMode says what the entries of a request carrying credentials
// (Authorization, Cookie) are bound to.
type CredentialMode int

// Credential modes.
const (
	// CredentialsToken (the zero value) binds entries to the credential
	// values: another token, or none, never sees them.
	CredentialsToken CredentialMode = iota
	// CredentialsJob binds entries to the job (Options.Job) instead: a job
	// whose token rotates keeps hitting its own entries, and other jobs and
	// requests without credentials still never see them.
	CredentialsJob
)

// String returns the config spelling of m: "token" or "job".
func (m CredentialMode) String() string {
	if m == CredentialsJob {
		return "job"
	}
	return "token"
}

// Binding values of CredentialInfo.BoundTo.
const (
	BoundToToken = "token"
	BoundToJob   = "job"
	// BoundToUnknown marks an entry an earlier release stored for a
	// request with credentials, without binding it: it is served to no
	// one and replaced by the next fetch of its URL.
	BoundToUnknown = "unknown"
)

// CredentialInfo says that a stored entry was fetched with credentials
// and whom it is served to, without revealing them. Stored as the
// document's credential field; absent for a response fetched without
// credentials.
type CredentialInfo struct {
	// BoundTo is BoundToToken (served only to requests carrying the same
	// credential values) or BoundToJob (served to the same job's requests
	// with credentials).
	BoundTo string `bson:"bound_to" json:"bound_to"`
	// Headers are the credential headers the request carried, e.g.
	// ["Authorization"]; their values are never stored.
	Headers []string `bson:"headers" json:"headers"`
	// ID is a fingerprint of the binding (16 hex characters of its keyed
	// hash): entries with the same ID belong to the same credential (or
	// job). It cannot be turned back into the credential.
	ID string `bson:"id" json:"id"`
}

// credentials is a Transport's binding configuration.
type credentials struct {
	key  []byte // the store's HMAC key
	mode CredentialMode
	job  string
}

// binding is what one request's entries are bound to; the zero value
// (no credentials) binds nothing.
type binding struct {
	mac  string // hex HMAC; "" when the request carries no credentials
	info *CredentialInfo
}

// bindingOf computes req's binding.
func (cr credentials) bindingOf(req *http.Request) binding {
	var names []string
	for _, n := range credentialHeaders {
		if len(req.Header.Values(n)) > 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return binding{}
	}
	m := hmac.New(sha256.New, cr.key)
	boundTo := BoundToToken
	if cr.mode == CredentialsJob {
		boundTo = BoundToJob
		writeField(m, "job")
		writeField(m, cr.job)
	} else {
		writeField(m, "token")
		writeCredentialValues(m, req.Header)
	}
	mac := hex.EncodeToString(m.Sum(nil))
	return binding{mac: mac, info: &CredentialInfo{BoundTo: boundTo, Headers: names, ID: mac[:16]}}
}

func writeCredentialValues(h hash.Hash, hdr http.Header) {
	for _, n := range credentialHeaders {
		vs := hdr.Values(n)
		writeField(h, fmt.Sprintf("%s:%d", n, len(vs)))
		for _, v := range vs {
			writeField(h, v)
		}
	}
}

// bind returns key bound to b: key itself when b binds nothing.
func (b binding) bind(key string) string {
	if b.mac == "" {
		return key
	}
	h := sha256.New()
	writeField(h, credentialKeyVersion)
	writeField(h, key)
	writeField(h, b.mac)
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}

// keyOf is the key of c's request, with the response header vary (nil:
// the primary key), bound to c's credential.
func (t *Transport) keyOf(c *call, vary http.Header) string {
	return c.cred.bind(Key(c.req, c.body, t.policy, vary))
}

// bindingServes reports whether a stored entry may answer c as far as
// credentials go: the entry's binding is c's. An entry without a
// credential field whose stored request shows a redacted Authorization
// or Cookie was written by a release that did not bind keys: whoever
// fetched it, it is served to no one (and replaced by the next fetch).
func bindingServes(c *call, entry *Entry) bool {
	if entry.Credential == nil {
		return c.cred.info == nil && !legacyCredentialed(entry)
	}
	return c.cred.info != nil && hmac.Equal([]byte(entry.Credential.ID), []byte(c.cred.info.ID))
}

// CredentialOf says what a stored entry is bound to: entry.Credential,
// an Info with BoundTo BoundToUnknown for an entry an earlier release
// stored for a request with credentials, or nil for an entry fetched
// without credentials (served to requests without credentials).
func CredentialOf(entry *Entry) *CredentialInfo {
	if entry.Credential != nil || !legacyCredentialed(entry) {
		return entry.Credential
	}
	info := &CredentialInfo{BoundTo: BoundToUnknown}
	for _, n := range credentialHeaders {
		if _, ok := entry.Request.Headers[n]; ok {
			info.Headers = append(info.Headers, n)
		}
	}
	return info
}

// legacyCredentialed reports whether entry records a request that carried
// credentials without binding the entry to them.
func legacyCredentialed(entry *Entry) bool {
	if entry.Credential != nil {
		return false
	}
	for _, n := range credentialHeaders {
		if _, ok := entry.Request.Headers[n]; ok {
			return true
		}
	}
	return false
}

// withoutHopCredential returns h without Proxy-Authorization (a clone when
// it had one): that header authenticates the client to this proxy and is
// never sent upstream.
func withoutHopCredential(h http.Header) (http.Header, bool) {
	if _, ok := h["Proxy-Authorization"]; !ok {
		return h, false
	}
	h = h.Clone()
	delete(h, "Proxy-Authorization")
	return h, true
}

// loadCredentials reads the store's HMAC key from settings, creating it
// on first use. Concurrent first uses (two workers) agree: the key is
// inserted under a fixed _id, and the loser reads the winner's.
func loadCredentials(ctx context.Context, settings entries, opts Options) (credentials, error) {
	cr := credentials{mode: opts.Policy.Credentials, job: opts.Job}
	if cr.mode == CredentialsJob && cr.job == "" {
		return cr, errors.New("cache: credentials: job binds entries to a job, and this cache serves no job: use credentials: token")
	}
	for attempt := 0; attempt < 2; attempt++ {
		raw, err := settings.Get(ctx, credentialKeyID)
		switch {
		case err == nil:
			if _, data, ok := raw.Lookup("key").BinaryOK(); ok && len(data) >= 32 {
				cr.key = data
				return cr, nil
			}
			return cr, fmt.Errorf("read credential key from %s: the document {_id: %q} holds no 32-byte binary key; delete it to make a new one (entries bound to credentials are then fetched again once)",
				settings.Name(), credentialKeyID)
		case !errors.Is(err, store.ErrNotFound):
			return cr, fmt.Errorf("read credential key from %s: %w", settings.Name(), err)
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return cr, fmt.Errorf("make credential key: %w", err)
		}
		err = settings.Insert(ctx, bson.D{
			{Key: "_id", Value: credentialKeyID},
			{Key: "key", Value: bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: key}},
			{Key: "created_at", Value: time.Now()},
		})
		switch {
		case err == nil:
			cr.key = key
			return cr, nil
		case !errors.Is(err, store.ErrDuplicateID):
			return cr, fmt.Errorf("store credential key in %s: %w", settings.Name(), err)
		}
	}
	return cr, fmt.Errorf("read credential key from %s: it was created concurrently and cannot be read", settings.Name())
}
