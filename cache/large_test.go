package cache

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestTransportCompressesLargeBodies: a body of compressLarge bytes or
// more is stored gzip-compressed even without CompressBodies (storing it
// as text would hold several copies of it at once), unless compressing
// does not make it smaller; every form replays the exact bytes.
func TestTransportCompressesLargeBodies(t *testing.T) {
	line := "<a href=\"/b/123456\">123456</a>\n"
	large := strings.Repeat(line, compressLarge/len(line)+1)
	below := large[:compressLarge-1]
	noise := make([]byte, compressLarge+1)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	bodies := map[string][]byte{"/large": []byte(large), "/below": []byte(below), "/noise": noise}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/noise" {
			w.Header().Set("Content-Type", "application/octet-stream")
		} else {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		}
		w.Write(bodies[r.URL.Path])
	})
	s := openTestStore(t)
	writer := newTransportEnvOn(t, s, Options{})
	reader := newTransportEnvOn(t, s, Options{})
	tests := []struct {
		name, path, wantEncoding string
	}{
		{"large html is compressed", "/large", "gzip"},
		{"html below the threshold stays text", "/below", ""},
		{"incompressible body stays as it is", "/noise", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := bodies[tc.path]
			writer.expectServed(o.URL+tc.path, ServedMiss)
			for name, e := range map[string]*transportEnv{"writer": writer, "reader": reader} {
				if got := e.expectServed(o.URL+tc.path, ServedHit); !bytes.Equal(got, want) {
					t.Errorf("%s replay: %d bytes, want %d identical bytes", name, len(got), len(want))
				}
			}
			var entry Entry
			if err := bson.Unmarshal(writer.rawDoc(ResponsesCollection, keyOf(t, o.URL+tc.path, Policy{})), &entry); err != nil {
				t.Fatal(err)
			}
			if entry.BodyEncoding != tc.wantEncoding || entry.Size != int64(len(want)) {
				t.Errorf("stored with body_encoding %q size %d, want %q %d", entry.BodyEncoding, entry.Size, tc.wantEncoding, len(want))
			}
		})
	}
}
