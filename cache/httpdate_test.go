package cache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseHTTPDate(t *testing.T) {
	ref := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	nov94 := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	tests := []struct {
		name   string
		values []string
		want   time.Time // zero: invalid
	}{
		{"RFC 9110 §5.6.7 IMF-fixdate", []string{"Sun, 06 Nov 1994 08:49:37 GMT"}, nov94},
		{"RFC 9110 §5.6.7 obsolete rfc850", []string{"Sunday, 06-Nov-94 08:49:37 GMT"}, nov94},
		{"RFC 9110 §5.6.7 obsolete asctime", []string{"Sun Nov  6 08:49:37 1994"}, nov94},
		{"RFC 9110 §5.6.7 asctime two-digit day", []string{"Sun Nov 06 08:49:37 1994"}, nov94},
		{"RFC 9110 §5.6.7 rfc850 year more than 50 years ahead is past", []string{"Tuesday, 01-Jan-80 00:00:00 GMT"}, time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"RFC 9110 §5.6.7 rfc850 year within 50 years is ahead", []string{"Saturday, 01-Jan-50 00:00:00 GMT"}, time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"RFC 9111 §4.2 names matched case-insensitively", []string{"sun, 06 nov 1994 08:49:37 gmt"}, nov94},
		{"RFC 9110 §5.6.7 optional whitespace around the value", []string{" Sun, 06 Nov 1994 08:49:37 GMT\t"}, nov94},
		{"RFC 9110 §5.6.7 leap second", []string{"Sat, 31 Dec 2016 23:59:60 GMT"}, time.Date(2016, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"RFC 9111 §5.3 zero", []string{"0"}, time.Time{}},
		{"RFC 9111 §5.3 negative number", []string{"-1"}, time.Time{}},
		{"RFC 9111 §5.3 empty", []string{""}, time.Time{}},
		{"RFC 9111 §5.3 two field lines", []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT"}, time.Time{}},
		{"RFC 9111 §5.3 list value", []string{"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT"}, time.Time{}},
		{"RFC 9111 §4.2 zone other than GMT", []string{"Sun, 06 Nov 1994 08:49:37 UTC"}, time.Time{}},
		{"RFC 9110 §5.6.7 numeric zone", []string{"Sun, 06 Nov 1994 08:49:37 +0000"}, time.Time{}},
		{"RFC 9110 §5.6.7 single-digit day in IMF-fixdate", []string{"Sun, 6 Nov 1994 08:49:37 GMT"}, time.Time{}},
		{"RFC 9110 §5.6.7 wrong weekday", []string{"Mon, 06 Nov 1994 08:49:37 GMT"}, time.Time{}},
		{"RFC 9110 §5.6.7 day out of month", []string{"Thu, 31 Feb 1994 08:49:37 GMT"}, time.Time{}},
		{"RFC 9110 §5.6.7 hour 24", []string{"Sun, 06 Nov 1994 24:00:00 GMT"}, time.Time{}},
		{"RFC 9110 §5.6.7 trailing junk", []string{"Sun, 06 Nov 1994 08:49:37 GMT x"}, time.Time{}},
		{"RFC 9110 §5.6.7 ISO 8601", []string{"1994-11-06T08:49:37Z"}, time.Time{}},
		{"RFC 9110 §5.6.7 rfc850 with short day name", []string{"Sun, 06-Nov-94 08:49:37 GMT"}, time.Time{}},
		{"RFC 9110 §5.6.7 asctime with zone", []string{"Sun Nov  6 08:49:37 GMT 1994"}, time.Time{}},
		{"RFC 9110 §5.6.7 no field", nil, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseHTTPDateField(tc.values, ref)
			if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
				t.Errorf("parseHTTPDateField(%q) = %v, %v; want %v, valid %v", tc.values, got, ok, tc.want, !tc.want.IsZero())
			}
		})
	}
}

func TestParseAge(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   time.Duration
		ok     bool
	}{
		{"RFC 9111 §5.1 delta-seconds", []string{"60"}, time.Minute, true},
		{"RFC 9111 §5.1 zero", []string{"0"}, 0, true},
		{"RFC 9111 §1.2.2 capped at 2^31", []string{"99999999999999999999"}, (1 << 31) * time.Second, true},
		{"RFC 9111 §5.1 list value: first member", []string{"10, 20"}, 10 * time.Second, true},
		{"RFC 9111 §5.1 two field lines: first", []string{"10", "20"}, 10 * time.Second, true},
		{"RFC 9111 §5.1 invalid first member is ignored", []string{"x, 20"}, 0, false},
		{"RFC 9111 §5.1 negative", []string{"-1"}, 0, false},
		{"RFC 9111 §5.1 fraction", []string{"1.5"}, 0, false},
		{"RFC 9111 §5.1 hex", []string{"0x10"}, 0, false},
		{"RFC 9111 §5.1 unit", []string{"10 s"}, 0, false},
		{"RFC 9111 §5.1 plus sign", []string{"+10"}, 0, false},
		{"RFC 9111 §5.1 empty", []string{""}, 0, false},
		{"RFC 9111 §5.1 absent", nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseAge(tc.values)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseAge(%q) = %v, %v; want %v, %v", tc.values, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseHTTPDate: any value parses without panicking; a valid date is
// in UTC, round-trips through its IMF-fixdate form, and an IMF-fixdate
// written by net/http is always valid. Age never comes out negative. The
// seeds (and testdata/fuzz/FuzzParseHTTPDate) run with plain `go test`.
func FuzzParseHTTPDate(f *testing.F) {
	for _, seed := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"0", "-1", "Sun, 06 Nov 1994 08:49:37 UTC", "Thu, 31 Feb 1994 08:49:37 GMT", "10, 20", "99999999999999999999",
		"Sat, 31 Dec 2016 23:59:60 GMT", "Mon, 01 Jan 0001 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "Saturday, 01-Jan-50 00:00:00 GMT", "sun nov  6 08:49:37 1994", ",,,,", "",
	} {
		f.Add(seed)
	}
	ref := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d, ok := parseHTTPDate(v, ref); ok {
			if d.Location() != time.UTC {
				t.Errorf("parseHTTPDate(%q) = %v, not UTC", v, d)
			}
			again, ok := parseHTTPDate(d.Format(http.TimeFormat), ref)
			if !ok || !again.Equal(d) {
				t.Errorf("parseHTTPDate(%q) = %v, but its IMF-fixdate %q gives %v, %v", v, d, d.Format(http.TimeFormat), again, ok)
			}
			if strings.ContainsAny(strings.Trim(v, " \t"), "\r\n\x00") {
				t.Errorf("parseHTTPDate(%q) accepted a control character", v)
			}
		}
		if a, ok := parseAge([]string{v}); ok && a < 0 {
			t.Errorf("parseAge(%q) = %v", v, a)
		}
		h := http.Header{"Date": {v}, "Age": {v}}
		if a := currentAge(h, ref, ref.Add(time.Second)); a < time.Second {
			t.Errorf("currentAge with Date/Age %q = %v, want at least the 1s stored", v, a)
		}
	})
}
