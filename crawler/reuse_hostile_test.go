package crawler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/parses"
	"crawlcache/store"
	"crawlcache/testsite"
)

// Parse records are data anyone with the store can edit (Compass): a
// record that does not decode, holds values the extractor never writes,
// names another body or is gutted costs a parse of its page and nothing
// else (items as a full parse gives them, the record rewritten), and
// links added to a record are filtered like any other: one to a host
// outside allowed_domains is never requested.
func TestReuseSurvivesDamagedRecords(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	_, base := newSite(t, testsite.Options{Pages: 20, Seed: 11})
	var outside atomic.Int64
	off := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { outside.Add(1) }))
	t.Cleanup(off.Close)
	offURL := strings.Replace(off.URL, "127.0.0.1", "localhost", 1) + "/planted"

	ps := parseStore(e)
	crawl := func(id string, reuse bool) (*recorder, Progress) {
		rec := itemRecorder(t, shopSpec)
		o := e.options(id, base+"/", rec)
		o.CachePolicy, o.AllowedDomains = revalidateAll, []string{"127.0.0.1"}
		if reuse {
			o.Parses = ps
		}
		_, p := run(t, o)
		return rec, p
	}
	_, cold := crawl("cold", true)

	coll := e.st.Collection("crawlcache", parses.DefaultCollection)
	var recs []parses.Record
	if err := coll.All(ctx, bson.D{}, store.FindOptions{Sort: bson.D{{Key: "url", Value: 1}}}, &recs); err != nil {
		t.Fatal(err)
	}
	var withLinks []parses.Record
	for _, r := range recs {
		if len(r.Links) > 0 && len(r.Items) > 0 {
			withLinks = append(withLinks, r)
		}
	}
	if int64(len(recs)) != cold.Parsed || len(withLinks) < 5 {
		t.Fatalf("%d records (%d with links and items) after a cold crawl that parsed %d pages; want one each and 5 with links", len(recs), len(withLinks), cold.Parsed)
	}
	set := func(r parses.Record, fields bson.D) {
		t.Helper()
		if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: r.ID}}, bson.D{{Key: "$set", Value: fields}}, false); err != nil {
			t.Fatal(err)
		}
	}
	set(withLinks[0], bson.D{{Key: "links", Value: "not an array"}})
	set(withLinks[1], bson.D{{Key: "items", Value: bson.A{bson.D{{Key: "name", Value: bson.Regex{Pattern: ".*"}}}}}})
	set(withLinks[2], bson.D{{Key: "body_hash", Value: strings.Repeat("0", 64)}})
	if err := coll.Upsert(ctx, withLinks[3].ID, bson.D{{Key: "_id", Value: withLinks[3].ID}, {Key: "junk", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	set(withLinks[4], bson.D{{Key: "links", Value: append(withLinks[4].Links, offURL, "javascript:alert(1)")}})
	const damaged = 4

	after, p := crawl("after", true)
	if p.Parsed != damaged || p.Reused != cold.Parsed-damaged || p.Errors != 0 {
		t.Errorf("re-crawl over damaged records: parsed %d, reused %d, errors %d; want %d, %d, 0", p.Parsed, p.Reused, p.Errors, damaged, cold.Parsed-damaged)
	}
	if n := outside.Load(); n != 0 {
		t.Errorf("a link planted in a record, to a host outside allowed_domains, was requested %d times", n)
	}
	full, _ := crawl("full", false)
	if got, want := after.byPage(), full.byPage(); len(want) == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("items over damaged records differ from a full parse's (%d pages against %d)", len(got), len(want))
	}
	if _, p := crawl("again", true); p.Parsed != 0 {
		t.Errorf("the run after parsed %d pages; want 0 (damaged records rewritten)", p.Parsed)
	}
}
