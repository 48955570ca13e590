package crawler

import (
	"bytes"
	"io"
	"net/http"
	"runtime"
	"testing"
	"weak"
)

type bodyStub struct{ body []byte }

func (s *bodyStub) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(s.body)), Request: req}, nil
}

// TestClosedBodyLetsGoOfItsBytes: a response kept after its body was read
// and closed (as colly keeps it, through &resp.Header) no longer keeps the
// transport's copy of the body alive.
func TestClosedBodyLetsGoOfItsBytes(t *testing.T) {
	stub := &bodyStub{body: bytes.Repeat([]byte("<a href=/x>x</a>"), 1<<16)}
	buf := weak.Make(&stub.body[0])
	req, _ := http.NewRequest(http.MethodGet, "http://example.org/", nil)
	resp, err := releaseBodies{next: stub}.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	stub.body = nil
	got, err := io.ReadAll(resp.Body)
	if err != nil || len(got) != 1<<20 {
		t.Fatalf("read %d bytes, %v; want the whole body", len(got), err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	header := &resp.Header // what colly keeps
	runtime.GC()
	if buf.Value() != nil {
		t.Errorf("the transport's body is still reachable from a closed response")
	}
	if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
		t.Errorf("read after Close succeeded, want an error")
	}
	runtime.KeepAlive(header)
}
