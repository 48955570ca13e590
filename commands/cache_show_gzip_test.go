package commands

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
)

// TestCacheShowCompressedText: a text body the cache stored compressed
// (every body of 4 MiB or more) is shown as text, not as a binary body.
func TestCacheShowCompressedText(t *testing.T) {
	cli := newCacheCLI(t)
	const page = "<p>a large page</p>"
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte(page))
	zw.Close()
	now := time.Now().UTC()
	entry := cache.Entry{
		ID: "kz", URL: "https://example.org/big", Method: "GET", Status: 200, Proto: "HTTP/1.1",
		Headers: bson.M{"Content-Type": "text/html; charset=utf-8"}, ContentType: "text/html; charset=utf-8",
		Body: bson.Binary{Data: z.Bytes()}, BodyEncoding: "gzip", Size: int64(len(page)),
		CreatedAt: now, ValidatedAt: now, Request: cache.RequestInfo{Method: "GET", URL: "https://example.org/big"},
	}
	if err := cli.coll(cache.ResponsesCollection).Insert(context.Background(), entry); err != nil {
		t.Fatal(err)
	}
	out, code := cli.run("cache", "show", "--json", "https://example.org/big")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var got struct {
		Body       *string `json:"body"`
		BodyBase64 *string `json:"body_base64"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got.Body == nil || *got.Body != page || got.BodyBase64 != nil {
		t.Errorf("show --json of a compressed text body: body %v, body_base64 %v; want body %q", got.Body, got.BodyBase64, page)
	}
}
