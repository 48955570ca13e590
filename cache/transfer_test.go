package cache

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestImportRecord stores records as Import does for a WARC file: the
// entry a plain GET uses, its page summary, validators from its headers;
// an older copy does not replace a newer one, and records Import must not
// store are refused with their sentinel.
func TestImportRecord(t *testing.T) {
	e := newTransportEnv(t, Options{})
	a := NewAdmin(e.db.s, e.db.name, e.clock.Now)
	ctx := context.Background()
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	rec := func(body string, at time.Time) *Record {
		return &Record{URL: "http://imp.example/x?api_key=REDACTED", Status: 200, Reason: "Fine",
			Header: http.Header{"Etag": {`"e1"`}, "Content-Type": {"text/plain"}}, Body: []byte(body), ValidatedAt: at}
	}
	if ok, err := a.Import(ctx, rec("first", at)); !ok || err != nil {
		t.Fatalf("Import: %v, %v; want stored", ok, err)
	}
	key := keyOf(t, "http://imp.example/x", Policy{})
	if p := e.page(key); p == nil || !p.ValidatedAt.Equal(at) || p.Status != 200 {
		t.Errorf("page summary = %+v, want one validated at %v", p, at)
	}
	if ok, err := a.Import(ctx, rec("older", at.Add(-time.Hour))); ok || err != nil {
		t.Errorf("older Import: %v, %v; want kept", ok, err)
	}
	if ok, err := a.Import(ctx, rec("newer", at.Add(time.Hour))); !ok || err != nil {
		t.Errorf("newer Import: %v, %v; want stored", ok, err)
	}
	var got []*Record
	if _, err := a.Export(ctx, ExportOptions{Match: "imp.example"}, func(r *Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got[0].Body) != "newer" || got[0].Reason != "Fine" || got[0].Header.Get("Etag") != `"e1"` {
		t.Fatalf("exported %+v, want the newer body with its reason and ETag", got)
	}
	// The entry serves a plain GET (RFC 9111 §4: a stored response is reused).
	e.expectServed("http://imp.example/x", ServedHit)

	bad := rec("x", at)
	bad.RequestHeader = http.Header{"Authorization": {"REDACTED"}}
	if _, err := a.Import(ctx, bad); !errors.Is(err, ErrHasCredentials) {
		t.Errorf("credentialed Import: %v, want ErrHasCredentials", err)
	}
	bad = rec("x", at)
	bad.Method = http.MethodPost
	if _, err := a.Import(ctx, bad); !errors.Is(err, ErrNotGet) {
		t.Errorf("POST Import: %v, want ErrNotGet", err)
	}
}
