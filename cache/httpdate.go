package cache

import (
	"strings"
	"time"
)

// Strict parsing of the header fields freshness depends on. net/http's
// ParseTime accepts a superset of the HTTP-date grammar (any time zone
// name, single-digit days in IMF-fixdate, surrounding junk after a valid
// prefix is rejected but a second field line is silently ignored); a cache
// that trusts a sloppy Expires keeps a response fresh that the origin meant
// to expire, so everything here is parsed to the letter of RFC 9110 §5.6.7
// and RFC 9111 §5.1, and anything else is invalid.

var (
	shortDays = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	longDays  = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	months    = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// parseHTTPDateField parses the field lines of a date header (Date,
// Expires, Last-Modified): exactly one line holding one HTTP-date. Several
// lines, an empty value or a value that is not an HTTP-date are invalid
// (ok false). ref is the time the message was received; it resolves the
// two-digit year of the obsolete rfc850 form.
func parseHTTPDateField(values []string, ref time.Time) (t time.Time, ok bool) {
	if len(values) != 1 {
		return time.Time{}, false
	}
	return parseHTTPDate(values[0], ref)
}

// parseHTTPDate parses one HTTP-date (RFC 9110 §5.6.7): the IMF-fixdate
// "Sun, 06 Nov 1994 08:49:37 GMT", or one of the obsolete forms recipients
// must accept, rfc850 "Sunday, 06-Nov-94 08:49:37 GMT" and asctime
// "Sun Nov  6 08:49:37 1994". Names are matched case-insensitively (RFC
// 9111 §4.2), the day name must be the date's weekday, the zone must be
// GMT, and optional whitespace around the value is allowed; nothing else
// is. A two-digit rfc850 year more than 50 years after ref is taken as the
// most recent past year with those digits.
func parseHTTPDate(s string, ref time.Time) (time.Time, bool) {
	s = strings.Trim(s, " \t")
	switch {
	case len(s) == 29 && s[3] == ',':
		return parseIMFFixdate(s)
	case len(s) == 24 && s[3] == ' ':
		return parseAsctime(s)
	case strings.IndexByte(s, ',') > 3:
		return parseRFC850(s, ref)
	}
	return time.Time{}, false
}

// parseIMFFixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
func parseIMFFixdate(s string) (time.Time, bool) {
	if s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || !strings.EqualFold(s[25:], " GMT") {
		return time.Time{}, false
	}
	day, ok1 := digits(s[5:7])
	mon, ok2 := monthOf(s[8:11])
	year, ok3 := digits(s[12:16])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, false
	}
	return civil(year, mon, day, s[17:25], s[:3], shortDays[:])
}

// parseRFC850: "Sunday, 06-Nov-94 08:49:37 GMT".
func parseRFC850(s string, ref time.Time) (time.Time, bool) {
	comma := strings.IndexByte(s, ',')
	rest := s[comma+1:]
	if len(rest) != 23 || rest[0] != ' ' || rest[3] != '-' || rest[7] != '-' || rest[10] != ' ' || !strings.EqualFold(rest[19:], " GMT") {
		return time.Time{}, false
	}
	day, ok1 := digits(rest[1:3])
	mon, ok2 := monthOf(rest[4:7])
	yy, ok3 := digits(rest[8:10])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, false
	}
	if ref.IsZero() {
		ref = time.Now()
	}
	refYear := ref.UTC().Year()
	year := refYear - refYear%100 + yy
	if year > refYear+50 {
		year -= 100
	}
	return civil(year, mon, day, rest[11:19], s[:comma], longDays[:])
}

// parseAsctime: "Sun Nov  6 08:49:37 1994" (day space-padded).
func parseAsctime(s string) (time.Time, bool) {
	if s[7] != ' ' || s[10] != ' ' || s[19] != ' ' {
		return time.Time{}, false
	}
	mon, ok1 := monthOf(s[4:7])
	dd := s[8:10]
	if dd[0] == ' ' {
		dd = "0" + dd[1:]
	}
	day, ok2 := digits(dd)
	year, ok3 := digits(s[20:24])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, false
	}
	return civil(year, mon, day, s[11:19], s[:3], shortDays[:])
}

// civil checks and builds the UTC time; clock is "hh:mm:ss", dayName must
// name the date's weekday in names.
func civil(year int, mon time.Month, day int, clock, dayName string, names []string) (time.Time, bool) {
	if len(clock) != 8 || clock[2] != ':' || clock[5] != ':' {
		return time.Time{}, false
	}
	hh, ok1 := digits(clock[0:2])
	mm, ok2 := digits(clock[3:5])
	ss, ok3 := digits(clock[6:8])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 60 || day < 1 {
		return time.Time{}, false
	}
	leap := ss == 60 // RFC 9110 allows a leap second; count it as :59
	if leap {
		ss = 59
	}
	t := time.Date(year, mon, day, hh, mm, ss, 0, time.UTC)
	if t.Day() != day || t.Month() != mon { // 31 Feb and the like
		return time.Time{}, false
	}
	if !strings.EqualFold(names[t.Weekday()], dayName) {
		return time.Time{}, false
	}
	return t, true
}

// digits parses a run of ASCII digits (no sign, no space).
func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func monthOf(s string) (time.Month, bool) {
	for i, m := range months {
		if strings.EqualFold(m, s) {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

// parseAge parses the Age field lines (RFC 9111 §5.1): Age is a singleton
// whose value is delta-seconds. §5.1 says a cache meeting a list-based
// value SHOULD use its first member and discard the rest, and SHOULD
// ignore a value that is then not a non-negative integer: so "10, 20" and
// two field lines 10 and 20 are both age 10, while "", "-1", "1.5", "0x10"
// and "10 s" are invalid (ok false) and the field is ignored. Values past
// 2^31 are capped there (§1.2.2).
func parseAge(values []string) (time.Duration, bool) {
	if len(values) == 0 {
		return 0, false
	}
	first, _, _ := strings.Cut(values[0], ",")
	return deltaSeconds(strings.Trim(first, " \t"))
}
