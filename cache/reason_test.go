package cache

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestReasonPhraseKept checks that an unusual reason phrase (RFC 9112 §4:
// the reason phrase is the origin's to choose) is stored and replayed,
// and that the standard one is not stored.
func TestReasonPhraseKept(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		status := "200 OK"
		if r.URL.Path == "/odd" {
			status = "200 Okay Then"
		}
		buf.WriteString("HTTP/1.1 " + status + "\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		buf.Flush()
	}))
	t.Cleanup(o.Close)
	e := newTransportEnv(t, Options{})
	for _, tc := range []struct{ path, want, stored string }{
		{"/odd", "200 Okay Then", "Okay Then"},
		{"/std", "200 OK", ""},
	} {
		miss, _ := e.get(nil, o.URL+tc.path)
		hit, _ := e.get(nil, o.URL+tc.path)
		if Served(hit) != ServedHit {
			t.Fatalf("%s: second GET served %q, want a hit", tc.path, Served(hit))
		}
		if miss.Status != tc.want || hit.Status != tc.want {
			t.Errorf("%s: status %q then %q, want %q both times", tc.path, miss.Status, hit.Status, tc.want)
		}
		if got, _ := e.rawDoc(ResponsesCollection, keyOf(t, o.URL+tc.path, Policy{})).Lookup("reason").StringValueOK(); got != tc.stored {
			t.Errorf("%s: stored reason %q, want %q", tc.path, got, tc.stored)
		}
	}
}
