package cache

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestHTTPDateReadsBothForms: last_modified is a BSON date now; documents
// written by earlier releases hold the header's text (RFC 9110 §5.6.7).
func TestHTTPDateReadsBothForms(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	tests := []struct {
		name    string
		stored  any
		want    time.Time
		wantErr bool
	}{
		{"date", want, want, false},
		{"IMF-fixdate text", "Sun, 06 Nov 1994 08:49:37 GMT", want, false},
		{"rfc850 text", "Sunday, 06-Nov-94 08:49:37 GMT", want, false},
		{"asctime text", "Sun Nov  6 08:49:37 1994", want, false},
		{"text that is no date", "yesterday", time.Time{}, false},
		{"null", nil, time.Time{}, false},
		{"a number", int64(784111777), time.Time{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := bson.Marshal(bson.D{{Key: "last_modified", Value: tc.stored}})
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				LastModified HTTPDate `bson:"last_modified"`
			}
			err = bson.Unmarshal(raw, &doc)
			if (err != nil) != tc.wantErr {
				t.Fatalf("decode: err = %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && !doc.LastModified.Equal(tc.want) {
				t.Errorf("got %v, want %v", doc.LastModified.Time, tc.want)
			}
		})
	}
}

// TestHTTPDateStoredAsDate: a new document stores last_modified as a date,
// and leaves it out when the header is absent or invalid.
func TestHTTPDateStoredAsDate(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   bson.Type // 0: absent
	}{
		{"valid", "Sun, 06 Nov 1994 08:49:37 GMT", bson.TypeDateTime},
		{"invalid", "0", 0},
		{"absent", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entry := Entry{ID: "k"}
			if tc.header != "" {
				entry.LastModified = httpDateOf([]string{tc.header}, time.Now())
			}
			raw, err := bson.Marshal(&entry)
			if err != nil {
				t.Fatal(err)
			}
			if got := bson.Raw(raw).Lookup("last_modified").Type; got != tc.want {
				t.Errorf("last_modified stored as %v, want %v", got, tc.want)
			}
		})
	}
}
